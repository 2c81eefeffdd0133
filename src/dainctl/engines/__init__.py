"""Interpolation engines behind one interface (`Engine` in base.py), chosen by name."""

from __future__ import annotations

import warnings
from pathlib import Path

from ..errors import EngineError, UsageError
from .base import Engine

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


def resolve_precision(device: str, fp16: bool) -> bool:
    """Half precision runs on CUDA only; elsewhere warn once and run fp32."""
    if fp16 and device != "cuda":
        warnings.warn("--fp16 needs a CUDA GPU; running in fp32 on the CPU", stacklevel=2)
        return False
    return fp16


def check_profile(engine: str, profile: str) -> None:
    """A UsageError unless `profile` is one of the weight-free engine's, given to that engine."""
    from .flow import PROFILES

    if profile not in PROFILES:
        raise UsageError(f"invalid --profile {profile!r}: use {', '.join(PROFILES)}")
    if engine != "flow" and profile != "auto":
        raise UsageError("--profile applies to the weight-free engine (--engine flow) only")


def create_engine(
    name: str, *, device: str = "auto", fp16: bool = False, weights: Path | None = None, profile: str = "auto"
) -> Engine:
    """Build the engine called `name` on `device` ("auto", "cpu" or "cuda"); `profile` ("auto", "high" or
    "fast") is the weight-free engine's speed/quality choice."""
    if name not in ENGINES:
        raise UsageError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
    check_profile(name, profile)
    device = resolve_device(device)
    fp16 = resolve_precision(device, fp16)
    if name == "flow":
        if weights is not None:
            raise UsageError("--weights is only used by --engine dain")
        from .flow import FlowEngine

        return FlowEngine(device=device, fp16=fp16, profile=profile)
    if weights is None:
        raise EngineError(
            "--engine dain needs --weights: bring the original DAIN best.pth (it cannot be downloaded here) "
            "and convert it once with `dainctl convert best.pth dain.safetensors`"
        )
    from .dain import DainEngine

    return DainEngine(weights, device=device, fp16=fp16)
