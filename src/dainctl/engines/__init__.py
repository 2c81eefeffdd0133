"""Interpolation engines behind one seam (`dainctl.engines.base`), built by one factory.

`create_engine` is the only place an engine is made for a command (`interpolate`, `slowmo`,
`benchmark`, `benchmark quality`): it resolves the device once, applies the one `--fp16` rule
(`dainctl.precision.PrecisionPolicy.choose`: half precision by default on CUDA; without CUDA one
warning and float32), loads the engine and, where frames may not fit, wraps it in a
`dainctl.tiling.TiledEngine` sized for the memory budget.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import EngineError, UsageError

if TYPE_CHECKING:
    from .base import Engine

# torch is imported by the functions that need it, not here: the CLI reads the names below before any
# work (its --help among them) and should not wait a second for torch to load.

ENGINES = ("flow", "dain")
DEFAULT_ENGINE = "flow"


def resolve_device(device: str) -> str:
    """`auto` -> `cuda` when a GPU is usable, else `cpu`; `cuda` without a GPU is an error."""
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"invalid --device {device!r}: use auto, cpu or cuda")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise EngineError("--device cuda was asked for, but no CUDA GPU is available to PyTorch")
    return device


def check_profile(engine: str, profile: str) -> None:
    """A UsageError unless `profile` is one of the weight-free engine's, given to that engine."""
    from .flow import PROFILES

    if profile not in PROFILES:
        raise UsageError(f"invalid --profile {profile!r}: use {', '.join(PROFILES)}")
    if engine != "flow" and profile != "auto":
        raise UsageError("--profile applies to the weight-free engine (--engine flow) only")


def check_engine(name: str, weights: Path | None, profile: str = "auto", *, need_weights: bool = True) -> None:
    """The options that name an engine, checked before any work (no weights are read here)."""
    if name not in ENGINES:
        raise UsageError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
    check_profile(name, profile)
    if name == "flow" and weights is not None:
        raise UsageError("--weights is only used by --engine dain")
    if name == "dain" and weights is None and need_weights:
        raise EngineError(
            "--engine dain needs --weights: bring the original DAIN best.pth (it cannot be downloaded here) "
            "and convert it once with `dainctl convert best.pth dain.safetensors`"
        )


def create_engine(
    name: str,
    *,
    device: str = "auto",
    fp16: bool | None = False,
    weights: Path | None = None,
    profile: str = "auto",
    max_memory: int | None = None,
    pairs: int | None = None,
    tile: bool | None = None,
    warn: Callable[[str], None] | None = None,
    on_retry: Callable[[str], None] | None = None,
) -> Engine:
    """Build the engine called `name` on `device` ("auto", "cpu" or "cuda").

    fp16: True / False, or None for the default (half precision on CUDA). profile: the weight-free
    engine's speed/quality choice. max_memory: the memory budget in bytes (None: the device's free
    memory). pairs: pairs per forward (DAIN; None: the engine's default, within the budget). tile: wrap
    in a TiledEngine (None: when a budget is given, on CUDA, and for DAIN, whose frames outgrow memory
    first). warn: where the one warning about `--fp16` without CUDA goes (default: `warnings.warn`).
    """
    from ..precision import PrecisionPolicy, warn_about_precision

    check_engine(name, weights, profile)
    device = resolve_device(device)
    policy = PrecisionPolicy.choose(device, fp16, warn or warn_about_precision)
    if pairs is not None and pairs < 1:
        raise UsageError(f"invalid --batch-pairs {pairs}: it must be at least 1")
    if name == "flow":
        from .flow import FlowEngine

        engine = FlowEngine(device=device, fp16=policy.reduced, profile=profile)
    else:
        from .dain import DainEngine

        engine = DainEngine(weights, device=device, precision=policy.name, max_pairs=pairs)
    if tile is None:
        tile = max_memory is not None or device == "cuda" or name == "dain"
    if not tile:
        return engine
    from ..tiling import wrap_for_memory

    return wrap_for_memory(engine, device=device, max_memory=max_memory, on_retry=on_retry)


__all__ = ["DEFAULT_ENGINE", "ENGINES", "check_engine", "check_profile", "create_engine", "resolve_device"]
