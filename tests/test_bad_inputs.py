"""The bad-input catalogue (issue 6): every case ends with one `dainctl: error:` line, its documented exit
code, no traceback, the input byte-identical and nothing left under the output name (nor a `.partial-`
temporary), or, where the case is meant to work (one frame, a file cut short in a streamable container),
with a valid result.

Exit codes (README): 2 usage / config, 3 input, 4 output, 6 weights, 130 Ctrl-C, 143 SIGTERM.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from dainctl.cli import main
from dainctl.video import make_sample_clip, open_input
from signal_helpers import signal_once_ready

USAGE, INPUT, OUTPUT, WEIGHTS, INTERRUPTED, TERMINATED = 2, 3, 4, 6, 130, 143


@pytest.fixture(autouse=True)
def _reference_kernels(monkeypatch):
    monkeypatch.setenv("DAINCTL_KERNELS", "ref")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Small sample clips, made once: mp4 and mkv with audio, and a one-frame mp4."""
    root = tmp_path_factory.mktemp("bad_inputs_clips")
    return {
        "mp4": make_sample_clip(root / "clip.mp4", width=64, height=48, frames=12, audio=True),
        "mkv": make_sample_clip(root / "clip.mkv", width=64, height=48, frames=24, audio=True),
        "one": make_sample_clip(root / "one.mp4", width=64, height=48, frames=1, audio=True),
    }


def fingerprint(path: Path) -> dict[str, str]:
    """Hashes of a file, or of every file in a folder (names included)."""
    if path.is_dir():
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or ".unverified" in p.name)


