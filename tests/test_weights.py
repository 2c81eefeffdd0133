"""Reading and validating DAIN checkpoints: formats the original best.pth may come in, and every way a
file can be wrong (each must end in one `WeightsError` line)."""

from __future__ import annotations

import collections
import os
import pickle
from pathlib import Path

import pytest
import torch

from dainctl.errors import WeightsError
from dainctl.models.weights import (
    OPTIONAL_KEY_SUFFIX,
    WeightsMismatchError,
    expected_shapes,
    load_dain_weights,
    read_checkpoint,
    validate_state_dict,
)

SHARED_MANIFEST = Path(__file__).resolve().parents[1].parent / "shared" / "dain" / "best_pth_manifest.json"


@pytest.fixture(scope="module")
def state_dict() -> collections.OrderedDict:
    """A DAIN-shaped state_dict with distinct per-key values (so key mix-ups are visible)."""
    sd = collections.OrderedDict()
    for index, (name, shape) in enumerate(expected_shapes().items()):
        if name.endswith(OPTIONAL_KEY_SUFFIX):
            sd[name] = torch.tensor(7, dtype=torch.int64)
        else:
            sd[name] = torch.full(shape, float(index % 97) / 97.0)
    return sd


@pytest.fixture(scope="module")
def legacy_best_pth(state_dict, tmp_path_factory) -> Path:
    """`state_dict` saved like the original best.pth (legacy serialisation), once per module."""
    return _save_legacy(state_dict, tmp_path_factory.mktemp("weights") / "best.pth")


def _save_legacy(obj, path: Path) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=False)
    return path


def _assert_one_line(error: WeightsError, *fragments: str) -> None:
    assert "\n" not in error.message and error.exit_code == 6
    for fragment in fragments:
        assert fragment in error.message, error.message


def test_architecture_layout_matches_the_original_manifest() -> None:
    import json

    if not SHARED_MANIFEST.exists():
        pytest.skip(f"{SHARED_MANIFEST} is not available")
    manifest = json.loads(SHARED_MANIFEST.read_text(), object_pairs_hook=collections.OrderedDict)
    expected = {name: tuple(info["shape"]) for name, info in manifest["state_dict"].items()}
    assert list(expected_shapes().items()) == list(expected.items())  # names, shapes and order
    from dainctl.models.dain import DAIN

    with torch.device("meta"):
        model = DAIN()
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters_total"]
    for child, count in manifest["num_parameters_by_child"].items():
        assert sum(p.numel() for p in getattr(model, child).parameters()) == count, child


def test_legacy_pth_loads_and_is_flagged_as_converted_in_memory(state_dict, legacy_best_pth) -> None:
    loaded = load_dain_weights(legacy_best_pth)
    assert loaded.file_format == "torch-legacy" and loaded.converted_in_memory
    assert list(loaded.state_dict) == list(state_dict)
    name = "rectifyNet.block1.0.weight"
    assert torch.equal(loaded.state_dict[name], state_dict[name])


def test_zip_pth_with_module_prefix_and_wrapper_dict(state_dict, tmp_path) -> None:
    wrapped = {"epoch": 3, "state_dict": {"module." + k: v for k, v in state_dict.items()}}
    torch.save(wrapped, tmp_path / "wrapped.pth")
    loaded = load_dain_weights(tmp_path / "wrapped.pth")
    assert loaded.file_format == "torch-zip"
    assert list(loaded.state_dict) == list(state_dict)
    # a small wrapped file is enough to check the "model" wrapper
    torch.save({"model": {"module.a.weight": torch.ones(2)}}, tmp_path / "model.pth")
    assert list(read_checkpoint(tmp_path / "model.pth").state_dict) == ["a.weight"]


def test_tensors_saved_on_cuda_load_on_the_cpu(legacy_best_pth, tmp_path) -> None:
    # The released best.pth was saved from cuda:0 in the legacy format. Rewrite the storage location
    # recorded in a legacy pickle ('cpu' is memoised once) to get such a file without a GPU.
    data = legacy_best_pth.read_bytes()
    assert data.count(b"X\x03\x00\x00\x00cpu") == 1
    path = tmp_path / "cuda.pth"
    path.write_bytes(data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)  # proves the file really names a CUDA device
    loaded = load_dain_weights(path)
    assert all(t.device.type == "cpu" for t in loaded.state_dict.values())


