"""Pipeline helpers: thread policy and pixel conversions."""

import os
import statistics
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from dainctl.pipeline import (
    BACKGROUND_NICE,
    Job,
    configure_cpu_threads,
    reuse_freed_frames,
    lower_thread_priority,
    run,
    to_rgb,
    to_tensor,
)


@pytest.fixture
def restore_threads():
    import cv2

    before = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_num_threads(before[0])
    cv2.setNumThreads(before[1])


def test_freed_frames_are_reused_without_page_faults(restore_threads):
    """After the CPU set-up of a run, a freed 40 MB block (over glibc's 32 MB mapping threshold, a
    1080p frame and a half) is handed to the next allocations of its size, without page faults. Before,
    each such allocation was a fresh mapping, every page faulting again."""
    import resource

    configure_cpu_threads("flow", cpu_count=2)
    if not reuse_freed_frames():
        pytest.skip("glibc's mallopt is not available here")
    pages = (40 << 20) // 4096

    def faults_of_one_frame() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        frame = torch.ones(10 << 20)  # 40 MB of float32, every page written
        del frame
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    for _ in range(3):  # the heap grows to hold it (other small allocations come and go in between)
        faults_of_one_frame()
    assert statistics.median(faults_of_one_frame() for _ in range(5)) < pages // 20


@pytest.mark.parametrize("engine, cores, expected", [("flow", 2, 1), ("flow", 16, 15), ("flow", 1, 1), ("dain", 2, 2)])
def test_cpu_threads_leave_a_core_to_decode_and_encode(restore_threads, engine, cores, expected):
    import cv2

    assert configure_cpu_threads(engine, cpu_count=cores) == expected
    assert torch.get_num_threads() == expected
    assert cv2.getNumThreads() == expected


@pytest.mark.parametrize("dtype, peak", [(np.uint8, 255), (np.uint16, 65535)])
def test_pixel_round_trip_is_exact(dtype, peak):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, peak + 1, size=(5, 7, 3)).astype(dtype)
    tensor = to_tensor(rgb)
    assert tensor.shape == (3, 5, 7) and tensor.dtype == torch.float32
    assert tensor.is_contiguous()  # planes, as the ops read them (else every op call copies the frame)
    assert torch.equal(tensor[1], torch.from_numpy(rgb[:, :, 1].astype(np.float32)) / peak)
    assert float(tensor.max()) <= 1.0
    assert np.array_equal(to_rgb(tensor, dtype), rgb)


def test_generated_frames_are_rounded_half_to_even_and_saturated():
    # Values between the 256 levels, exactly halfway, and out of [0, 1] (the engine's unclamped blends):
    # each rounds to the nearest level (ties to even) of the clamped value.
    values = torch.tensor([-0.3, -0.0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 100.4 / 255, 254.5 / 255, 1.0, 1.7])
    frame = values.view(1, 1, -1).expand(3, 5, -1) * torch.tensor([1.0, 0.5, 0.25]).view(3, 1, 1)
    expected = np.round(np.clip(frame.permute(1, 2, 0).numpy(), 0, 1) * np.float32(255)).astype(np.uint8)  # float32, as stored
    rgb = to_rgb(frame)
    assert rgb.shape == (5, values.numel(), 3) and rgb.flags["C_CONTIGUOUS"]
    assert np.array_equal(rgb, expected)


@pytest.mark.parametrize("shape", [(3, 1, 1), (3, 7, 13), (3, 37, 1283)])
def test_generated_frames_quantize_as_torch_rounds_and_clamps(shape):
    # The CPU path (OpenCV, plane by plane) gives the integers of torch's mul, round (half to even),
    # clamp and cast, for values in and out of [0, 1] and exactly between levels, at any width.
    generator = torch.Generator().manual_seed(shape[2])
    frame = torch.rand(shape, generator=generator) * 1.6 - 0.3
    halves = (torch.randint(-40, 300, shape, generator=generator).float() + 0.5) / 255.0
    frame = torch.where(torch.rand(shape, generator=generator) < 0.3, halves, frame)
    expected = frame.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(to_rgb(frame), expected)
    assert np.array_equal(to_rgb(frame.double()), expected)  # any float dtype, read as float32


class _BlendEngine:
    """A linear blend that records, at every pair, how much the decode and encode threads are niced."""

    name = "blend"

    def __init__(self, device: str):
        self.device = torch.device(device)
        self.base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        self.seen: dict[str, int] = {}

    def interpolate(self, frame0, frame1, timesteps):
        for thread in threading.enumerate():
            if thread.name in ("dainctl-decode", "dainctl-encode") and thread.native_id is not None:
                self.seen[thread.name] = os.getpriority(os.PRIO_PROCESS, thread.native_id) - self.base
        # FFmpeg's own threads (its decoder's are named av:<codec>:...), started when the input was opened.
        for task in Path("/proc/self/task").iterdir():
            try:
                name = (task / "comm").read_text().strip()
                if name.startswith("av:"):
                    self.seen.setdefault("ffmpeg", set()).add(os.getpriority(os.PRIO_PROCESS, int(task.name)) - self.base)
            except OSError:  # the thread ended meanwhile
                continue
        return [torch.lerp(frame0, frame1, float(t)) for t in timesteps]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