def error_line(err: str) -> str:
    """Exactly one error line, the last thing printed, and no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("dainctl: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert "Traceback" not in err
    return errors[0]


def refused(capsys, args: list, source: Path, output: Path | None, code: int, needle: str = "") -> str:
    """Run the CLI in-process; assert a clean refusal with `code` and return the error line."""
    before = fingerprint(source)
    result = main([str(a) for a in args])
    _, err = capsys.readouterr()
    assert result == code, err
    line = error_line(err)
    assert needle.lower() in line.lower(), line
    assert fingerprint(source) == before
    if output is not None:
        assert not output.exists() and not output.is_symlink()
        assert leftovers(output.parent) == []
    return line


# --- files that are not (usable) video -------------------------------------------------------------------


def test_zero_byte_file(capsys, tmp_path):
    source = tmp_path / "empty.mp4"
    source.write_bytes(b"")
    refused(capsys, ["interpolate", source, tmp_path / "out.mp4"], source, tmp_path / "out.mp4", INPUT, "empty")


def test_random_bytes_named_mp4(capsys, tmp_path):
    source = tmp_path / "noise.mp4"
    source.write_bytes(random.Random(6).randbytes(20_000))
    refused(capsys, ["interpolate", source, tmp_path / "out.mp4"], source, tmp_path / "out.mp4", INPUT, "not a video")


@pytest.mark.parametrize("fraction", [0.02, 0.3, 0.6, 0.85])
def test_mp4_truncated_is_refused(capsys, tmp_path, clips, fraction):
    """An MP4 keeps its index (moov) at the end: cut anywhere before it, FFmpeg cannot read the file."""
    data = clips["mp4"].read_bytes()
    source = tmp_path / "cut.mp4"
    source.write_bytes(data[: int(len(data) * fraction)])
    refused(capsys, ["interpolate", source, tmp_path / "out.mp4"], source, tmp_path / "out.mp4", INPUT, "truncated")


@pytest.mark.parametrize("fraction", [0.3, 0.6])
def test_mkv_truncated_keeps_what_is_there(capsys, tmp_path, clips, fraction):
    """Matroska streams: a file cut short is used up to the cut; the reader says how much is missing."""
    data = clips["mkv"].read_bytes()
    source = tmp_path / "cut.mkv"
    source.write_bytes(data[: int(len(data) * fraction)])
    before = fingerprint(source)
    with open_input(source) as src:
        assert src.info.duration < Fraction(1)
        (notice,) = src.notices
        assert "truncated" in notice and "frames lost" in notice
        available = sum(1 for _ in src.frames())
    assert 2 <= available < 24
    out = tmp_path / "out.mp4"
    assert main(["interpolate", str(source), str(out), "--quiet"]) == 0
    with av.open(str(out)) as container:
        written = sum(1 for _ in container.decode(video=0))
    assert written == 2 * available
    assert fingerprint(source) == before and leftovers(tmp_path) == []


def test_untruncated_mkv_has_no_notice(clips):
    with open_input(clips["mkv"]) as src:
        assert src.notices == []


def corrupt_video_packet(source: Path, target: Path, index: int) -> None:
    """Overwrite the payload of the index-th video packet (file order) with seeded random bytes."""
    with av.open(str(source)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    position, size = packets[index]
    data = bytearray(source.read_bytes())
    data[position + 4 : position + size] = random.Random(index).randbytes(size - 4)
    target.write_bytes(bytes(data))


def test_corrupt_packet_in_the_middle_stops_with_a_clear_line(capsys, tmp_path, clips):
    """Chosen behaviour: an undecodable frame in the middle stops the run (no output with a hidden hole)."""
    source = tmp_path / "corrupt.mp4"
    corrupt_video_packet(clips["mp4"], source, 5)
    line = refused(capsys, ["interpolate", source, tmp_path / "out.mp4", "--quiet"], source, tmp_path / "out.mp4", INPUT, "damaged")
    assert "nothing was written" in line


def test_audio_only_file(capsys, tmp_path):
    source = tmp_path / "tone.m4a"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("aac", rate=48_000)
        samples = np.zeros((1, 1024), np.float32)
        for index in range(20):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48_000, index * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    refused(capsys, ["interpolate", source, tmp_path / "out.mp4"], source, tmp_path / "out.mp4", INPUT, "no video stream")


def test_one_frame_video_is_held(capsys, tmp_path, clips):
    out = tmp_path / "out.mp4"
    assert main(["interpolate", str(clips["one"]), str(out), "--quiet"]) == 0
    with open_input(clips["one"]) as src:
        ((_, original),) = list(src.frames())
    with open_input(out) as result:
        frames = [rgb for _, rgb in result.frames()]
        assert result.end_ts == Fraction(1, 24)
    assert len(frames) == 2  # 2x over the one frame's 1/24 s
    # The frame, held: both outputs alike, and like the input up to re-encoding (textured 64x48 at crf 18).
    assert np.abs(frames[1].astype(int) - frames[0]).mean() < 2
    assert np.abs(frames[0].astype(int) - original).mean() < 8


# --- image folders ---------------------------------------------------------------------------------------


def test_folder_of_mixed_sizes(capsys, tmp_path):
    source = make_sample_clip(tmp_path / "frames", width=64, height=48, frames=3)
    make_sample_clip(tmp_path / "other", width=48, height=48, frames=1)
    os.replace(tmp_path / "other" / "00000000.png", source / "00000003.png")
    refused(capsys, ["interpolate", source, tmp_path / "out"], source, tmp_path / "out", INPUT, "differ in size")


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with one tiny (wrong) data chunk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_folder_with_a_100000_pixel_header(capsys, tmp_path):
    source = tmp_path / "frames"
    source.mkdir()
    for index in range(2):
        (source / f"{index}.png").write_bytes(png_claiming(100_000, 100_000))
    refused(capsys, ["interpolate", source, tmp_path / "out"], source, tmp_path / "out", INPUT, "100000x100000")


def test_folder_of_1x1_images(capsys, tmp_path):
    import cv2

    source = tmp_path / "dots"
    source.mkdir()
    for index in range(3):
        cv2.imwrite(str(source / f"{index}.png"), np.full((1, 1, 3), index * 50, np.uint8))
    refused(capsys, ["interpolate", source, tmp_path / "out"], source, tmp_path / "out", INPUT, "too small")


# --- absurd dimensions in video --------------------------------------------------------------------------


def test_tiny_video(capsys, tmp_path):
    source = make_sample_clip(tmp_path / "tiny.mp4", width=2, height=2, frames=3, audio=False)
    refused(capsys, ["interpolate", source, tmp_path / "out.mp4"], source, tmp_path / "out.mp4", INPUT, "2x2 are too small")


@pytest.mark.parametrize(
    ("size", "needle"),
    [((20_000, 1_000), "larger than 16384"), ((100_000, 100_000), "")],
    ids=["20000x1000", "100000x100000"],
)
def test_y4m_header_with_absurd_size(capsys, tmp_path, size, needle):
    """A raw YUV4MPEG header can claim any size; the 100000x100000 one FFmpeg refuses itself."""
    source = tmp_path / "huge.y4m"
    source.write_bytes(f"YUV4MPEG2 W{size[0]} H{size[1]} F24:1 Ip A1:1 C420jpeg\nFRAME\n".encode() + bytes(4096))
    refused(capsys, ["interpolate", source, tmp_path / "out.mp4"], source, tmp_path / "out.mp4", INPUT, needle)


# --- where the output goes -------------------------------------------------------------------------------


@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount(name, options) -> a fresh tmpfs mounted under tmp_path; unmounted afterwards."""
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a test filesystem needs root")
        point = tmp_path / name
        point.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], capture_output=True)


@pytest.mark.parametrize("name", ["out.mp4", "out_frames"])
def test_read_only_output_folder(capsys, tmp_path, clips, mount_tmpfs, name):
    """A read-only filesystem (root ignores chmod, not a read-only mount)."""
    folder = mount_tmpfs("readonly", "ro,size=64k")
    refused(capsys, ["interpolate", clips["mp4"], folder / name], clips["mp4"], folder / name, OUTPUT, "not writable")
    assert list(folder.iterdir()) == []


