"""Emulated float16 on any device: how far would the half-precision policy move DAIN's output?

Half-precision convolutions read float16 inputs and weights, accumulate in float32 and write float16.
On a machine without a GPU (or to separate the policy from kernel effects), the same rounding can be
emulated in a float32 network through forward hooks. The default mode follows the policy's autocast
(`emulate_autocast_float16`: convolutions round, other layers stay float16 only when fed float16; the
element-wise additions between layers are not rounded, so it errs slightly on the kind side);
`--storage` rounds every layer's inputs, outputs and weights (`emulate_float16_storage`, the policy
before autocast, and the harsher one). Overflow shows up as Inf, exactly as it would in float16.

    .venv/bin/python benchmarks/fp16_emulation.py CASE_DIR WEIGHTS [--all-subnetworks] [--storage]

runs an oracle case (../shared/dain/oracle/<case>) twice on the CPU, float32 and emulated float16 (the
engine's policy: FLOAT32_SUBNETWORKS stay float32, unless --all-subnetworks), and prints the PSNR of
the emulated frames against the float32 frames and against the oracle's frames.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Iterable

import torch
from torch import nn

STORAGE_ROUNDED_LAYERS = (
    nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU, nn.LeakyReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Upsample,
)


def _round_to_float16(value):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.half().to(value.dtype)
    return value


def emulate_float16_storage(subnetworks: Iterable[nn.Module]) -> list[torch.utils.hooks.RemovableHandle]:
    """Round the sub-networks' parameters to float16 values (in place) and hook every layer so that its
    inputs and outputs are rounded too. Returns the hook handles (parameters stay rounded)."""
    handles = []
    for subnetwork in subnetworks:
        with torch.no_grad():
            for parameter in subnetwork.parameters():
                parameter.copy_(_round_to_float16(parameter))
        for module in subnetwork.modules():
            if isinstance(module, STORAGE_ROUNDED_LAYERS):
                handles.append(module.register_forward_pre_hook(lambda m, args: tuple(_round_to_float16(a) for a in args)))
                handles.append(module.register_forward_hook(lambda m, args, out: _round_to_float16(out)))
    return handles


CONVOLUTIONS = (nn.Conv2d, nn.ConvTranspose2d)


def _is_float16_valued(value) -> bool:
    return isinstance(value, torch.Tensor) and value.is_floating_point() and bool((value.half().float() == value).all())


def emulate_autocast_float16(subnetworks: Iterable[nn.Module]) -> list[torch.utils.hooks.RemovableHandle]:
    """The precision policy's float16 autocast, emulated in float32 (dainctl.precision): a convolution
    rounds its input and weights to float16 and returns a float16 result (compute stays float32, as on
    tensor cores); any other layer returns float16 when all its inputs are float16 (autocast's dtype
    propagation), and float32 otherwise (after a concatenation with a float32 tensor, say). Weights stay
    float32 (master weights): a convolution rounds them as it goes."""
    handles = []

    def convolution(module, args):
        rounded = tuple(_round_to_float16(a) for a in args)
        module._saved = {name: p.detach().clone() for name, p in module.named_parameters(recurse=False)}
        with torch.no_grad():
            for parameter in module.parameters(recurse=False):
                parameter.copy_(_round_to_float16(parameter))
        return rounded

    def restore(module, args, out):
        with torch.no_grad():
            for name, parameter in module.named_parameters(recurse=False):
                parameter.copy_(module._saved[name])
        return _round_to_float16(out)

    def follow(module, args, out):
        inputs = [a for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()]
        return _round_to_float16(out) if inputs and all(_is_float16_valued(a) for a in inputs) else out

    for subnetwork in subnetworks:
        for module in subnetwork.modules():
            if isinstance(module, CONVOLUTIONS):
                handles.append(module.register_forward_pre_hook(convolution))
                handles.append(module.register_forward_hook(restore))
            elif isinstance(module, STORAGE_ROUNDED_LAYERS):
                handles.append(module.register_forward_hook(follow))
    return handles


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two frames in [0, 1] (inf when identical)."""
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def main(argv: list[str] | None = None) -> int:
    from pathlib import Path

    from safetensors.torch import load_file

    from dainctl.engines.dain import FLOAT32_SUBNETWORKS, DainEngine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case_dir", type=Path)
    parser.add_argument("weights", type=Path)
    parser.add_argument("--all-subnetworks", action="store_true", help="emulate float16 in PWC-Net too")
    parser.add_argument("--storage", action="store_true",
                        help="round every layer's inputs, outputs and weights (the policy before autocast)")
    args = parser.parse_args(argv)

    case = load_file(str(args.case_dir / "case.safetensors"))
    timesteps = case["timesteps"].tolist()
    frame0, frame1 = case["frame0"][0], case["frame1"][0]
    oracle = [case["out_t%03d" % round(100 * t)][0] for t in timesteps]

    reference = DainEngine(args.weights, device="cpu").interpolate(frame0, frame1, timesteps)
    engine = DainEngine(args.weights, device="cpu")
    skip = () if args.all_subnetworks else FLOAT32_SUBNETWORKS
    emulate = emulate_float16_storage if args.storage else emulate_autocast_float16
    emulate(child for name, child in engine.network.named_children() if name not in skip)
    emulated = engine.interpolate(frame0, frame1, timesteps)
    policy = "every sub-network" if args.all_subnetworks else f"all but {', '.join(skip)}"
    mode = "float16 storage" if args.storage else "float16 autocast"
    print(f"{args.case_dir.name}: {mode} emulated in {policy}")
    for t, emulated_frame, fp32_frame, oracle_frame in zip(timesteps, emulated, reference, oracle):
        print(
            f"  t={t:.3f}  PSNR vs our fp32 {psnr(emulated_frame, fp32_frame):6.2f} dB   "
            f"vs oracle {psnr(emulated_frame, oracle_frame):6.2f} dB   "
            f"(our fp32 vs oracle {psnr(fp32_frame, oracle_frame):6.2f} dB)   "
            f"finite {bool(torch.isfinite(emulated_frame).all())}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
