"""The CUDA build check without a GPU: `DAINCTL_FORCE_CUDA_BUILD` in `_build`, and the dispatch-table check
of scripts/check_cuda_dispatch.py (which scripts/build_cuda_variant.sh runs against a CUDA torch)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from dainctl.errors import EngineError
from dainctl.kernels import _build

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dispatch = _load_script("check_cuda_dispatch")

DUMP = """name: dainctl::backward_warp
schema: dainctl::backward_warp(Tensor input, Tensor flow) -> Tensor
debug: registered at ops.cpp:91
alias analysis kind: FROM_SCHEMA
CPU: registered at ops.cpp:98 :: (Tensor _0, Tensor _1) -> Tensor _0 [ boxed unboxed ]
CUDA: registered at ops_cuda.cpp:102 :: (Tensor _0, Tensor _1) -> Tensor _0 [ boxed unboxed ]
Meta: registered at torch/library.py:1003 :: (none) [ boxed ]
Autograd[alias]: registered at torch/library.py:1003 :: (none) [ boxed ]
"""


def test_dump_keys_reads_the_kernels_of_a_dispatch_dump():
    assert dispatch.dump_keys(DUMP) == ["CPU", "CUDA", "Meta", "Autograd"]
    assert dispatch.dump_keys("name: dainctl::x\ndebug: registered at a.cpp:1\n") == []


def test_the_sources_define_the_five_ops_their_backward_ops_and_register_their_autograd():
    from dainctl.kernels._autograd import COMPILED_BACKWARD, FORWARD_OPS

    forward = ["depth_flow_projection", "filter_interpolation", "correlation", "backward_warp", "bicubic_warp"]
    compiled_backward = forward[:4]
    assert dispatch.defined_ops()[:5] == forward == list(FORWARD_OPS)
    assert sorted(dispatch.defined_ops()[5:]) == sorted(f"{name}_backward" for name in compiled_backward)
    assert list(COMPILED_BACKWARD) == compiled_backward
    # Every forward op declares a backward (bicubic_warp's through its twin, registered in Python), so
    # the check requires an Autograd kernel for each.
    assert dispatch.autograd_ops() == set(forward)


def test_a_declared_backward_makes_autograd_required(tmp_path):
    csrc, python = tmp_path / "csrc", tmp_path / "py"
    csrc.mkdir()
    python.mkdir()
    (csrc / "ops.cpp").write_text(
        'TORCH_LIBRARY(dainctl, m) {\n  m.def("a(Tensor x) -> Tensor");\n  m.def("b(Tensor x) -> Tensor");\n}\n'
        'TORCH_LIBRARY_IMPL(dainctl, CPU, m) {\n  m.impl("a", &a_cpu);\n  m.impl("b", &b_cpu);\n}\n'
        'TORCH_LIBRARY_IMPL(dainctl, Autograd, m) {\n  m.impl("a", &a_autograd);\n}\n'
    )
    (python / "c.py").write_text('torch.library.register_autograd(\n    "dainctl::c", backward)\n')
    assert dispatch.defined_ops(csrc) == ["a", "b"]
    assert dispatch.autograd_ops(csrc, python) == {"a", "c"}
    assert dispatch.required_keys("a", True, {"a"}) == ["CPU", "CUDA", "Meta", "Autograd"]
    assert dispatch.required_keys("b", False, {"a"}) == ["CPU", "Meta"]


def test_arch_lists():
    assert dispatch.requested_archs("8.0;9.0") == ["sm_80", "sm_90"]
    assert dispatch.requested_archs("7.5 9.0a+PTX") == ["sm_75", "sm_90a"]
    assert dispatch.requested_archs("native") == []


def test_the_check_passes_on_the_library_loaded_here():
    report = dispatch.check(require_cuda=torch.cuda.is_available())
    assert report["ok"], report["error"]
    assert set(report["ops"]) == set(dispatch.defined_ops())
    for entry in report["ops"].values():
        assert {"CPU", "Meta"} <= set(entry["kernels"]) and not entry["missing"]
    table = dispatch.format_table(report)
    assert "dainctl::correlation" in table and "MISSING" not in table


@pytest.fixture
def cuda_torch_without_gpu(monkeypatch):
    """What a CUDA build of torch looks like on a machine without a GPU, with a toolkit found."""
    from torch.utils import cpp_extension

    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", "/usr/local/cuda")
    monkeypatch.delenv(_build.FORCE_CUDA_ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.0;9.0")


def test_the_cuda_build_is_not_forced_by_default(cuda_torch_without_gpu):
    assert not _build._cuda_build_possible()
    with pytest.raises(EngineError, match="no GPU is visible.*DAINCTL_FORCE_CUDA_BUILD"):
        _build.load_library(need_cuda=True)


def test_force_cuda_build_without_a_gpu(cuda_torch_without_gpu, monkeypatch):
    monkeypatch.setenv(_build.FORCE_CUDA_ENV_VAR, "1")
    assert _build._cuda_build_possible()
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "")
    with pytest.raises(EngineError, match="needs TORCH_CUDA_ARCH_LIST"):
        _build._cuda_build_possible()


def test_forcing_needs_a_cuda_torch_and_a_toolkit(cuda_torch_without_gpu, monkeypatch):
    from torch.utils import cpp_extension

    monkeypatch.setenv(_build.FORCE_CUDA_ENV_VAR, "1")
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", None)
    assert not _build._cuda_build_possible()
    monkeypatch.setattr(torch.version, "cuda", None)
    assert not _build._cuda_build_possible()
    with pytest.raises(EngineError, match="built without CUDA"):
        _build.load_library(need_cuda=True)
