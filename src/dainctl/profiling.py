"""Named timing sections inside the engines, for `dainctl benchmark`'s per-stage breakdown.

Engines mark their stages with `section("upload")`, `section("flow")`, ... . Outside `recording()` a
section costs one context-variable lookup and does nothing else; the pipeline's worker threads never
record (a new thread starts without the recorder). Inside `recording()`, on the thread that entered it,
each section's *exclusive* time is summed under its name: while a nested section runs, the enclosing
one is paused, so the parts add up to the time spent in sections and nothing is counted twice.

Stage names used by the engines (`STAGES`):
  upload              frames to the compute device (and DAIN's padding)
  flow                optical flow (PWC-Net, or DIS in the weight-free engine)
  depth, context, kernels
                      DAIN's MegaDepth, context extractor and kernel estimation networks
  projection_warping  flow projection, warps and the blend (the custom ops)
  synthesis           DAIN's residual rectifier
  download            crop, clamp and copy of the output frames to the host
"""

from __future__ import annotations

import contextlib
import os
import time
from contextvars import ContextVar
from typing import Iterator

import torch

_IMPORTED = time.monotonic()


def process_seconds() -> float:
    """Seconds since this process started (Linux: from /proc, so the interpreter's and the imports'
    start-up count); elsewhere, since this module was imported."""
    try:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as uptime:
            since_boot = float(uptime.read().split()[0])
        return max(0.0, since_boot - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return time.monotonic() - _IMPORTED


STAGES = ("upload", "flow", "depth", "context", "kernels", "projection_warping", "synthesis", "download")


class Recorder:
    """Exclusive seconds per section name; synchronises CUDA at every boundary when `sync` is set, so
    that asynchronous kernels are charged to the section that launched them."""

    def __init__(self, sync: bool = False):
        self.sync = sync
        self.seconds: dict[str, float] = {}
        self._stack: list[list] = []  # [name, started] of the open sections, innermost last

    def _now(self) -> float:
        if self.sync:
            torch.cuda.synchronize()
        return time.perf_counter()

    def _charge(self, now: float) -> None:
        if self._stack:
            name, started = self._stack[-1]
            self.seconds[name] = self.seconds.get(name, 0.0) + now - started

    def enter(self, name: str) -> None:
        now = self._now()
        self._charge(now)  # pause the enclosing section
        self._stack.append([name, now])

    def exit(self) -> None:
        now = self._now()
        self._charge(now)
        self._stack.pop()
        if self._stack:
            self._stack[-1][1] = now  # resume the enclosing section

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


_ACTIVE: ContextVar[Recorder | None] = ContextVar("dainctl_profiling_recorder", default=None)


@contextlib.contextmanager
def section(name: str) -> Iterator[None]:
    """Time the block under `name` when a recorder is active; otherwise do nothing."""
    recorder = _ACTIVE.get()
    if recorder is None:
        yield
        return
    recorder.enter(name)
    try:
        yield
    finally:
        recorder.exit()


@contextlib.contextmanager
def recording(sync: bool = False) -> Iterator[Recorder]:
    """Record the sections entered by this thread while the block runs."""
    recorder = Recorder(sync)
    token = _ACTIVE.set(recorder)
    try:
        yield recorder
    finally:
        _ACTIVE.reset(token)
