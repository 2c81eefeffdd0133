"""JIT build of the compiled kernels (placeholder until the C++ sources land)."""

from __future__ import annotations

from dainctl.errors import EngineError


def load_library(need_cuda: bool = False) -> None:
    """Build (once) and load the dainctl op library. Raises `EngineError` when it cannot."""
    raise EngineError("the compiled dainctl kernels are not available yet")
