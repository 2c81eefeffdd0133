"""The job folder of a segmented run: `OUT.dainctl-job/` beside the output.

    manifest.json        the input's digest, the options' digest, the plan's digest, and per segment:
                         its frames, its state ("pending" or "done"), its file, packets and sha256
    segment-0003.mp4     finished segments (video only, timestamps from 0; `dainctl.video.join`)
    segment-0004.partial.mp4   the segment being written (one per worker), renamed when complete

The manifest is rewritten whole and renamed into place after each segment completes, so a crash,
`kill -9`, power loss or full disk at any moment leaves a manifest that names only complete, checksummed
segments. A later run with the same input and options verifies those (file present, packet count,
sha256) and computes only the rest; a leftover `.partial` file is deleted. Different input or options:
one line, exit 2, nothing deleted (`--restart` discards the folder). When the output is complete, the
folder is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from dainctl.errors import OutputError, UsageError
from dainctl.paths import remove_path
from dainctl.plan import Segment

SUFFIX = ".dainctl-job"
MANIFEST = "manifest.json"
VERSION = 1
PARTIAL = ".partial"


def job_folder_for(output: Path) -> Path:
    return output.with_name(output.name + SUFFIX)


def input_digest(path: Path) -> dict:
    """Size, modification time and the sha256 of the first and last MiB (a folder: its files' names and
    sizes): cheap for a two-hour film, and any edit or replacement changes it."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        listing = "\n".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
        return {"path": str(path.resolve()), "folder": hashlib.sha256(listing.encode()).hexdigest()}
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        digest.update(stream.read(1 << 20))
        if stat.st_size > 2 << 20:
            stream.seek(-(1 << 20), os.SEEK_END)
            digest.update(stream.read(1 << 20))
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256_ends": digest.hexdigest()}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def count_packets(path: Path) -> int | None:
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return sum(1 for packet in container.demux(stream) if packet.size)
    except (av.FFmpegError, OSError, IndexError):
        return None


@dataclass
class SegmentState:
    segment: Segment
    done: bool = False
    file: str | None = None
    packets: int | None = None
    sha256: str | None = None

    def as_dict(self) -> dict:
        return {**self.segment.as_dict(), "state": "done" if self.done else "pending", "file": self.file,
                "packets": self.packets, "sha256": self.sha256}


@dataclass
class JobFolder:
    """A segmented run's folder; `states[i]` says whether segment i is done."""

    path: Path
    identity: dict
    states: list[SegmentState]
    reused: int = 0  # segments verified and kept from an earlier run
    redone: list[int] = field(default_factory=list)  # segments of an earlier run that failed verification

    @classmethod
    def open(cls, output: Path, identity: dict, segments: list[Segment], *, restart: bool) -> "JobFolder":
        """The folder for this run: a new one, or an earlier run's with the same identity (its done
        segments verified). Raises `UsageError` when an earlier run's identity differs."""
        path = job_folder_for(output)
        manifest = path / MANIFEST
        if restart:
            remove_path(path)
        states = [SegmentState(segment) for segment in segments]
        folder = cls(path, identity, states)
        if manifest.exists():
            try:
                saved = json.loads(manifest.read_text())
            except (OSError, ValueError):
                saved = None
            if saved is None or saved.get("version") != VERSION:
                raise UsageError(f"{path} holds an unreadable job manifest; add --restart to discard it")
            differs = sorted(key for key in set(identity) | set(saved.get("identity", {}))
                             if identity.get(key) != saved.get("identity", {}).get(key))
            if differs:
                words = {"segments": "segment length (--segment-seconds)"}
                raise UsageError(
                    f"{path} holds an unfinished run of other {' and '.join(words.get(k, k) for k in differs)}; "
                    "run the same command to resume it, or add --restart to discard it"
                )
            folder._adopt(saved.get("segments", []))
        try:
            path.mkdir(exist_ok=True)
        except OSError as error:
            raise OutputError(f"cannot create the job folder {path}: {error.strerror or error}") from None
        for leftover in path.glob(f"*{PARTIAL}*"):
            leftover.unlink(missing_ok=True)
        folder.save()
        return folder

    def _adopt(self, saved: list[dict]) -> None:
        by_index = {entry.get("index"): entry for entry in saved}
        for state in self.states:
            entry = by_index.get(state.segment.index)
            if not entry or entry.get("state") != "done" or not entry.get("file"):
                continue
            current = state.segment.as_dict()
            if any(entry.get(key) != current[key] for key in ("first_output", "frames", "start", "end")):
                continue  # another cut of the plan: not this segment's frames
            file = self.path / entry["file"]
            ok = (file.is_file() and entry.get("sha256") == sha256_of(file)
                  and entry.get("packets") == state.segment.frames == count_packets(file))
            if ok:
                state.done, state.file, state.packets, state.sha256 = True, entry["file"], entry["packets"], entry["sha256"]
                self.reused += 1
            else:
                self.redone.append(state.segment.index)
                file.unlink(missing_ok=True)

    def partial_path(self, segment: Segment) -> Path:
        return self.path / f"segment-{segment.index:04d}{PARTIAL}.mp4"

    def final_path(self, segment: Segment) -> Path:
        return self.path / f"segment-{segment.index:04d}.mp4"

    def complete(self, segment: Segment, written: Path) -> None:
        """Move a finished segment into place and record it (after its checksum) in the manifest."""
        final = self.final_path(segment)
        os.replace(written, final)
        state = self.states[segment.index]
        state.done, state.file, state.sha256 = True, final.name, sha256_of(final)
        state.packets = count_packets(final)
        self.save()

    @property
    def pending(self) -> list[Segment]:
        return [state.segment for state in self.states if not state.done]

    def save(self) -> None:
        payload = {"version": VERSION, "identity": self.identity, "segments": [s.as_dict() for s in self.states]}
        temporary = self.path / f".{MANIFEST}.{os.getpid()}.tmp"
        try:
            with open(temporary, "w") as stream:
                json.dump(payload, stream, indent=1)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self.path / MANIFEST)
        except OSError as error:
            remove_path(temporary)
            raise OutputError(f"cannot write the job manifest in {self.path}: {error.strerror or error}") from None

    def remove(self) -> None:
        remove_path(self.path)
