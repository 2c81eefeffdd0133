"""Reusable DAIN test material: the fake checkpoint from ../shared, converted with `convert_checkpoint`.

Other test modules can use the fixtures by importing them:

    from dain_fixtures import converted_fake_weights  # noqa: F401  (a pytest fixture)

    def test_something(converted_fake_weights):  # Path to a float32 .safetensors, seed 0
        ...

or call `converted_fake_checkpoint(folder, seed=0, dtype="fp32")` directly.  Files are made once per
pytest session (in the session's base temp folder, reused when several modules import the fixtures).
Tests using them skip when ../shared is absent.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DAIN_SHARED = SHARED / "dain"
MANIFEST = DAIN_SHARED / "best_pth_manifest.json"
MAKE_FAKE_CHECKPOINT = DAIN_SHARED / "make_fake_checkpoint.py"
ORACLE = DAIN_SHARED / "oracle"


def require_dain_shared() -> None:
    for path in (MANIFEST, MAKE_FAKE_CHECKPOINT):
        if not path.exists():
            pytest.skip(f"{path} is not available")


def fake_checkpoint(folder: Path, seed: int = 0) -> Path:
    """The original-format fake `best.pth` for `seed` (legacy serialisation), made once in `folder`."""
    require_dain_shared()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"dain_fake_seed{seed}.pth"
    if not path.exists():
        partial = folder / f".dain_fake_seed{seed}.pth.partial"
        subprocess.run(
            [sys.executable, str(MAKE_FAKE_CHECKPOINT), str(MANIFEST), str(partial), "--seed", str(seed)],
            check=True,
            capture_output=True,
        )
        partial.rename(path)
    return path


def converted_fake_checkpoint(folder: Path, seed: int = 0, dtype: str = "fp32") -> Path:
    """`fake_checkpoint(seed)` converted by `dainctl.convert.convert_checkpoint` to `dtype` safetensors."""
    from dainctl.convert import convert_checkpoint

    path = folder / f"dain_fake_seed{seed}_{dtype}.safetensors"
    if not path.exists():
        convert_checkpoint(fake_checkpoint(folder, seed), path, dtype)
    return path


def _session_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "dain_weights"


@pytest.fixture(scope="session")
def fake_best_pth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path to the seed-0 fake checkpoint in the original best.pth format."""
    return fake_checkpoint(_session_folder(tmp_path_factory), 0)


@pytest.fixture(scope="session")
def converted_fake_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path to the seed-0 fake checkpoint converted to float32 safetensors (oracle parity needs fp32)."""
    return converted_fake_checkpoint(_session_folder(tmp_path_factory), 0, "fp32")