def test_absent_num_batches_tracked_is_accepted(state_dict, tmp_path) -> None:
    trimmed = {k: v for k, v in state_dict.items() if not k.endswith(OPTIONAL_KEY_SUFFIX)}
    assert len(trimmed) == 799
    validate_state_dict(trimmed, "trimmed.pth")
    from dainctl.models.dain import DAIN
    from dainctl.models.weights import load_into_model

    model = DAIN()
    load_into_model(model, trimmed)
    assert torch.equal(model.depthNet[4].weight, state_dict["depthNet.4.weight"])


def test_missing_unexpected_and_misshapen_keys_are_named(state_dict, tmp_path) -> None:
    broken = dict(state_dict)
    del broken["flownets.dc_conv7.weight"]
    broken["flownets.extra.weight"] = torch.zeros(2)
    broken["ctxNet.block1.0.weight"] = torch.zeros(64, 3, 5, 5)
    with pytest.raises(WeightsMismatchError) as info:
        validate_state_dict(broken, tmp_path / "broken.pth")
    _assert_one_line(
        info.value, "flownets.dc_conv7.weight", "flownets.extra.weight", "ctxNet.block1.0.weight: [64, 3, 5, 5] vs [64, 3, 7, 7]"
    )
    assert info.value.mismatch.missing == ["flownets.dc_conv7.weight"]
    assert info.value.mismatch.unexpected == ["flownets.extra.weight"]


def test_non_finite_weights_are_refused(state_dict, tmp_path) -> None:
    broken = dict(state_dict)
    broken["rectifyNet.block5.0.bias"] = torch.tensor([0.0, float("nan"), 0.0])
    with pytest.raises(WeightsError) as info:
        validate_state_dict(broken, tmp_path / "nan.pth")
    _assert_one_line(info.value, "rectifyNet.block5.0.bias", "NaN")


def test_other_architecture_is_called_out(tmp_path) -> None:
    other = {f"layer{i}.conv.weight": torch.zeros(8, 8, 3, 3) for i in range(20)}
    with pytest.raises(WeightsError) as info:
        load_dain_weights(_save_legacy(other, tmp_path / "resnet.pth"))
    _assert_one_line(info.value, "is not a DAIN checkpoint", "0 of its 20 keys", "and 8 more")


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_code_running_pickle_is_refused(tmp_path, legacy, capfd) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"a": torch.zeros(1), "payload": _RunsCode()}, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(WeightsError) as info:
        load_dain_weights(path)
    _assert_one_line(info.value, "refusing to load", "would run code", "system")
    assert "should-never-run" not in capfd.readouterr().out


def test_plain_pickle_of_code_is_refused(tmp_path) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_RunsCode(), protocol=2))
    with pytest.raises(WeightsError) as info:
        load_dain_weights(path)
    _assert_one_line(info.value, "would run code")


@pytest.mark.parametrize("kind", ["legacy-half", "legacy-head", "zip-half", "safetensors-half"])
def test_truncated_files_fail_with_one_line(state_dict, tmp_path, kind) -> None:
    source = tmp_path / "full"
    if kind.startswith("legacy"):
        _save_legacy(state_dict, source)
    elif kind.startswith("zip"):
        torch.save(state_dict, source)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state_dict.items()}, str(source))
    data = source.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[:1000] if kind.endswith("head") else data[: len(data) // 2])
    with pytest.raises(WeightsError) as info:
        load_dain_weights(cut)
    _assert_one_line(info.value, str(cut))


@pytest.mark.parametrize(
    "content", [b"", b"hello, this is not a checkpoint\n", bytes(range(256)) * 40, b"\x89PNG\r\n\x1a\n" + b"\0" * 64],
    ids=["empty", "text", "binary", "png"],
)
def test_not_a_checkpoint_fails_with_one_line(tmp_path, content) -> None:
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError) as info:
        load_dain_weights(path)
    _assert_one_line(info.value, str(path))


def test_missing_file_and_directory(tmp_path) -> None:
    with pytest.raises(WeightsError) as info:
        load_dain_weights(tmp_path / "nope.pth")
    _assert_one_line(info.value, "does not exist")
    with pytest.raises(WeightsError) as info:
        load_dain_weights(tmp_path)
    _assert_one_line(info.value, "directory")


def test_non_tensor_entries_are_refused(tmp_path) -> None:
    mixed = {"rectifyNet.block5.0.bias": torch.zeros(3), "epoch": 12}
    with pytest.raises(WeightsError) as info:
        load_dain_weights(_save_legacy(mixed, tmp_path / "mixed.pth"))
    _assert_one_line(info.value, "not a plain state_dict", "epoch")
