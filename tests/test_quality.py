"""Quality metrics: PSNR/SSIM on cases with known answers, triplet discovery, evaluation."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dainctl.errors import InputError
from dainctl.quality import QualityReport, evaluate_triplets, find_triplets, psnr, quantize_8bit, ssim

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


class CrossFade:
    """Reference engine: (1-t)*frame0 + t*frame1."""

    name = "crossfade"

    def interpolate(self, frame0, frame1, timesteps):
        return [(1.0 - t) * frame0 + t * frame1 for t in timesteps]


def test_psnr_known_values():
    image = torch.rand(3, 20, 30)
    assert psnr(image, image) == math.inf
    # A uniform error of 0.1 is an MSE of 0.01: 20 dB on a [0,1] range, 20 + 20*log10(2) on [0,2].
    target = torch.full((3, 8, 8), 0.5)
    assert psnr(target + 0.1, target) == pytest.approx(20.0, abs=1e-5)
    assert psnr(target + 0.1, target, data_range=2.0) == pytest.approx(20.0 + 20 * math.log10(2), abs=1e-5)
    # Half the pixels off by 0.2: MSE 0.02.
    half = target.clone()
    half[:, :4] += 0.2
    assert psnr(half, target) == pytest.approx(10 * math.log10(1 / 0.02), abs=1e-5)
    with pytest.raises(ValueError):
        psnr(target, target[:, :4])


def test_ssim_known_values():
    image = torch.rand(3, 32, 32)
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    # Two flat images: variances and covariance vanish, leaving the luminance term.
    a, b = 0.2, 0.5
    c1, c2 = 0.01**2, 0.03**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(torch.full((1, 16, 16), a), torch.full((1, 16, 16), b)) == pytest.approx(expected, rel=1e-6)
    # Contrast reversal of a zero-mean pattern around 0.5 gives a negative structure term.
    pattern = torch.rand(1, 24, 24) - 0.5
    assert ssim(0.5 + 0.3 * pattern, 0.5 - 0.3 * pattern) < 0


def test_ssim_falls_as_noise_grows():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(3, 48, 48, generator=generator)
    noise = torch.randn(3, 48, 48, generator=generator)
    scores = [ssim((image + level * noise).clamp(0, 1), image) for level in (0.01, 0.05, 0.2)]
    assert 1.0 > scores[0] > scores[1] > scores[2]


def test_quantize_8bit_rounds_to_levels():
    frame = torch.tensor([[[-0.1, 0.0, 0.51 / 255, 0.49 / 255, 1.2]]])
    assert torch.equal(quantize_8bit(frame) * 255, torch.tensor([[[0.0, 0.0, 1.0, 0.0, 255.0]]]))


def _write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _make_triplet(folder: Path, names: tuple[str, str, str], seed: int, size=(24, 32)) -> None:
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    last = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    # Ground truth = the exact average where it is a whole number, so a cross-fade is near-perfect.
    middle = ((first.astype(np.int32) + last) // 2).astype(np.uint8)
    for name, image in zip(names, (first, middle, last)):
        _write(folder / name, image)


def test_find_triplets_both_layouts_in_natural_order(tmp_path):
    for n in (10, 2, 1):
        _make_triplet(tmp_path / "ucf" / str(n), ("frame0.png", "frame1.png", "frame2.png"), n)
    _make_triplet(tmp_path / "mb" / "Venus", ("frame10.png", "frame10i11.png", "frame11.png"), 7)
    (tmp_path / "mb" / "Incomplete").mkdir()
    _write(tmp_path / "mb" / "Incomplete" / "frame10.png", np.zeros((4, 4, 3), np.uint8))
    triplets = find_triplets(tmp_path)
    assert [t.name for t in triplets] == ["mb/Venus", "ucf/1", "ucf/2", "ucf/10"]
    assert triplets[0].middle.name == "frame10i11.png"
    assert triplets[1].middle.name == "frame1.png"
    # A triplet folder given directly is found too, under its own name.
    single = find_triplets(tmp_path / "mb" / "Venus")
    assert [t.name for t in single] == ["Venus"]


def test_find_triplets_errors(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        find_triplets(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no triplets"):
        find_triplets(tmp_path / "empty")


def test_evaluate_triplets_scores_and_progress(tmp_path):
    for n in (1, 2, 3):
        _make_triplet(tmp_path / str(n), ("frame0.png", "frame1.png", "frame2.png"), n)
    calls = []
    report = evaluate_triplets(CrossFade(), tmp_path, progress=lambda done, total, score: calls.append((done, total, score.name)))
    assert isinstance(report, QualityReport)
    assert calls == [(1, 3, "1"), (2, 3, "2"), (3, 3, "3")]
    # The cross-fade differs from the floor-average ground truth by at most one level (half the pixels).
    for item in report.items:
        assert item.psnr > 10 * math.log10(255**2 / 1.0)
        assert item.ssim > 0.99
        assert (item.height, item.width) == (24, 32)
    assert report.mean_psnr == pytest.approx(np.mean([s.psnr for s in report.items]))
    # An engine that returns the first frame scores far lower on random frames.
    class Hold:
        def interpolate(self, frame0, frame1, timesteps):
            return [frame0 for _ in timesteps]

    assert evaluate_triplets(Hold(), tmp_path).mean_psnr < report.mean_psnr - 20


def test_evaluate_triplets_rejects_unreadable_and_mismatched(tmp_path):
    _make_triplet(tmp_path / "a", ("frame0.png", "frame1.png", "frame2.png"), 1)
    (tmp_path / "a" / "frame1.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot read image"):
        evaluate_triplets(CrossFade(), tmp_path)
    _make_triplet(tmp_path / "a", ("frame0.png", "frame1.png", "frame2.png"), 1)
    _write(tmp_path / "a" / "frame2.png", np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(InputError, match="differ in size"):
        evaluate_triplets(CrossFade(), tmp_path)


@pytest.mark.parametrize("dataset, published", [("middlebury", 28.0), ("ucf101", 30.5)])
def test_crossfade_matches_published_reference(dataset, published):
    """The frame average on the shared triplets reproduces the reference scores in SOURCES.md."""
    folder = SHARED / "data" / dataset
    if not folder.is_dir():
        pytest.skip("../shared/data is absent")
    report = evaluate_triplets(CrossFade(), folder)
    assert len(report.items) == {"middlebury": 12, "ucf101": 21}[dataset]
    assert report.mean_psnr == pytest.approx(published, abs=0.05)
