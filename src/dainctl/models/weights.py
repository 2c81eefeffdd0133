"""Reading, validating and loading DAIN checkpoints.

Two kinds of file are accepted, recognised by their bytes rather than their name:
  * a file written by `dainctl convert` (safetensors, with metadata naming the architecture), and
  * the original `best.pth`: a flat name -> tensor dict written by `torch.save`, in the legacy (pre-1.6)
    or the zip serialisation, with tensors saved on CUDA or CPU; `module.` prefixes (DataParallel) and a
    dict wrapping the state_dict under `state_dict` or `model` are accepted too.
Pickles are only ever read with `torch.load(weights_only=True)`: a file that would import or call
anything but tensors is refused, never retried unsafely.

Validation is strict (unlike the original demo, which silently dropped unknown keys and kept random
weights for missing ones): every key and shape must match the architecture; only BatchNorm
`num_batches_tracked` counters may be absent.  Every failure is a one-line `WeightsError`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import re
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dainctl.errors import OutputError, WeightsError

ARCHITECTURE_ID = "dain-baowenbo-7c727ac"  # DAIN / DAIN_slowmotion, channel=3, filter_size=4
OPTIONAL_KEY_SUFFIX = ".num_batches_tracked"  # BatchNorm counters: unused at inference
WRAPPER_KEYS = ("state_dict", "model")
_MAX_NAMES_IN_MESSAGE = 12


@dataclass
class CheckpointFile:
    """A checkpoint as read from disk, before validation.

    state_dict: name -> tensor on CPU, in the file's dtypes, prefixes and wrappers removed.
    file_format: "safetensors", "torch-zip" or "torch-legacy".
    metadata: the safetensors metadata ({} for torch files).
    """

    path: Path
    state_dict: dict[str, torch.Tensor]
    file_format: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class LoadedWeights:
    """A validated DAIN state_dict ready for `DAIN.load_state_dict`.

    converted_in_memory is True when the source was a raw `best.pth` (the caller should suggest
    `dainctl convert` once, to load faster and safer next time).
    """

    path: Path
    state_dict: dict[str, torch.Tensor]
    file_format: str
    metadata: dict[str, str]
    converted_in_memory: bool


@functools.lru_cache(maxsize=1)
def expected_shapes() -> dict[str, tuple[int, ...]]:
    """The architecture's state_dict layout: key -> shape, in the original key order."""
    from dainctl.models.dain import DAIN  # local import: dain.py needs the kernels package

    with torch.device("meta"):
        model = DAIN()
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def sha256_of_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sniff_format(path: Path) -> str:
    try:
        with open(path, "rb") as stream:
            head = stream.read(16)
    except IsADirectoryError:
        raise WeightsError(f"{path} is a directory, not a checkpoint file") from None
    except FileNotFoundError:
        raise WeightsError(f"checkpoint {path} does not exist") from None
    except OSError as error:
        raise WeightsError(f"cannot read checkpoint {path}: {error.strerror or error}") from None
    if not head:
        raise WeightsError(f"checkpoint {path} is empty")
    if head[:4] == b"PK\x03\x04":
        return "torch-zip"
    # safetensors: an 8-byte little-endian header length, then a JSON object.
    if len(head) > 8 and head[8:9] == b"{":
        return "safetensors"
    return "torch-legacy"


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as reader:
            metadata = dict(reader.metadata() or {})
            tensors = {name: reader.get_tensor(name) for name in reader.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{path} is not a readable safetensors file (truncated or corrupt): {_first_line(error)}") from None
    return tensors, metadata


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _read_torch(path: Path) -> object:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        code_reference = re.search(r"GLOBAL ([\w.]+)", text)
        if code_reference:
            raise WeightsError(
                f"refusing to load {path}: it is a pickle that would run code ({code_reference.group(1)}), "
                "not a plain tensor checkpoint"
            ) from None
        raise WeightsError(f"{path} is not a PyTorch checkpoint (unreadable pickle data)") from None
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure to parse untrusted bytes means "corrupt"
        # EOFError, struct.error, KeyError, ... carry no useful text; the others do.
        readable = isinstance(error, (RuntimeError, OSError, ValueError, zipfile.BadZipFile)) and str(error).strip()
        detail = _first_line(error) if readable else "unexpected end of file or bad data"
        raise WeightsError(f"{path} is truncated or not a PyTorch checkpoint: {detail}") from None


def _unwrap_state_dict(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    """Find the name -> tensor dict inside what torch.load returned; strip `module.` prefixes."""
    state = loaded
    for _ in range(3):  # e.g. {"model": {"state_dict": {...}}}
        if isinstance(state, dict) and not any(isinstance(value, torch.Tensor) for value in state.values()):
            wrapped = next((state[key] for key in WRAPPER_KEYS if isinstance(state.get(key), dict)), None)
            if wrapped is None:
                break
            state = wrapped
    if not isinstance(state, dict) or not state:
        raise WeightsError(f"{path} holds a {type(loaded).__name__}, not a state_dict of named tensors")
    non_tensors = [str(key) for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if non_tensors:
        raise WeightsError(
            f"{path} is not a plain state_dict: entries that are not tensors: {_name_list(non_tensors)}"
        )
    # DataParallel / DistributedDataParallel save "module."-prefixed names.
    return {(key[len("module.") :] if key.startswith("module.") else key): value for key, value in state.items()}


def read_checkpoint(path: str | os.PathLike) -> CheckpointFile:
    """Read a checkpoint file into CPU tensors without validating it. Raises `WeightsError`."""
    path = Path(path)
    file_format = _sniff_format(path)
    if file_format == "safetensors":
        tensors, metadata = _read_safetensors(path)
        return CheckpointFile(path, tensors, file_format, metadata)
    loaded = _read_torch(path)
    return CheckpointFile(path, _unwrap_state_dict(loaded, path), file_format, {})


def _name_list(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_NAMES_IN_MESSAGE])
    more = len(names) - _MAX_NAMES_IN_MESSAGE
    return shown + (f" and {more} more" if more > 0 else "")


@dataclass
class LayoutMismatch:
    """The offending keys of a state_dict that does not match the architecture."""

    missing: list[str]
    unexpected: list[str]
    wrong_shape: list[str]  # "key: file [..] vs expected [..]"
    wrong_dtype: list[str]
    non_finite: list[str]

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.wrong_shape or self.wrong_dtype or self.non_finite)

    def message(self, path: Path, total_keys: int) -> str:
        expected = expected_shapes()
        matching = total_keys - len(self.unexpected)
        if matching < len(expected) // 2:
            lead = (
                f"{path} is not a DAIN checkpoint: only {matching} of its {total_keys} keys belong to the "
                f"DAIN architecture ({len(expected)} keys)"
            )
        else:
            lead = f"{path} does not match the DAIN architecture"
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing: {_name_list(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected: {_name_list(self.unexpected)}")
        if self.wrong_shape:
            parts.append(f"{len(self.wrong_shape)} with the wrong shape: {_name_list(self.wrong_shape)}")
        if self.wrong_dtype:
            parts.append(f"{len(self.wrong_dtype)} with a non-float dtype: {_name_list(self.wrong_dtype)}")
        if self.non_finite:
            parts.append(f"{len(self.non_finite)} with NaN/Inf values: {_name_list(self.non_finite)}")
        return lead + "; " + "; ".join(parts)


class WeightsMismatchError(WeightsError):
    """A checkpoint whose keys, shapes or values do not fit DAIN; `.mismatch` lists every offending key."""

    def __init__(self, message: str, mismatch: LayoutMismatch):
        super().__init__(message)
        self.mismatch = mismatch


def find_mismatch(state_dict: dict[str, torch.Tensor]) -> LayoutMismatch:
    """Compare a state_dict with the architecture; every offending key is listed by name."""
    expected = expected_shapes()
    missing = [key for key in expected if key not in state_dict and not key.endswith(OPTIONAL_KEY_SUFFIX)]
    unexpected = [key for key in state_dict if key not in expected]
    wrong_shape, wrong_dtype, non_finite = [], [], []
    for key, tensor in state_dict.items():
        if key not in expected:
            continue
        if tuple(tensor.shape) != expected[key]:
            wrong_shape.append(f"{key}: {list(tensor.shape)} vs {list(expected[key])}")
        elif key.endswith(OPTIONAL_KEY_SUFFIX):
            continue
        elif not tensor.is_floating_point():
            wrong_dtype.append(f"{key} ({str(tensor.dtype).removeprefix('torch.')})")
        elif not bool(torch.isfinite(tensor).all()):
            non_finite.append(key)
    return LayoutMismatch(missing, unexpected, wrong_shape, wrong_dtype, non_finite)


def validate_state_dict(state_dict: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Raise `WeightsMismatchError` (one line) unless `state_dict` fits the DAIN architecture."""
    mismatch = find_mismatch(state_dict)
    if mismatch:
        raise WeightsMismatchError(mismatch.message(Path(path), len(state_dict)), mismatch)


def load_dain_weights(path: str | os.PathLike) -> LoadedWeights:
    """Read and validate DAIN weights from a converted .safetensors file or a raw `best.pth`.

    Returns tensors on the CPU in the file's dtype (the caller's `load_state_dict` casts them).
    Raises `WeightsError` with one line for anything unreadable, unsafe or mismatched.
    """
    checkpoint = read_checkpoint(path)
    if checkpoint.file_format == "safetensors":
        architecture = checkpoint.metadata.get("architecture")
        if architecture is not None and architecture != ARCHITECTURE_ID:
            raise WeightsError(
                f"{checkpoint.path} holds weights for {architecture!r}, not {ARCHITECTURE_ID!r}"
            )
    validate_state_dict(checkpoint.state_dict, checkpoint.path)
    return LoadedWeights(
        path=checkpoint.path,
        state_dict=checkpoint.state_dict,
        file_format=checkpoint.file_format,
        metadata=checkpoint.metadata,
        converted_in_memory=checkpoint.file_format != "safetensors",
    )


def load_into_model(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Strict `load_state_dict` that tolerates only absent `num_batches_tracked` counters."""
    result = model.load_state_dict(state_dict, strict=False)
    missing = [key for key in result.missing_keys if not key.endswith(OPTIONAL_KEY_SUFFIX)]
    if missing or result.unexpected_keys:
        mismatch = LayoutMismatch(missing, list(result.unexpected_keys), [], [], [])
        raise WeightsMismatchError(mismatch.message(Path("<state_dict>"), len(state_dict)), mismatch)


def write_file_atomically(data: bytes, destination: str | os.PathLike) -> None:
    """Write `data` beside `destination`, then rename it into place: a failed or interrupted write
    leaves no partial file under the name. Raises `OutputError` (one line).

    The bytes are written with open() (umask-respecting mode): mkstemp and safetensors' save_file both
    create 0600 files, which would survive the rename."""
    destination = Path(destination)
    parent = destination.parent if str(destination.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {destination}: folder {parent} does not exist")
    temporary = str(parent / f".{destination.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, destination)
    except OSError as error:
        raise OutputError(f"cannot write {destination}: {error.strerror or error}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_weights_file(tensors: dict[str, torch.Tensor], metadata: dict[str, str], destination: str | os.PathLike) -> None:
    """A safetensors weights file at `destination`, written atomically (`write_file_atomically`)."""
    from safetensors.torch import save as save_safetensors

    write_file_atomically(save_safetensors(tensors, metadata=metadata), destination)
