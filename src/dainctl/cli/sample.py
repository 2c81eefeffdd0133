"""`dainctl sample`: make a short test clip (moving texture and a tone), as `make demo` does."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import OutputError
from ..plan import parse_rate
from ..paths import commit_output, remove_path, temp_path_for
from . import ui


def sample(
    output: Annotated[Path, typer.Argument(help="Where to write the clip (.mp4/.mkv), or a folder for PNG frames.")],
    width: Annotated[int, typer.Option(help="Width in pixels.")] = 640,
    height: Annotated[int, typer.Option(help="Height in pixels.")] = 360,
    frames: Annotated[int, typer.Option(help="Number of frames.")] = 48,
    fps: Annotated[str, typer.Option("--fps", help="Frame rate.")] = "24",
    audio: Annotated[bool, typer.Option("--audio/--no-audio", help="Add a sine tone as long as the video.")] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing file.")] = False,
) -> None:
    """Make a short synthetic clip with moving textured content and an audio tone."""
    from ..video import make_sample_clip

    if output.exists() and not overwrite:
        raise OutputError(f"output exists: {output} (pass --overwrite to replace it)")
    if not output.absolute().parent.is_dir():
        raise OutputError(f"output folder does not exist: {output.absolute().parent}")
    temp = temp_path_for(output)
    try:
        make_sample_clip(temp, width=width, height=height, frames=frames, rate=parse_rate(fps), audio=audio)
        commit_output(temp, output)
    finally:
        remove_path(temp)
    ui.info(f"wrote {output}: {width}x{height}, {frames} frames at {fps} fps{', with audio' if audio else ''}")
