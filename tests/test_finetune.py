"""`dainctl finetune`: triplet selection, the optimiser step, checkpoints and resume, Ctrl-C, several
processes, bad input. The training runs use the fake checkpoint of ../shared at 64x64 crops on the CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dain_fixtures import converted_fake_weights  # noqa: F401  (a pytest fixture)
from dainctl.cli import main
from dainctl.errors import InputError, UsageError
from dainctl.finetune.data import TripletSampler, read_clip, validation_items
from dainctl.finetune.trainer import FinetuneSettings, Learner, charbonnier, parse_train
from dainctl.framestore import to_tensor
from dainctl.models.weights import read_checkpoint
from dainctl.precision import PrecisionPolicy
from signal_helpers import default_signals, signal_once_ready

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _texture(seed: int, height: int, width: int, tint: tuple[float, float, float]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.random((height // 8 + 2, width // 8 + 2)).astype(np.float32)
    smooth = cv2.resize(noise, (width + 64, height + 64), interpolation=cv2.INTER_CUBIC)
    return np.clip(smooth[..., None] * np.array(tint, np.float32) * 255, 0, 255).astype(np.uint8)


def make_folder(folder: Path, frames: int = 30, cut: int | None = 15, duplicate: int | None = 8,
                size: tuple[int, int] = (96, 80), step: int = 3) -> Path:
    """An image folder: a texture moving `step` px per frame; a second shot (other texture and
    colours) from frame `cut`; frame `duplicate` repeats the frame before it."""
    width, height = size
    folder.mkdir(parents=True, exist_ok=True)
    shots = [_texture(1, height, width, (1.0, 0.55, 0.3)), _texture(2, height, width, (0.25, 0.5, 1.0))]
    offset = 0
    for index in range(frames):
        if index != duplicate:
            offset += step
        shot = shots[1 if cut is not None and index >= cut else 0]
        image = shot[8 : 8 + height, offset % 60 : offset % 60 + width]
        cv2.imwrite(str(folder / f"f{index:03d}.png"), cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("finetune") / "clip")


def test_triplets_exclude_cuts_and_duplicates_and_hold_out_the_end(clip_folder):
    clip = read_clip(clip_folder, crop=64)
    # 28 candidate triplets (i-2, i-1, i), i = 2..29. The cut between frames 14 and 15 spoils 2, the
    # repeat of frame 7 as frame 8 spoils 2. The end is frame 30's start; 90% of it is 27, and the
    # last candidate (27, 28, 29) starts there: it is held out; (25, 26, 27) and (26, 27, 28)
    # straddle the split.
    assert clip.excluded == {"cut": 2, "duplicate": 2, "static": 0, "boundary": 2}
    assert clip.validation == [(27, 28, 29)]
    assert len(clip.train) == 25 - 4
    held_out = {i for triplet in clip.validation for i in triplet}
    assert not held_out & {i for triplet in clip.train for i in triplet}
    assert all(max(triplet) < min(held_out) for triplet in clip.train)
    assert set(clip.frames) == {i for triplet in clip.train + clip.validation for i in triplet}


def test_a_static_clip_gives_no_triplets_and_a_short_one_is_refused(tmp_path):
    still = make_folder(tmp_path / "still", frames=10, cut=None, duplicate=None, step=0)
    clip = read_clip(still, crop=64)
    assert not clip.train and not clip.validation
    assert clip.excluded["duplicate"] == 8
    with pytest.raises(InputError, match="at least 3"):
        read_clip(make_folder(tmp_path / "short", frames=2, cut=None, duplicate=None), crop=64)
    with pytest.raises(UsageError, match="larger than the 96x80"):
        read_clip(still, crop=96)


def test_sampler_is_reproducible_and_augments(clip_folder):
    clip = read_clip(clip_folder, crop=64)
    sampler = TripletSampler([clip], crop=64, seed=3)
    state = sampler.state
    first = sampler.batch(6)
    sampler.set_state(state)
    again = sampler.batch(6)
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    assert all(t.shape == (6, 3, 64, 64) for t in first)
    other = TripletSampler([clip], crop=64, seed=4).batch(6)
    assert not torch.equal(first[0], other[0])
    # Every crop is a window of some training frame, possibly flipped, and the middle stays in the
    # middle: with time reversal the outer frames swap.
    frames = {i: to_tensor(image) for i, image in clip.frames.items()}
    train_frames = {i for t in clip.train for i in t}

    def found(crop):
        for i in train_frames:
            for flip in ((), (2,), (1,), (1, 2)):
                image = frames[i].flip(flip) if flip else frames[i]
                windows = image.unfold(1, 64, 1).unfold(2, 64, 1)  # (3, H', W', 64, 64)
                if (windows == crop[:, None, None]).flatten(3).all(-1).all(0).any():
                    return True
        return False

    assert all(found(first[k][j]) for k in range(3) for j in range(2))


def test_validation_items_are_fixed_centre_crops(clip_folder):
    clip = read_clip(clip_folder, crop=64)
    items = validation_items([clip], crop=64, limit=4)
    assert len(items) == 1
    frame0, middle, frame1 = items[0]
    expected = to_tensor(clip.frames[28])[:, 8:72, 16:80]
    assert torch.equal(middle[0], expected)


def test_parse_train():
    assert parse_train("rectifier, kernel") == ("kernel", "rectifier")
    with pytest.raises(UsageError):
        parse_train("kernel,unet")


def _fixed_triplet() -> tuple[torch.Tensor, ...]:
    beanbags = SHARED / "data" / "middlebury" / "Beanbags"
    if beanbags.exists():
        from dainctl.video.reader import read_image_rgb

        images = [read_image_rgb(beanbags / name) for name in ("frame10.png", "frame10i11.png", "frame11.png")]
        images = [image[100:164, 200:264] for image in images]
    else:
        base = _texture(5, 80, 96, (0.9, 0.7, 0.5))
        images = [base[8:72, s : s + 64] for s in (0, 3, 6)]
    return tuple(to_tensor(np.ascontiguousarray(image))[None] for image in images)


@pytest.mark.slow
def test_one_hundred_steps_on_one_batch_halve_the_loss(converted_fake_weights):
    frame0, middle, frame1 = _fixed_triplet()
    settings = FinetuneSettings(clips=(), weights=converted_fake_weights, output=Path("unused"), crop=64, lr=1e-4)
    learner = Learner(settings, PrecisionPolicy("fp32", "cpu"))
    frozen = {name: p.detach().clone() for name, p in learner.model.named_parameters()
              if name.startswith(("flownets", "depthNet"))}
    losses = [learner.step([(frame0, middle, frame1)]) for _ in range(100)]
    assert np.mean(losses[-5:]) <= 0.5 * losses[0], losses
    # PWC-Net and MegaDepth are not trained by default.
    for name, p in learner.model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), name
    # The loss is the Charbonnier loss of the rectified frame.
    with torch.no_grad():
        out = learner.forward(learner.model, frame0, frame1)
    assert float(charbonnier(out, middle)) == pytest.approx(float(torch.sqrt((out - middle) ** 2 + 1e-12).mean()))


def _finetune_args(clip: Path, weights: Path, out: Path, *extra: str) -> list[str]:
    return ["finetune", str(clip), "--weights", str(weights), "--out", str(out), "--crop", "64", "--batch", "2",
            "--val-every", "2", "--val-items", "2", "--lr", "1e-4", "--json", *extra]


def _steps(stdout: str) -> dict[int, dict]:
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return {r["step"]: r for r in records if r["event"] == "step"}


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dainctl", *args], capture_output=True, text=True, env=ENV, timeout=600)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, clip_folder, converted_fake_weights):
    out = tmp_path_factory.mktemp("uninterrupted") / "tuned.safetensors"
    result = _run(_finetune_args(clip_folder, converted_fake_weights, out, "--steps", "4"))
    assert result.returncode == 0, result.stderr
    return out, _steps(result.stdout), result


@pytest.mark.slow
def test_finetune_writes_weights_curves_and_a_summary(uninterrupted, converted_fake_weights, tmp_path):
    out, steps, result = uninterrupted
    assert sorted(steps) == [1, 2, 3, 4]
    assert "val_psnr" in steps[2] and "val_psnr" in steps[4] and "val_psnr" not in steps[3]
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["event"] == "summary" and summary["steps"] == 4
    assert summary["clips"][0]["train_triplets"] == 21
    assert summary["final_val_psnr"] == pytest.approx(steps[4]["val_psnr"])
    assert "21 training and 1 validation triplets" in " ".join(result.stderr.split())
    tuned = read_checkpoint(out).state_dict
    start = read_checkpoint(converted_fake_weights).state_dict
    assert tuned.keys() == start.keys()
    assert not torch.equal(tuned["rectifyNet.block5.0.weight"], start["rectifyNet.block5.0.weight"])
    assert torch.equal(tuned["flownets.conv1a.0.weight"], start["flownets.conv1a.0.weight"])
    plot = cv2.imread(str(out.with_name("tuned.curves.png")))
    assert plot is not None and plot.shape[1] > plot.shape[0]
    # The tuned file runs through interpolate --engine dain.
    clip = make_folder(tmp_path / "three", frames=3, cut=None, duplicate=None, size=(64, 64))
    code = main(["interpolate", str(clip), str(tmp_path / "out.mkv"), "--engine", "dain", "--weights", str(out),
                 "--codec", "ffv1", "--quiet"])
    assert code == 0 and (tmp_path / "out.mkv").exists()


@pytest.mark.slow
def test_a_killed_run_resumes_with_the_same_losses(uninterrupted, clip_folder, converted_fake_weights, tmp_path):
    _, expected, _ = uninterrupted
    out = tmp_path / "tuned.safetensors"
    args = _finetune_args(clip_folder, converted_fake_weights, out, "--steps", "4", "--checkpoint-every", "1")
    latest = tmp_path / "tuned.safetensors.dainctl-finetune" / "latest.json"
    def two_steps_saved() -> bool:
        return latest.exists() and json.loads(latest.read_text())["step"] >= 2

    signal_once_ready(args, two_steps_saved, signal.SIGKILL, env=ENV, start_timeout=300)
    stopped_at = json.loads(latest.read_text())["step"]
    assert 2 <= stopped_at < 4 and not out.exists()
    # The same command without --resume refuses to discard the checkpoint.
    refused = _run(args)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = _run([*args, "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    steps = _steps(resumed.stdout)
    assert sorted(steps) == list(range(stopped_at + 1, 5))
    for step, record in steps.items():
        assert record["loss"] == pytest.approx(expected[step]["loss"], rel=1e-5, abs=1e-7), step
    assert steps[4]["val_psnr"] == pytest.approx(expected[4]["val_psnr"], abs=1e-4)
    tuned = read_checkpoint(out).state_dict
    reference = read_checkpoint(uninterrupted[0]).state_dict
    for name, tensor in reference.items():
        torch.testing.assert_close(tuned[name], tensor, rtol=1e-4, atol=1e-6, msg=name)
    # Other settings: one line, exit 2, nothing deleted.
    other = _run([*_finetune_args(clip_folder, converted_fake_weights, out, "--steps", "5", "--lr", "2e-4"), "--resume"])
    assert other.returncode == 2 and "other settings" in other.stderr and "lr" in other.stderr
    assert latest.exists()


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_exits_130(clip_folder, converted_fake_weights, tmp_path):
    out = tmp_path / "tuned.safetensors"
    folder = tmp_path / "tuned.safetensors.dainctl-finetune"
    process = subprocess.Popen(
        [sys.executable, "-m", "dainctl", *_finetune_args(clip_folder, converted_fake_weights, out, "--steps", "50",
                                                          "--val-every", "100")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, preexec_fn=default_signals)
    try:
        first = process.stdout.readline()  # the first step's JSON line
        assert json.loads(first)["step"] == 1
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    step = json.loads((folder / "latest.json").read_text())["step"]
    assert step >= 1 and f"after step {step}" in stderr and "--resume" in stderr
    assert stderr.strip().splitlines()[-1].startswith("dainctl: error: interrupted")
    assert not out.exists()


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(clip_folder, converted_fake_weights, tmp_path):
    results = {}
    for nproc in (1, 2):
        out = tmp_path / f"tuned{nproc}.safetensors"
        run = _run([*_finetune_args(clip_folder, converted_fake_weights, out, "--steps", "2", "--nproc", str(nproc))])
        assert run.returncode == 0, run.stderr
        results[nproc] = (_steps(run.stdout), read_checkpoint(out).state_dict)
    for step in (1, 2):
        assert results[2][0][step]["loss"] == pytest.approx(results[1][0][step]["loss"], rel=1e-5)
    # Adamax moves a weight by about lr whatever its gradient's size, so weights whose gradients are at
    # rounding level may differ by that much: compare each tensor's difference with its update.
    start = read_checkpoint(converted_fake_weights).state_dict
    for name, one in results[1][1].items():
        two = results[2][1][name]
        if not one.is_floating_point() or torch.equal(one, start[name].to(one.dtype)):
            assert torch.equal(one, two), name
            continue
        update = (one - start[name]).norm()
        assert (two - one).norm() <= 1e-2 * update, name


def test_bad_input_is_one_line_with_its_exit_code(clip_folder, converted_fake_weights, tmp_path, capsys):
    def code(*args: str) -> int:
        result = main(list(args))
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("dainctl: error:"), err
        return result

    weights = str(converted_fake_weights)
    base = ["finetune", str(clip_folder), "--weights", weights, "--crop", "64"]
    assert code(*base[:4], "--out", str(tmp_path / "a.safetensors"), "--crop", "128") == 2  # crop > 96x80
    short = make_folder(tmp_path / "short", frames=2, cut=None, duplicate=None)
    assert code("finetune", str(short), "--weights", weights, "--out", str(tmp_path / "b.safetensors"), "--crop", "64") == 3
    still = make_folder(tmp_path / "still", frames=6, cut=None, duplicate=None, step=0)
    assert code("finetune", str(still), "--weights", weights, "--out", str(tmp_path / "c.safetensors"), "--crop", "64") == 3
    bad_weights = tmp_path / "bad.safetensors"
    bad_weights.write_bytes(b"not a checkpoint at all")
    assert code("finetune", str(clip_folder), "--weights", str(bad_weights), "--out", str(tmp_path / "d.safetensors"), "--crop", "64") == 6
    existing = tmp_path / "e.safetensors"
    existing.write_bytes(b"x")
    assert code(*base, "--out", str(existing)) == 4
    assert existing.read_bytes() == b"x"
    assert code(*base, "--out", str(tmp_path / "f.safetensors"), "--batch", "3", "--nproc", "2") == 2
    assert code(*base, "--out", str(tmp_path / "g.safetensors"), "--train", "everything") == 2
    assert code(*base, "--out", str(tmp_path / "h.safetensors"), "--precision", "fp8") == 2
    assert not list(tmp_path.glob("*.dainctl-finetune"))


def test_fp16_without_cuda_warns_and_trains_in_fp32(clip_folder, converted_fake_weights, tmp_path, capsys):
    out = tmp_path / "t.safetensors"
    code = main(["finetune", str(clip_folder), "--weights", str(converted_fake_weights), "--out", str(out),
                 "--crop", "64", "--batch", "1", "--steps", "1", "--val-items", "1", "--precision", "fp16", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "--fp16 needs a CUDA GPU" in " ".join(captured.err.split())
    assert json.loads(captured.out.splitlines()[-1])["precision"] == "fp32"