@pytest.mark.parametrize("device, nice", [("cpu", BACKGROUND_NICE), ("cuda", 0)])
def test_decode_and_encode_yield_to_an_engine_on_the_cpu(clip_factory, tmp_path, device, nice):
    """With the engine on the CPU (the main thread), the decode and encode threads and FFmpeg's codec
    threads are niced so that they cannot crowd the engine out; with a GPU engine they are left alone."""
    engine = _BlendEngine(device)
    job = Job(input_path=clip_factory(frames=12, audio=False), output_path=tmp_path / "out.mp4",
              mode="interpolate", factor=2, audio="drop")
    result = run(job, engine)
    assert result.output_frames == 24
    assert engine.seen == {"dainctl-decode": nice, "dainctl-encode": nice, "ffmpeg": {nice}}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == engine.base  # the caller untouched


def test_lower_thread_priority_changes_only_the_calling_thread():
    if not sys.platform.startswith("linux"):
        assert not lower_thread_priority(3, threading.get_native_id())
        return
    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    result = {}

    def work():
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        result["done"] = lower_thread_priority(3, tid)
        result["delta"] = os.getpriority(os.PRIO_PROCESS, tid) - before

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert result == {"done": True, "delta": 3}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before
    assert not lower_thread_priority(0, threading.get_native_id())


@pytest.mark.parametrize("rate", ["30000/1001", "15"])
def test_a_matroska_input_at_2x_copies_its_frames_and_computes_only_the_midpoints(tmp_path, clip_factory, capsys,
                                                                                 rate):
    """Matroska rounds times to milliseconds; the analysis puts them back on the frame grid, so each
    input frame is copied (not recomputed at t ~ 0.99) and each pair makes exactly one new frame."""
    import json
    from fractions import Fraction

    from conftest import decode_rgb

    from dainctl.cli import main

    clip = clip_factory(frames=15, rate=Fraction(rate), audio=False, ext=".mkv")
    out = tmp_path / "out.mkv"
    code = main(["interpolate", str(clip), str(out), "--json", "--profile", "fast", "--codec", "ffv1", "--quiet"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["interpolated_frames"] == 14 and payload["output_frames"] == 30
    assert len(decode_rgb(out)) == 30


@pytest.mark.parametrize("mode, factor", [("interpolate", 2), ("slowmo", 3)])
def test_an_engine_that_prepares_the_next_pair_gets_it_before_the_current_one_is_computed(tmp_path, clip_factory,
                                                                                           mode, factor):
    """When the engine's `prepare` starts a pair's motion, the pipeline hands each pair over one pair early
    (prepare of pair k+1 comes before the motion of pair k) and the video is the one made without it."""
    from conftest import decode_rgb

    from dainctl.engines.flow import FlowEngine

    class Recording(FlowEngine):
        def __init__(self, **options):
            super().__init__(profile="fast", **options)
            self.events: list[str] = []

        def prepare(self, jobs):
            started = super().prepare(jobs)
            self.events.append("prepare" if started else "not started")
            return started

        def motion(self, jobs):
            self.events.append("motion")
            return super().motion(jobs)

    from dainctl.pipeline import EncodeOptions

    clip = clip_factory(frames=9, audio=False)
    outputs = {}
    for workers in (1, 2):
        engine = Recording(flow_workers=workers)
        # Lossless: the frames themselves are compared (x264's output for the same frames was seen to
        # differ from one run to the next within a process).
        job = Job(input_path=clip, output_path=tmp_path / f"out{workers}.mkv", mode=mode, factor=factor, audio="drop",
                  encode=EncodeOptions(codec="ffv1"))
        run(job, engine)
        outputs[workers] = decode_rgb(job.output_path)
        pairs = engine.stats["pairs"]
        assert pairs >= 4
        if workers == 1:  # nothing can start in the background: each pair is computed when it comes
            assert engine.events == ["not started", "motion"] * pairs
        else:
            assert engine.events == ["prepare", "prepare", "motion"] + ["prepare", "motion"] * (pairs - 2) + ["motion"]
    assert len(outputs[1]) == len(outputs[2]) > 9
    assert all(np.array_equal(a, b) for a, b in zip(outputs[1], outputs[2]))
