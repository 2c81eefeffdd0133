"""DAIN fidelity: our network, fed the oracle's fake weights through `convert_checkpoint`, must compute
what the original DAIN code computed, stage by stage, under ../shared/dain/oracle/compare.py's rule.

Every case directory under the oracle folder is run once (float32, CPU), with the seed, frames and
times read from the case; the padding is derived by the engine from the frame size and must equal
the case's.  Slow: about a minute per case on two busy cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dain_fixtures import ORACLE, converted_fake_checkpoint, require_dain_shared

pytestmark = pytest.mark.slow


def _case_dirs() -> list[Path]:
    if not ORACLE.is_dir():
        return []
    return sorted(path.parent for path in ORACLE.glob("*/case.safetensors"))


def _load_case(case_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    with safe_open(str(case_dir / "case.safetensors"), "pt") as reader:
        return {name: reader.get_tensor(name) for name in reader.keys()}, dict(reader.metadata())


def _suffix(t: float) -> str:
    return "_t%03d" % int(round(t * 100))


@pytest.mark.parametrize("case_dir", _case_dirs() or [pytest.param(None, marks=pytest.mark.skip("no oracle cases"))],
                         ids=lambda p: p.name if p else "none")
def test_dain_matches_original_on_oracle_case(case_dir: Path, tmp_path: Path, tmp_path_factory) -> None:
    require_dain_shared()
    from PIL import Image
    from safetensors.torch import save_file

    from dainctl.engines.dain import DainEngine

    case, metadata = _load_case(case_dir)
    seed = int(metadata["checkpoint_seed"])
    weights = converted_fake_checkpoint(tmp_path_factory.getbasetemp() / "dain_weights", seed, "fp32")
    timesteps = case["timesteps"].tolist()
    # Our engine always projects frame 1 with (1 - t); the original's DAIN class used the reversed list,
    # which is the same whenever the case's times are symmetric, as they must be here.
    backward = json.loads(metadata.get("backward_time_offsets", "null"))
    if backward is not None:
        assert backward == pytest.approx([1.0 - t for t in timesteps])

    engine = DainEngine(weights, device="cpu", fp16=False)
    assert engine.precision == "fp32" and not engine.weights_converted_in_memory
    run = engine.run_pair(case["frame0"][0], case["frame1"][0], timesteps)

    padding = run.padding
    assert list(padding.as_lrtb()) == case["pads_lrtb"].tolist()
    height, width = case["frame0"].shape[-2:]

    def crop(x: torch.Tensor) -> torch.Tensor:
        return x[..., padding.top : padding.top + height, padding.left : padding.left + width]

    analysis = run.analysis
    mine = {
        "pwc_f01": analysis.flow01,
        "pwc_f10": analysis.flow10,
        "log_depth0": analysis.log_depth0,
        "log_depth1": analysis.log_depth1,
        "filter0_s4": analysis.kernels0[:, :, ::4, ::4],
        "filter1_s4": analysis.kernels1[:, :, ::4, ::4],
    }
    for t, synthesis, frame in zip(timesteps, run.syntheses, run.frames):
        s = _suffix(t)
        mine.update({
            "Ft0" + s: crop(synthesis.flow_t0),
            "Ft1" + s: crop(synthesis.flow_t1),
            "ref0" + s: crop(synthesis.warped0),
            "ref2" + s: crop(synthesis.warped1),
            "cur_output" + s: crop(synthesis.blend),
            "out_padded" + s: synthesis.frame,
            "out" + s: frame[None],
        })
        # What the demo writes: round-half-to-even of 255 * x in float32.
        pixels = np.round(255.0 * frame.permute(1, 2, 0).numpy()).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"out{s}.png")
    for name, tensor in mine.items():
        assert name in case and tensor.shape == case[name].shape, name
    save_file({name: tensor.float().contiguous() for name, tensor in mine.items()}, str(tmp_path / "mine.safetensors"))

    result = subprocess.run(
        [sys.executable, str(ORACLE / "compare.py"), str(case_dir), "--mine", str(tmp_path / "mine.safetensors"),
         "--png-dir", str(tmp_path)],
        capture_output=True, text=True,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout and result.stdout.count(" ok") >= len(mine) + len(timesteps)
