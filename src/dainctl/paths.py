"""Where output goes: default names, safety checks and the temporary name it is written under.

Nothing is lost: the input is never written, an existing output is replaced only with `--overwrite`,
and the result is written under a hidden temporary name in the destination folder and renamed into
place only when complete, so no half-written file ever sits under the output name.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import InputError, OutputError, UsageError

# Containers dainctl writes (the container follows the output's extension).
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".m4v", ".webm", ".avi")
# Video containers dainctl reads but does not write: broadcast and camcorder transport streams, Flash,
# program streams, Windows Media, Ogg, 3GPP. Their default output is MP4.
INPUT_ONLY_VIDEO_EXTENSIONS = (".ts", ".m2ts", ".mts", ".m2t", ".tsv", ".flv", ".mpg", ".mpeg", ".vob", ".wmv",
                               ".asf", ".ogv", ".ogg", ".3gp", ".3g2", ".mxf", ".y4m", ".dv", ".f4v", ".rm", ".nut")
DEFAULT_VIDEO_EXTENSION = ".mp4"
TEMP_MARKER = ".partial-"


def is_video_path(path: Path) -> bool:
    """An output path names a video when it has a video extension; anything else is a folder."""
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.is_dir()


def default_output(input_path: Path, tag: str) -> Path:
    """`in.mp4` -> `in.<tag>.mp4`; `in.ts` -> `in.<tag>.mp4` (a container dainctl only reads); a folder
    `frames` -> `frames.<tag>` beside it."""
    if input_path.is_dir():
        return input_path.parent / f"{input_path.name}.{tag}"
    suffix = input_path.suffix if input_path.suffix.lower() in VIDEO_EXTENSIONS else DEFAULT_VIDEO_EXTENSION
    return input_path.with_name(f"{input_path.stem}.{tag}{suffix}")


def check_paths(input_path: Path, output_path: Path, overwrite: bool) -> None:
    """Refuse, with one line, every input/output combination that could lose data."""
    if output_path.suffix.lower() in INPUT_ONLY_VIDEO_EXTENSIONS and not output_path.is_dir():
        raise UsageError(
            f"dainctl does not write {output_path.suffix} files: name the output .mp4, .mov, .mkv or .webm "
            f"(or a folder for images): {output_path}"
        )
    if not input_path.exists():
        raise InputError(f"input not found: {input_path}")
    if not os.access(input_path, os.R_OK):
        raise InputError(f"input is not readable: {input_path}")
    if output_path.exists() or output_path.is_symlink():
        if _same_file(input_path, output_path):
            raise OutputError(f"output {output_path} is the input itself; choose another name")
        if not overwrite:
            raise OutputError(f"output exists: {output_path} (pass --overwrite to replace it)")
        if output_path.is_dir() and not _is_image_folder(output_path):
            raise OutputError(f"refusing to replace {output_path}: it is a folder with more than images in it")
    elif input_path.resolve() == output_path.resolve():
        raise OutputError(f"output {output_path} is the input itself; choose another name")
    parent = output_path.absolute().parent
    if not parent.is_dir():
        raise OutputError(f"output folder does not exist: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output folder is not writable: {parent}")
    if input_path.is_dir() and output_path.absolute().parent.resolve() == input_path.resolve() and not is_video_path(output_path):
        raise OutputError(f"output folder {output_path} must not be inside the input folder")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def _is_image_folder(path: Path) -> bool:
    return all(p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES for p in path.iterdir())


def temp_path_for(output_path: Path) -> Path:
    """A hidden sibling that keeps the extension, so the container format is chosen from it."""
    name = f".{output_path.name}{TEMP_MARKER}{os.getpid()}"
    if is_video_path(output_path):
        name += output_path.suffix
    return output_path.with_name(name)


def remove_path(path: Path) -> None:
    """Remove a temporary file or folder if it exists; never raises."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
    except OSError:
        pass


def commit_output(temp_path: Path, output_path: Path) -> None:
    """Move the finished temporary output into place (atomic for files)."""
    try:
        if temp_path.is_dir():
            if output_path.exists():
                # Folders cannot be replaced atomically: move the old one aside first, then drop it.
                old = output_path.with_name(f".{output_path.name}.old-{os.getpid()}")
                os.replace(output_path, old)
                os.replace(temp_path, output_path)
                remove_path(old)
            else:
                os.replace(temp_path, output_path)
        else:
            os.replace(temp_path, output_path)
    except OSError as exc:
        raise OutputError(f"cannot move the result into place at {output_path}: {exc.strerror}") from None

