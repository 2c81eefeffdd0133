"""What a person sees: the progress bar and summaries on stderr, JSON on stdout."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from fractions import Fraction

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

stderr = Console(stderr=True, highlight=False)


class _FpsColumn(ProgressColumn):
    """Output frames per second, from rich's own speed estimate."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:5.1f} fps" if speed else "  ... fps", style="progress.data.speed")


class FrameProgress:
    """A bar with frames done/total, fps and ETA on stderr, shown from `start()` on (so errors found
    while opening the input print alone), and silent when quiet."""

    def __init__(self, description: str, *, quiet: bool):
        self._description = description
        self._quiet = quiet
        self._progress: Progress | None = None
        self._task = None

    def start(self) -> None:
        if self._quiet or self._progress is not None:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("frames"),
            _FpsColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=stderr,
        )
        self._progress.start()
        self._task = self._progress.add_task(self._description, total=None)

    def update(self, done: int, total: int | None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@contextmanager
def frame_progress(description: str, *, quiet: bool):
    """Yield a `FrameProgress`; the bar is removed from the screen's live area on exit."""
    bar = FrameProgress(description, quiet=quiet)
    try:
        yield bar
    finally:
        bar.stop()


def info(message: str, *, quiet: bool = False) -> None:
    if not quiet:
        stderr.print(message)


def warn(message: str) -> None:
    stderr.print(f"[yellow]warning:[/yellow] {message}")


def seconds(value: Fraction | float | None) -> str:
    return "?" if value is None else f"{float(value):.3f} s"


def emit_json(payload: dict) -> None:
    """Machine-readable output goes to stdout, alone."""
    sys.stdout.write(json.dumps(payload, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(value):
    if isinstance(value, Fraction):
        return float(value)
    return str(value)