def test_full_disk(capsys, tmp_path, clips, mount_tmpfs):
    """A 16 KiB filesystem fills up during the lossless encode: exit 4 and the partial file removed."""
    folder = mount_tmpfs("small", "size=16k")
    out = folder / "out.mp4"
    line = refused(capsys, ["interpolate", clips["mp4"], out, "--crf", "0", "--preset", "ultrafast"], clips["mp4"], out, OUTPUT)
    assert "disk is full" in line
    assert list(folder.iterdir()) == []


def test_output_equal_to_input(capsys, tmp_path, clips):
    source = tmp_path / "clip.mp4"
    source.write_bytes(clips["mp4"].read_bytes())
    for spelling in (source, tmp_path / "." / "clip.mp4", tmp_path / "sub" / ".." / "clip.mp4"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        for flags in ([], ["--overwrite"]):
            before = fingerprint(source)
            assert main(["interpolate", str(source), str(spelling), *flags]) == OUTPUT
            assert "is the input itself" in error_line(capsys.readouterr().err)
            assert fingerprint(source) == before and leftovers(tmp_path) == []


def test_output_symlink_to_input(capsys, tmp_path, clips):
    source = tmp_path / "clip.mp4"
    source.write_bytes(clips["mp4"].read_bytes())
    link = tmp_path / "link.mp4"
    link.symlink_to(source)
    before = fingerprint(source)
    assert main(["interpolate", str(source), str(link), "--overwrite"]) == OUTPUT
    assert "is the input itself" in error_line(capsys.readouterr().err)
    assert fingerprint(source) == before and link.is_symlink() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "signum, code, word", [(signal.SIGINT, INTERRUPTED, "interrupted"), (signal.SIGTERM, TERMINATED, "terminated")]
)
def test_signal_during_encode(tmp_path, signum, code, word):
    """SIGINT (Ctrl-C) or SIGTERM (kill, timeout) to a real `python -m dainctl interpolate` once it has
    started writing: exit 130 or 143, one line, no leftovers."""
    source = make_sample_clip(tmp_path / "long.mp4", width=64, height=48, frames=240, audio=True)
    before = fingerprint(source)
    out = tmp_path / "out.mp4"
    env = {**os.environ, "DAINCTL_KERNELS": "ref"}
    code_got, _, err = signal_once_ready(
        ["interpolate", str(source), str(out), "--quiet"],
        lambda: any(".partial-" in p.name and p.stat().st_size > 0 for p in tmp_path.iterdir()),
        signum, env=env,
    )
    assert code_got == code, err
    assert word in error_line(err)
    assert not out.exists() and leftovers(tmp_path) == []
    assert fingerprint(source) == before


def test_an_inherited_ignored_sigterm_stays_ignored(tmp_path):
    """A parent that ignores SIGTERM for its children (as shells do with SIGINT for background jobs)
    keeps that choice: the run goes on to a complete, verified output."""
    source = make_sample_clip(tmp_path / "clip.mp4", width=64, height=48, frames=48, audio=False)
    out = tmp_path / "out.mp4"

    def ignore_sigterm() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    code, _, err = signal_once_ready(
        ["interpolate", str(source), str(out), "--quiet"],
        lambda: any(".partial-" in p.name for p in tmp_path.iterdir()),
        signal.SIGTERM, env={**os.environ, "DAINCTL_KERNELS": "ref"}, preexec_fn=ignore_sigterm,
    )
    assert code == 0, err
    assert out.exists() and leftovers(tmp_path) == []


# --- configuration and checkpoints -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["missing", "folder", "binary"])
def test_unreadable_config(capsys, tmp_path, clips, kind):
    config = tmp_path / "settings.yaml"
    if kind == "folder":
        config.mkdir()
    elif kind == "binary":
        config.write_bytes(b"\xff\xfe\x00\x81 not: [yaml")
    out = tmp_path / "out.mp4"
    refused(capsys, ["interpolate", clips["mp4"], out, "--config", config], clips["mp4"], out, USAGE)


@pytest.fixture
def not_a_checkpoint(tmp_path) -> Path:
    path = tmp_path / "notackpt.pth"
    path.write_bytes(b"PK\x03\x04 this is not a checkpoint " * 20)
    return path


def test_convert_refuses_a_file_that_is_not_a_checkpoint(capsys, tmp_path, not_a_checkpoint):
    target = tmp_path / "x.safetensors"
    refused(capsys, ["convert", not_a_checkpoint, target], not_a_checkpoint, target, WEIGHTS, "checkpoint")


def test_dain_refuses_weights_that_are_not_a_checkpoint(capsys, tmp_path, clips, not_a_checkpoint):
    out = tmp_path / "out.mp4"
    refused(
        capsys,
        ["interpolate", clips["mp4"], out, "--engine", "dain", "--weights", not_a_checkpoint, "--device", "cpu"],
        not_a_checkpoint, out, WEIGHTS, "checkpoint",
    )
