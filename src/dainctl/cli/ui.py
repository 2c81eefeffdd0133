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


@contextmanager
def frame_progress(description: str, *, quiet: bool):
    """Yield `update(done, total)`; draws a bar with frames, fps and ETA unless quiet."""
    if quiet:
        yield lambda done, total: None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames"),
        _FpsColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=stderr,
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        yield update


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
