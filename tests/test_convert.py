"""`convert_checkpoint`: best.pth -> safetensors with metadata, strict layout, sizes, safe failures."""

from __future__ import annotations

import collections
import hashlib
import os
from pathlib import Path

import pytest
import torch

from dainctl import __version__
from dainctl.convert import convert_checkpoint
from dainctl.errors import OutputError, UsageError, WeightsError
from dainctl.models.weights import ARCHITECTURE_ID, OPTIONAL_KEY_SUFFIX, expected_shapes, load_dain_weights


@pytest.fixture(scope="module")
def best_pth(tmp_path_factory) -> Path:
    """A DAIN-shaped state_dict with random values, saved like the original (legacy format)."""
    generator = torch.Generator().manual_seed(1234)
    sd = collections.OrderedDict()
    for name, shape in expected_shapes().items():
        if name.endswith(OPTIONAL_KEY_SUFFIX):
            sd[name] = torch.tensor(0, dtype=torch.int64)
        elif name.endswith(".running_var"):
            sd[name] = torch.rand(shape, generator=generator) + 0.5
        else:
            sd[name] = torch.randn(shape, generator=generator) * 0.05
    path = tmp_path_factory.mktemp("convert") / "best.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=False)
    return path


def _read(path: Path):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as reader:
        return {k: reader.get_tensor(k) for k in reader.keys()}, reader.metadata()


def test_fp16_halves_the_file_and_loads_strictly(best_pth, tmp_path) -> None:
    result = convert_checkpoint(best_pth, tmp_path / "dain.safetensors", "fp16")
    tensors, metadata = _read(tmp_path / "dain.safetensors")
    assert result.destination_bytes == (tmp_path / "dain.safetensors").stat().st_size
    assert result.source_bytes == best_pth.stat().st_size
    assert 0.49 < result.destination_bytes / result.source_bytes < 0.51
    assert result.num_tensors == len(expected_shapes()) == len(tensors)
    assert metadata["architecture"] == ARCHITECTURE_ID and metadata["dtype"] == "fp16"
    assert metadata["dainctl_version"] == __version__
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "dain.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    assert metadata["source_sha256"] == hashlib.sha256(best_pth.read_bytes()).hexdigest() == result.source_sha256

    source = torch.load(best_pth, weights_only=True)
    for name, tensor in tensors.items():
        if name.endswith(OPTIONAL_KEY_SUFFIX):
            assert tensor.dtype == torch.int64
        elif name.endswith((".running_mean", ".running_var")):
            assert tensor.dtype == torch.float32 and torch.equal(tensor, source[name])
        else:
            assert tensor.dtype == torch.float16 and torch.equal(tensor, source[name].half()), name

    from dainctl.models.dain import DAIN

    model = DAIN()
    model.load_state_dict(tensors, strict=True)
    loaded = load_dain_weights(tmp_path / "dain.safetensors")
    assert not loaded.converted_in_memory and loaded.file_format == "safetensors"


@pytest.mark.parametrize("dtype, torch_dtype", [("fp32", torch.float32)])
def test_other_dtypes(best_pth, tmp_path, dtype, torch_dtype) -> None:
    convert_checkpoint(best_pth, tmp_path / "dain.safetensors", dtype)
    tensors, metadata = _read(tmp_path / "dain.safetensors")
    source = torch.load(best_pth, weights_only=True)
    name = "flownets.conv1a.0.weight"
    assert metadata["dtype"] == dtype and tensors[name].dtype == torch_dtype
    assert torch.equal(tensors[name], source[name].to(torch_dtype))


def test_a_converted_file_converts_again(best_pth, tmp_path) -> None:
    first = convert_checkpoint(best_pth, tmp_path / "a.safetensors", "bf16")
    second = convert_checkpoint(tmp_path / "a.safetensors", tmp_path / "b.safetensors", "bf16")
    assert second.source_format == "safetensors"
    assert second.source_sha256 == hashlib.sha256((tmp_path / "a.safetensors").read_bytes()).hexdigest()
    assert _read(tmp_path / "b.safetensors")[0].keys() == _read(tmp_path / "a.safetensors")[0].keys()


def test_refusals_leave_no_output(best_pth, tmp_path) -> None:
    destination = tmp_path / "dain.safetensors"
    with pytest.raises(UsageError):
        convert_checkpoint(best_pth, destination, "int8")
    bad = tmp_path / "bad.pth"
    torch.save({"flownets.conv1a.0.weight": torch.zeros(16, 3, 3, 3)}, bad, _use_new_zipfile_serialization=False)
    with pytest.raises(WeightsError, match="missing"):
        convert_checkpoint(bad, destination)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(best_pth.read_bytes()[:5000])
    with pytest.raises(WeightsError):
        convert_checkpoint(truncated, destination)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pth", "truncated.pth"]


def test_existing_destination_needs_overwrite(best_pth, tmp_path) -> None:
    destination = tmp_path / "dain.safetensors"
    destination.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="exists"):
        convert_checkpoint(best_pth, destination)
    assert destination.read_bytes() == b"keep me"
    convert_checkpoint(best_pth, destination, overwrite=True)
    assert load_dain_weights(destination).file_format == "safetensors"
    with pytest.raises(OutputError, match="source"):
        convert_checkpoint(destination, destination, overwrite=True)
    with pytest.raises(OutputError, match="does not exist"):
        convert_checkpoint(best_pth, tmp_path / "no" / "such" / "dir.safetensors")
