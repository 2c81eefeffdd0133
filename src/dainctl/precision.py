"""The one precision policy of every engine, for inference and training alike.

    PrecisionPolicy.choose(device, fp16, on_fallback)  ->  policy  ->  `with policy.compute():` around a forward

What runs in which dtype:
  * The convolution stacks run under autocast: float16 on CUDA with `--fp16` (the default there),
    bfloat16 where asked (`PrecisionPolicy("bf16", ...)`, the CPU's reduced dtype), float32 otherwise.
    Autocast casts the weights as it goes, so the same policy gives the same results whether the
    weights are stored in float32 (master weights, as a training loop keeps them) or were rounded to
    the reduced dtype beforehand: autocast's cast of a float32 weight is that rounding.
  * Everything that must stay float32 does so in an explicit `float32_region()`, written where the
    maths is (the models mark them; the policy decides nothing there):
      - the sub-networks in FLOAT32_SUBNETWORKS (PWC-Net: its flow errors are amplified by the
        projection's floor()/hole decisions and by the warps; emulated float16 storage on the
        mb_dogdance oracle case gave 31.6 dB against float32 with PWC-Net in float16 and 48.9 dB with it
        in float32 and every other stack in float16; it works at 1/4 resolution and below, so keeping it
        float32 costs little);
      - pixel coordinates and warps, the flow scaling and upsampling, the projection and its
        accumulators, the depth exponent `1e-6 + 1/exp(d)`, the blend, the residual addition and every
        reduction (correlation's channel mean, costs, sums).
  * TF32 is off for convolutions and matmuls on CUDA (it rounds inputs to 10 mantissa bits, like
    float16, and would break parity with the original network in float32).
  * `--fp16` without CUDA means one warning and float32, in every command (`choose`).

The NaN/Inf guard is not part of the policy: the engine that calls `compute()` checks its result once
and recomputes broken frames under `PrecisionPolicy.full()`.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

PRECISIONS = ("fp32", "fp16", "bf16")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Sub-networks of DAIN (checkpoint names) that run float32 under every policy.
FLOAT32_SUBNETWORKS = ("flownets",)
FP16_WITHOUT_CUDA = "--fp16 needs a CUDA GPU; running in fp32 on the CPU"


@dataclass(frozen=True)
class PrecisionPolicy:
    """What the convolutions of an engine on `device_type` ("cpu" or "cuda") compute in.

    name: "fp32", "fp16" or "bf16".
    """

    name: str = "fp32"
    device_type: str = "cpu"

    def __post_init__(self) -> None:
        if self.name not in PRECISIONS:
            raise ValueError(f"unknown precision {self.name!r}: use {', '.join(PRECISIONS)}")

    @classmethod
    def choose(cls, device: str | torch.device, fp16: bool | None,
               on_fallback: Callable[[str], None] | None = None) -> "PrecisionPolicy":
        """The policy for a run: fp16 on CUDA when asked (None: the default, fp16 on CUDA); on any other
        device fp32, and when fp16 was asked for explicitly, `on_fallback(FP16_WITHOUT_CUDA)` (the
        caller's one warning; None: say nothing)."""
        device_type = torch.device(device).type
        if device_type == "cuda":
            return cls("fp16" if fp16 is None or fp16 else "fp32", "cuda")
        if fp16 and on_fallback is not None:
            on_fallback(FP16_WITHOUT_CUDA)
        return cls("fp32", device_type)

    def full(self) -> "PrecisionPolicy":
        """The float32 policy on the same device (the guard's fallback)."""
        return PrecisionPolicy("fp32", self.device_type)

    @property
    def reduced(self) -> bool:
        return self.name != "fp32"

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the convolution stacks compute in."""
        return DTYPES[self.name]

    @property
    def channels_last(self) -> bool:
        """Tensor-core layout for the reduced-precision convolutions on CUDA."""
        return self.reduced and self.device_type == "cuda"

    @contextlib.contextmanager
    def compute(self) -> Iterator[None]:
        """The region a forward runs in: autocast to `dtype` (off for fp32), TF32 off on CUDA."""
        with contextlib.ExitStack() as stack:
            if self.device_type == "cuda":
                stack.enter_context(
                    torch.backends.cudnn.flags(enabled=True, benchmark=True, deterministic=False, allow_tf32=False)
                )
                previous = torch.backends.cuda.matmul.allow_tf32
                torch.backends.cuda.matmul.allow_tf32 = False
                stack.callback(setattr, torch.backends.cuda.matmul, "allow_tf32", previous)
            stack.enter_context(torch.autocast(self.device_type, dtype=self.dtype, enabled=self.reduced))
            yield

    def prepare(self, module: torch.nn.Module) -> torch.nn.Module:
        """A module ready for this policy: float32 master weights; channels-last on CUDA when reduced."""
        module = module.float()
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        return module


def warn_about_precision(message: str) -> None:
    """The default `on_fallback` of `PrecisionPolicy.choose` for commands: a UserWarning."""
    warnings.warn(message, UserWarning, stacklevel=3)


@contextlib.contextmanager
def float32_region(device_type: str) -> Iterator[None]:
    """Autocast off: what runs inside computes in the dtype of its inputs; callers pass float32."""
    with torch.autocast(device_type, enabled=False):
        yield


def conv_input(x: torch.Tensor) -> torch.Tensor:
    """A convolution stack's input: channels-last when autocast runs it in reduced precision on CUDA
    (the tensor-core layout); unchanged otherwise. Autocast itself does the dtype cast."""
    if x.is_cuda and x.dim() == 4 and torch.is_autocast_enabled("cuda"):
        return x.contiguous(memory_format=torch.channels_last)
    return x
