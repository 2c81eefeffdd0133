"""DAIN through the command line, proven on the oracle fixtures.

The fake checkpoint is regenerated from ../shared, converted with `dainctl convert`, and the CLI runs on
the case's frames as an image folder. The oracle's own compare.py judges the PNGs. Nothing here depends
on the fixture's seed or crop: both are read from the case.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from dainctl.cli import main
from dain_fixtures import ORACLE, fake_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cli_converted_weights(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dain_cli_weights")
    source = fake_checkpoint(folder, seed=0)
    destination = folder / "dain_fp32.safetensors"
    assert main(["convert", str(source), str(destination), "--dtype", "fp32", "--quiet"]) == 0
    return destination


def case_frames(case: Path, folder: Path) -> list[float]:
    """Write the case's two input frames as PNGs; return its timesteps."""
    from safetensors import safe_open

    with safe_open(str(case / "case.safetensors"), "pt") as f:
        frames = [f.get_tensor(name)[0] for name in ("frame0", "frame1")]
        timesteps = f.get_tensor("timesteps").tolist()
    folder.mkdir()
    for i, frame in enumerate(frames):
        rgb = (frame.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
        cv2.imwrite(str(folder / f"frame{i}.png"), rgb[:, :, ::-1])
    return timesteps


def compare_pngs(case: Path, produced: dict[str, Path], tmp_path: Path) -> subprocess.CompletedProcess:
    png_dir = tmp_path / "mine"
    png_dir.mkdir()
    for name, path in produced.items():
        shutil.copy(path, png_dir / name)
    return subprocess.run(
        [sys.executable, str(ORACLE / "compare.py"), str(case), "--png-dir", str(png_dir)],
        capture_output=True, text=True,
    )


def oracle_case(name: str) -> Path:
    case = ORACLE / name
    if not (case / "case.safetensors").exists():
        pytest.skip(f"{case} is not available")
    return case


def test_interpolate_matches_the_original_dain(tmp_path, cli_converted_weights):
    case = oracle_case("mb_dogdance")
    timesteps = case_frames(case, tmp_path / "frames")
    assert timesteps == [0.5]
    out = tmp_path / "out"
    code = main(["interpolate", str(tmp_path / "frames"), str(out), "--engine", "dain",
                 "--weights", str(cli_converted_weights), "--fp32", "--quiet"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["00000000.png", "00000001.png", "00000002.png"]
    result = compare_pngs(case, {"out_t050.png": out / "00000001.png"}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_slowmo_matches_the_original_dain_slowmotion(tmp_path, cli_converted_weights):
    case = oracle_case("slowmo_venus")
    timesteps = case_frames(case, tmp_path / "frames")
    factor = round(1 / timesteps[0])
    assert timesteps == pytest.approx([k / factor for k in range(1, factor)])
    out = tmp_path / "out"
    code = main(["slowmo", str(tmp_path / "frames"), str(out), "--factor", str(factor), "--engine", "dain",
                 "--weights", str(cli_converted_weights), "--fp32", "--quiet"])
    assert code == 0
    produced = {f"out_t{round(100 * t):03d}.png": out / f"{k:08d}.png" for k, t in enumerate(timesteps, start=1)}
    result = compare_pngs(case, produced, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_raw_best_pth_is_accepted_with_a_hint(tmp_path, capsys, cli_converted_weights):
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        cv2.imwrite(str(frames / f"{i}.png"), (rng.random((48, 64, 3)) * 255).astype(np.uint8))
    raw = fake_checkpoint(cli_converted_weights.parent, seed=0)
    code = main(["interpolate", str(tmp_path / "frames"), str(tmp_path / "out"), "--engine", "dain",
                 "--weights", str(raw), "--fp32"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "dainctl convert" in err


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", b"\x80\x02garbage pickle"])
def test_bad_checkpoint_is_one_line(tmp_path, capsys, content):
    bad = tmp_path / "best.pth"
    bad.write_bytes(content)
    code = main(["convert", str(bad), str(tmp_path / "x.safetensors")])
    err = capsys.readouterr().err
    assert code == 6, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("dainctl: error: ")
    assert not (tmp_path / "x.safetensors").exists()
