"""Finished segments joined into one video by stream copy: no decode, no re-encode.

    joiner = SegmentJoiner(OUT_TEMP, template=segments[0], rate=..., rotation=..., audio_from=source,
                           audio="copy", stretch=1)
    for path, start in zip(paths, starts):   # start: the segment's first frame on the output timeline
        joiner.append(path, start)
    joiner.close(end_ts)

Each segment is a video-only MP4 (`SEGMENT_SUFFIX`) whose timestamps start at 0, encoded with the same
encoder settings (so the same codec parameters). Its packets are shifted by the segment's start and
muxed in order; the input's audio and subtitles are carried once, alongside, exactly as a single-pass
`VideoOutput` carries them (`VideoMuxer`), and the track ends at `end_ts` the same way.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from dainctl.errors import OutputError
from dainctl.video.writer import VideoMuxer, _reason

SEGMENT_SUFFIX = ".mp4"
# Output containers that take stream-copied segments (tested: mp4/mov/m4v/mkv/webm with libx264,
# libx265, libvpx-vp9 and ffv1), and the encoders whose packets an MP4 segment can hold.
JOINABLE_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm")
SEGMENT_CODECS = ("libx264", "libx265", "libvpx-vp9", "libvpx", "ffv1", "libaom-av1", "libsvtav1")


def can_join(output: Path, codec: str) -> bool:
    return output.suffix.lower() in JOINABLE_SUFFIXES and codec in SEGMENT_CODECS


class SegmentJoiner(VideoMuxer):
    def __init__(self, path: Path, *, template: Path, rate: Fraction, rotation: int = 0, audio_from=None,
                 audio: str = "copy", stretch: Fraction = Fraction(1)):
        self._init_muxer(Path(path), Fraction(rate))
        self.frames_written = 0
        try:
            with av.open(str(template)) as source:
                stream = self._container.add_stream_from_template(source.streams.video[0])
            # The rate a container declares: from the codec's own timing for H.264, but VP9 carries none
            # and Matroska's millisecond stamps would make 48.37 fps read as 48.
            stream.codec_context.framerate = self.rate
            self._start_muxing(stream, rotation, audio_from, audio, Fraction(stretch))
        except (av.FFmpegError, ValueError) as error:
            self.abort()
            raise OutputError(f"cannot join segments into {path}: {_reason(error)}") from None
        except BaseException:
            self.abort()
            raise

    def append(self, segment: Path, start: Fraction) -> int:
        """Copy the packets of `segment`, shifted to start at `start` seconds; returns how many."""
        count = 0
        try:
            with av.open(str(segment)) as source:
                stream = source.streams.video[0]
                for packet in source.demux(stream):
                    if packet.size == 0 or packet.pts is None:
                        continue
                    shift = round(Fraction(start) / packet.time_base)
                    packet.pts += shift
                    if packet.dts is not None:
                        packet.dts += shift
                    packet.stream = self._stream
                    self._carry_until(packet.pts * packet.time_base)
                    self._mux_video(packet)
                    count += 1
        except (av.FFmpegError, OSError) as error:
            self.abort()
            raise OutputError(f"cannot join {segment} into {self.path}: {_reason(error)}") from None
        self.frames_written += count
        return count

    def close(self, end_ts: Fraction) -> None:
        """Finish the file: the last frame lasts until `end_ts` seconds; the carried streams complete."""
        if self._closed:
            return
        self._finish_muxing(round(Fraction(end_ts) / self.time_base))
