"""What one run is asked to do (`Job`, its `EncodeOptions`), without torch: the CLI builds the job, and
starts its analysis pass (`analysis_options`), before it loads the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from .scene import DEFAULT_DEDUP_THRESHOLD, DEFAULT_SCENE_THRESHOLD


@dataclass(frozen=True)
class EncodeOptions:
    codec: str | None = None  # None: the container's default (`dainctl.video.writer.default_video_codec`)
    crf: int = 18
    preset: str | None = None
    pix_fmt: str | None = None  # None: follow the input's bit depth


@dataclass
class Job:
    """One run: what to read, what to write and how to sample time."""

    input_path: Path
    output_path: Path
    mode: str  # "interpolate" or "slowmo"
    factor: int | None = None
    fps: Fraction | None = None
    audio: str = "copy"  # "copy", "drop" or "stretch"
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    folder_fps: Fraction = Fraction(24)
    scene_threshold: float | None = DEFAULT_SCENE_THRESHOLD  # None: no scene-cut detection
    dedup: bool = False
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD
    verify: bool = True  # False: a failed timing check only warns


def analysis_options(job: Job) -> dict:
    """`dainctl.analysis.analyze`'s options for `job`'s input."""
    return {"folder_rate": job.folder_fps, "scene_threshold": job.scene_threshold, "dedup": job.dedup,
            "dedup_threshold": job.dedup_threshold}
