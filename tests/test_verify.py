"""The timing contract check: clips written here through PyAV, right and deliberately wrong, plus the
shared sample videos."""

from __future__ import annotations

import json
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from dainctl.errors import VerifyError
from dainctl.verify import (
    ExpectedOutput,
    expected_stream_durations,
    failure_message,
    raise_if_failed,
    verify_output,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VIDEOS = SHARED / "data" / "videos"
SAMPLE_RATE = 48000


def write_clip(
    path: Path,
    frames: int,
    rate: Fraction,
    audio_seconds: Fraction | None = None,
    subtitle_end: Fraction | None = None,
) -> Path:
    """A small H.264 clip (with B-frames) of `frames` frames at `rate`, optionally an AAC tone lasting
    `audio_seconds` and (Matroska) one ASS subtitle cue ending at `subtitle_end`."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.codec_context.time_base = 1 / rate
        audio = None
        if audio_seconds is not None:
            audio = container.add_stream("aac", rate=SAMPLE_RATE)
            audio.layout = "mono"
        subtitles = container.add_stream("ass") if subtitle_end is not None else None
        for index in range(frames):
            rgb = np.full((48, 64, 3), (index * 7) % 256, dtype=np.uint8)
            rgb[:, index % 64] = 255
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            frame.time_base = 1 / rate
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if audio is not None:
            total = int(audio_seconds * SAMPLE_RATE)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(total) / SAMPLE_RATE)).astype(np.float32)
            for start in range(0, total, 1024):
                chunk = tone[start : start + 1024][None, :]
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                frame.sample_rate = SAMPLE_RATE
                frame.pts = start
                frame.time_base = Fraction(1, SAMPLE_RATE)
                container.mux(audio.encode(frame))
            container.mux(audio.encode())
        if subtitles is not None:
            cue = av.Packet(b"0,0,Default,,0,0,0,,hello")
            cue.stream = subtitles
            cue.time_base = Fraction(1, 1000)
            cue.pts = cue.dts = 100
            cue.duration = int(subtitle_end * 1000) - 100
            container.mux(cue)
    return path


def expect(frames: int, rate: Fraction, audio=(), subtitles=None) -> ExpectedOutput:
    return ExpectedOutput(
        frame_count=frames,
        rate=rate,
        duration=frames / rate,
        audio_durations=tuple(audio) if audio is not None else None,
        subtitle_durations=tuple(subtitles) if subtitles is not None else None,
    )


def check_named(report, name):
    return next(check for check in report.checks if check.name == name)


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_right_clip_passes_and_report_is_json(tmp_path, ext):
    rate = Fraction(24)
    path = write_clip(tmp_path / f"right{ext}", 24, rate, audio_seconds=Fraction(1))
    report = verify_output(path, expect(24, rate, audio=[Fraction(1)]))
    assert report.ok, failure_message(report)
    names = [check.name for check in report.checks]
    assert names == ["frames", "rate", "video duration", "audio streams", "audio #1 duration"]
    assert check_named(report, "frames").actual == 24
    decoded = json.loads(json.dumps(asdict(report)))
    assert decoded["checks"][0] == {
        "name": "frames", "unit": "frames", "expected": 24, "actual": 24, "tolerance": 1, "ok": True,
    }
    raise_if_failed(report)  # nothing to raise


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_ntsc_rate_passes_and_is_told_from_60(tmp_path, ext):
    rate = Fraction(60000, 1001)
    path = write_clip(tmp_path / f"ntsc{ext}", 30, rate)
    report = verify_output(path, expect(30, rate, audio=[]))
    assert report.ok, failure_message(report)
    # Matroska's millisecond clock reads 60000/1001 back as 59.9401; MP4 keeps it exact
    assert check_named(report, "rate").actual == pytest.approx(float(rate), rel=1e-5)
    sixty = verify_output(path, expect(30, Fraction(60), audio=[]))
    assert [check.name for check in sixty.failed()] == ["rate"]
    assert "rate 59.94" in failure_message(sixty) and "expected 60 fps" in failure_message(sixty)


def test_fewer_frames_fail_with_numbers(tmp_path):
    rate = Fraction(24)
    path = write_clip(tmp_path / "short.mp4", 20, rate)
    report = verify_output(path, expect(24, rate, audio=[]))
    assert not report.ok
    assert {check.name for check in report.failed()} == {"frames", "video duration"}
    message = failure_message(report)
    assert "\n" not in message
    assert "frames 20 frames, expected 24 frames" in message
    assert "video duration 0.833 s, expected 1.000 s" in message
    with pytest.raises(VerifyError) as caught:
        raise_if_failed(report)
    assert caught.value.exit_code == VerifyError.exit_code
    assert caught.value.message == message


def test_one_frame_off_is_tolerated_two_are_not(tmp_path):
    rate = Fraction(24)
    path = write_clip(tmp_path / "clip.mp4", 24, rate)
    assert verify_output(path, expect(25, rate, audio=[])).ok
    assert verify_output(path, expect(23, rate, audio=[])).ok
    failed = verify_output(path, expect(26, rate, audio=[]))
    assert {check.name for check in failed.failed()} == {"frames", "video duration"}


def test_shorter_audio_fails_alone(tmp_path):
    rate = Fraction(24)
    path = write_clip(tmp_path / "short_audio.mp4", 24, rate, audio_seconds=Fraction(1, 2))
    report = verify_output(path, expect(24, rate, audio=[Fraction(1)]))
    assert [check.name for check in report.failed()] == ["audio #1 duration"]
    actual = check_named(report, "audio #1 duration").actual
    assert actual == pytest.approx(0.5, abs=1 / 24)
    assert "audio #1 duration 0.5" in failure_message(report)


def test_missing_audio_stream_fails(tmp_path):
    rate = Fraction(24)
    path = write_clip(tmp_path / "silent.mp4", 24, rate)
    report = verify_output(path, expect(24, rate, audio=[Fraction(1)]))
    assert [check.name for check in report.failed()] == ["audio streams"]
    # None means: audio not part of the contract
    assert verify_output(path, expect(24, rate, audio=None)).ok


def test_wrong_rate_fails(tmp_path):
    path = write_clip(tmp_path / "25fps.mp4", 24, Fraction(25))
    report = verify_output(path, expect(24, Fraction(24), audio=[]))
    assert {check.name for check in report.failed()} == {"rate"}
    # 24 frames at 25 fps last 0.96 s: within one 24 fps frame of 1 s, so only the rate gives it away
    assert check_named(report, "rate").actual == pytest.approx(25)


def test_subtitle_duration_checked(tmp_path):
    rate = Fraction(24)
    path = write_clip(tmp_path / "subs.mkv", 24, rate, subtitle_end=Fraction(9, 10))
    # the cue runs from 0.1 s to 0.9 s: presented duration 0.8 s
    assert verify_output(path, expect(24, rate, audio=[], subtitles=[Fraction(4, 5)])).ok
    report = verify_output(path, expect(24, rate, audio=[], subtitles=[Fraction(3, 2)]))
    assert [check.name for check in report.failed()] == ["subtitle #1 duration"]


def test_expected_stream_durations_from_input_match_a_copy(tmp_path):
    rate = Fraction(24)
    source = write_clip(tmp_path / "source.mp4", 24, rate, audio_seconds=Fraction(1))
    durations = expected_stream_durations(source, "audio")
    assert len(durations) == 1 and abs(durations[0] - 1) <= Fraction(1, 24)
    doubled = expected_stream_durations(source, "audio", stretch=Fraction(2))
    assert doubled == (durations[0] * 2,)
    assert expected_stream_durations(source, "subtitle") == ()


def test_decode_count_agrees_with_packet_count(tmp_path):
    rate = Fraction(30)
    path = write_clip(tmp_path / "clip.mkv", 31, rate, audio_seconds=Fraction(1))
    by_packets = verify_output(path, expect(31, rate, audio=None))
    by_decoding = verify_output(path, expect(31, rate, audio=None), count="decode")
    assert by_packets.ok and by_decoding.ok
    assert check_named(by_decoding, "frames").actual == 31
    assert by_decoding.method == "decode"


def test_unreadable_output_is_reported_not_raised(tmp_path):
    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    report = verify_output(path, expect(24, Fraction(24)))
    assert not report.ok and report.error
    message = failure_message(report)
    assert "\n" not in message and "cannot read the output back" in message


def test_image_folder_output_counts_images(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(5):
        (folder / f"{index:08d}.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not a frame")
    assert verify_output(folder, expect(5, Fraction(24))).ok
    report = verify_output(folder, expect(9, Fraction(24)))
    assert not report.ok and check_named(report, "frames").actual == 5


def test_writer_output_with_copied_audio_meets_its_plan(tmp_path):
    # dainctl's own writer: 2x the frames of a sample clip (each frame written twice, no engine), audio
    # copied, checked against the plan's numbers
    from dainctl.plan import PlanSpec, plan_all
    from dainctl.video import make_sample_clip, open_input, open_output

    source_path = make_sample_clip(tmp_path / "in.mp4", width=64, height=48, frames=15, rate=Fraction(25))
    source = open_input(source_path)
    info = source.info
    spec = PlanSpec.for_factor(info.rate, 2)
    frames = list(source.frames())
    plan = plan_all(spec, [ts for ts, _ in frames], info.duration)
    output_path = tmp_path / "out.mp4"
    output = open_output(output_path, width=64, height=48, rate=spec.output_rate, audio_from=source)
    for frame in plan:
        output.write(frames[frame.src][1], frame.ts)
    output.close(info.duration)
    source.close()
    expected = ExpectedOutput(
        frame_count=spec.frame_count(info.duration, hold_last=True),
        rate=spec.output_rate,
        duration=info.duration,
        audio_durations=expected_stream_durations(source_path, "audio"),
    )
    report = verify_output(output_path, expected)
    assert report.ok, failure_message(report)
    assert check_named(report, "frames").actual == 30


# Figures from ../shared/data/SOURCES.md (frame counts, rates, durations as published).
SHARED_CLIPS = [
    ("cockatoo.mp4", 280, Fraction(20)),
    ("car-turn.mp4", 81, Fraction(25)),
    ("bikes.mp4", 250, Fraction(25)),
    ("carphone_pristine.mp4", 120, Fraction(30000, 1001)),
    ("flipping_a_pancake.mkv", 310, Fraction(30)),
]


@pytest.mark.parametrize("name, frames, rate", SHARED_CLIPS)
def test_shared_videos_pass(name, frames, rate):
    path = VIDEOS / name
    if not path.exists():
        pytest.skip(f"{path} is not available")
    audio = expected_stream_durations(path, "audio")
    report = verify_output(path, expect(frames, rate, audio=audio))
    assert report.ok, failure_message(report)
    # and a plan that promised one second more is caught
    longer = ExpectedOutput(frames + int(rate), rate, (frames + int(rate)) / rate, audio)
    assert {check.name for check in verify_output(path, longer).failed()} == {"frames", "video duration"}


@pytest.mark.parametrize("name", ["bikes.mp4", "carphone_pristine.mp4", "flipping_a_pancake.mkv"])
def test_packet_count_is_the_decoded_frame_count_on_real_files(name):
    # the reason counting packets is trusted: on real H.264 files each packet is one frame
    path = VIDEOS / name
    if not path.exists():
        pytest.skip(f"{path} is not available")
    frames = dict((n, f) for n, f, _ in SHARED_CLIPS)[name]
    rate = dict((n, r) for n, _, r in SHARED_CLIPS)[name]
    packets = verify_output(path, expect(frames, rate, audio=None))
    decoded = verify_output(path, expect(frames, rate, audio=None), count="decode")
    assert check_named(packets, "frames").actual == check_named(decoded, "frames").actual == frames
