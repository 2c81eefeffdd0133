"""Fake (meta) kernels: output shapes and dtypes, so `torch.compile` can trace around the ops."""

from __future__ import annotations

import torch

_registered: set[str] = set()  # cache: ops whose fake kernel is registered in this process


def register_fake_kernels() -> None:
    """Register the fake kernel of every dainctl op (idempotent; the library must be loaded)."""
    kernels = {
        "dainctl::depth_flow_projection": _depth_flow_projection_fake,
        "dainctl::filter_interpolation": _filter_interpolation_fake,
        "dainctl::correlation": _correlation_fake,
        "dainctl::backward_warp": _backward_warp_fake,
        "dainctl::bicubic_warp": _backward_warp_fake,  # the same shapes
        "dainctl::backward_warp_backward": _backward_warp_backward_fake,
        "dainctl::filter_interpolation_backward": _filter_interpolation_backward_fake,
        "dainctl::correlation_backward": _correlation_backward_fake,
        "dainctl::depth_flow_projection_backward": _depth_flow_projection_backward_fake,
    }
    for name, kernel in kernels.items():
        if name not in _registered:
            torch.library.register_fake(name, kernel)
            _registered.add(name)


def _depth_flow_projection_fake(flow: torch.Tensor, weight: torch.Tensor, fill_holes: bool) -> torch.Tensor:
    return flow.new_empty(flow.shape)


def _filter_interpolation_fake(input: torch.Tensor, flow: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    return input.new_empty(input.shape)


def _correlation_fake(a: torch.Tensor, b: torch.Tensor, max_displacement: int) -> torch.Tensor:
    side = 2 * max_displacement + 1
    return a.new_empty((a.shape[0], side * side, a.shape[2], a.shape[3]))


def _backward_warp_fake(input: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    return input.new_empty(input.shape)


def _backward_warp_backward_fake(grad: torch.Tensor, input: torch.Tensor, flow: torch.Tensor):
    return input.new_empty(input.shape), flow.new_empty(flow.shape)


def _filter_interpolation_backward_fake(grad, input, flow, filters):
    return input.new_empty(input.shape), flow.new_empty(flow.shape), filters.new_empty(filters.shape)


def _correlation_backward_fake(grad, a, b, max_displacement: int):
    return a.new_empty(a.shape), b.new_empty(b.shape)


def _depth_flow_projection_backward_fake(grad, flow, weight, fill_holes: bool):
    return flow.new_empty(flow.shape), weight.new_empty(weight.shape)
