"""Audio and subtitle streams carried from the input file into the output container.

`StreamCarrier` reads the source file with its own demuxer (the video reader keeps its own), so packets can
be interleaved with the video as it is written: `carry_until(ts)` moves everything that plays before output
time `ts`, `finish()` moves the rest. Audio is either stream-copied or, for slow motion, decoded, slowed with
an atempo chain (pitch preserved) and re-encoded; subtitles are copied and retimed by the same factor.
Every source timestamp is shifted by the video's start offset, so A/V sync is exactly the source's.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

AUDIO_MODES = ("copy", "drop", "stretch")

# The atempo filter accepts tempos in [0.5, 100]; slower tempos are built as a chain of stages.
_ATEMPO_MIN = Fraction(1, 2)

# Audio encoders for re-encoded (stretched) audio, by output container; the first one the container accepts
# and this FFmpeg build has is used.
_STRETCH_ENCODERS = {
    "webm": ("libopus", "opus"),
    "ogg": ("libopus", "opus", "libvorbis"),
}
_DEFAULT_STRETCH_ENCODERS = ("aac", "libopus", "libmp3lame")
_STRETCH_BIT_RATE_PER_CHANNEL = 96_000


def atempo_chain(stretch: Fraction) -> list[Fraction]:
    """Tempos of an atempo chain that slows audio by `stretch` (duration x stretch); each is in [0.5, 100].

    >>> atempo_chain(Fraction(4))
    [Fraction(1, 2), Fraction(1, 2)]
    """
    if stretch <= 0:
        raise ValueError(f"stretch must be positive, got {stretch}")
    tempo = 1 / Fraction(stretch)
    stages = []
    while tempo < _ATEMPO_MIN:
        stages.append(_ATEMPO_MIN)
        tempo /= _ATEMPO_MIN
    while tempo > 100:
        stages.append(Fraction(100))
        tempo /= 100
    if tempo != 1 or not stages:
        stages.append(tempo)
    return stages


def container_accepts(output, codec_name: str) -> bool:
    """Whether the output container can hold a stream of this codec (by FFmpeg's muxer table)."""
    try:
        return codec_name in output.supported_codecs
    except av.FFmpegError:
        return False


class _CopiedStream:
    """Packets of one source stream copied into one output stream, shifted and scaled in time."""

    def __init__(self, source_stream, output_stream, start: Fraction, stretch: Fraction):
        self.source = source_stream
        self.output = output_stream
        self.time_base = Fraction(source_stream.time_base)
        self.shift_ticks = round(start / self.time_base)
        self.stretch = stretch

    def retime(self, ticks: int | None) -> int | None:
        if ticks is None:
            return None
        shifted = ticks - self.shift_ticks
        return shifted if self.stretch == 1 else round(shifted * self.stretch)

    def carry(self, packet, container) -> None:
        # Packets before time 0 are kept: they are usually the codec's priming (AAC, MP3), which the
        # decoder needs and the container marks to be skipped.
        packet.pts = self.retime(packet.pts)
        packet.dts = self.retime(packet.dts)
        if self.stretch != 1 and packet.duration:
            packet.duration = round(packet.duration * self.stretch)
        packet.stream = self.output
        container.mux(packet)


class _StretchedAudio:
    """One audio stream decoded, slowed by `stretch` through atempo (pitch preserved) and re-encoded."""

    def __init__(self, source_stream, output_container, start: Fraction, stretch: Fraction, encoder: str):
        decoder = source_stream.codec_context
        self.source = source_stream
        self.start = start
        self.stretch = stretch
        self.time_base = Fraction(source_stream.time_base)
        self.container = output_container

        sample_rate = decoder.sample_rate
        codec = av.Codec(encoder, "w")
        if codec.audio_rates and sample_rate not in codec.audio_rates:
            # Opus only encodes at 48 kHz (and a few divisors); resample instead of failing.
            sample_rate = 48_000 if 48_000 in codec.audio_rates else max(codec.audio_rates)
        self.sample_rate = sample_rate
        layout = decoder.layout.name if decoder.layout.name else "stereo"
        channels = decoder.channels or 2
        self.output = output_container.add_stream(encoder, rate=sample_rate)
        self.output.codec_context.layout = layout
        self.output.codec_context.time_base = Fraction(1, sample_rate)
        self.output.codec_context.bit_rate = _STRETCH_BIT_RATE_PER_CHANNEL * min(channels, 6)
        formats = codec.audio_formats
        self.sample_format = formats[0].name if formats else "fltp"
        self.output.codec_context.format = self.sample_format
        self._layout = layout
        self._input_rate = decoder.sample_rate
        self._input_format = None
        self._graph = None
        self._next_pts: int | None = None
        self._first_pts: int | None = None
        self._samples_in = 0
        self._sample_limit: int | None = None
        self._source_end = _declared_end(source_stream)

    def _build_graph(self, frame) -> None:
        graph = av.filter.Graph()
        nodes = [
            graph.add_abuffer(
                sample_rate=frame.sample_rate,
                format=frame.format.name,
                layout=frame.layout.name,
                time_base=Fraction(1, frame.sample_rate),
            )
        ]
        for tempo in atempo_chain(self.stretch):
            nodes.append(graph.add("atempo", f"{float(tempo):.12g}"))
        nodes.append(
            graph.add(
                "aformat",
                sample_fmts=self.sample_format,
                sample_rates=str(self.sample_rate),
                channel_layouts=self._layout,
            )
        )
        nodes.append(graph.add("abuffersink"))
        graph.link_nodes(*nodes).configure()
        frame_size = self.output.codec_context.frame_size
        if frame_size:
            # Frames of exactly the encoder's size; only the last one may be shorter.
            graph.set_audio_frame_size(frame_size)
        self._graph = graph
        self._input_format = (frame.sample_rate, frame.format.name, frame.layout.name)

    def carry(self, packet, container) -> None:
        for frame in packet.decode():
            if frame.pts is None:
                continue
            frame_time = frame.pts * self.time_base
            source_time = frame_time - self.start
            if source_time + Fraction(frame.samples, frame.sample_rate) <= 0:
                continue
            if self._source_end is not None:
                # Decoders return the encoder's padding after the last real sample; MP4 marks where the
                # audio really ends, and stretching the padding would make the audio outlast the video.
                remaining = round((self._source_end - frame_time) * frame.sample_rate)
                if remaining <= 0:
                    continue
                if remaining < frame.samples:
                    pts = frame.pts
                    frame = _truncated(frame, remaining)
                    frame.pts = pts
            if self._graph is None:
                self._build_graph(frame)
                # The output clock starts where the first kept sample plays, scaled by the stretch; then it
                # advances by samples, as atempo produces them.
                self._next_pts = round(source_time * self.stretch * self.sample_rate)
                self._first_pts = self._next_pts
            elif (frame.sample_rate, frame.format.name, frame.layout.name) != self._input_format:
                raise ValueError("audio format changes mid-stream")
            frame.pts = round(source_time * frame.sample_rate)
            frame.time_base = Fraction(1, frame.sample_rate)
            self._samples_in += frame.samples
            self._last_input = frame
            self._graph.push(frame)
            self._drain(container)

    def _drain(self, container) -> None:
        while True:
            try:
                filtered = self._graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return
            if self._sample_limit is not None:
                room = self._first_pts + self._sample_limit - self._next_pts
                if room <= 0:
                    continue
                if filtered.samples > room:
                    filtered = _truncated(filtered, room)
            filtered.pts = self._next_pts
            filtered.time_base = Fraction(1, self.sample_rate)
            self._next_pts += filtered.samples
            container.mux(self.output.encode(filtered))

    def finish(self, container) -> None:
        if self._graph is not None:
            # atempo keeps up to a window of samples when flushed; feed silence past the end and cut the
            # output at exactly stretch x the input's length, so the audio ends where the video does.
            self._sample_limit = round(
                Fraction(self._samples_in * self.sample_rate, self._input_rate) * self.stretch
            )
            last = self._last_input
            padding = _silence_like(last, _FLUSH_PADDING_SECONDS * last.sample_rate)
            padding.pts = last.pts + last.samples
            padding.time_base = last.time_base
            self._graph.push(padding)
            self._graph.push(None)
            self._drain(container)
        container.mux(self.output.encode(None))


def _declared_end(stream) -> Fraction | None:
    """Where the container says a stream's playback ends (MP4 edit lists), in source seconds; else None."""
    if not stream.duration:
        return None
    time_base = Fraction(stream.time_base)
    first = stream.start_time * time_base if stream.start_time is not None else Fraction(0)
    return max(first, Fraction(0)) + stream.duration * time_base


# Silence fed after the last samples so atempo's window is flushed completely (its window is ~0.1 s).
_FLUSH_PADDING_SECONDS = Fraction(1, 2)


def _silence_like(frame, samples: int):
    """A silent audio frame with the format and layout of `frame`."""
    import numpy as np

    samples = int(samples)
    channels = frame.layout.nb_channels
    dtype = frame.to_ndarray().dtype
    shape = (channels, samples) if frame.format.is_planar else (1, samples * channels)
    silent = av.AudioFrame.from_ndarray(np.zeros(shape, dtype=dtype), format=frame.format.name, layout=frame.layout.name)
    silent.sample_rate = frame.sample_rate
    return silent


def _truncated(frame, samples: int):
    """The first `samples` samples of an audio frame, as a new frame."""
    data = frame.to_ndarray()
    channels = frame.layout.nb_channels
    data = data[:, :samples] if frame.format.is_planar else data[:, : samples * channels]
    cut = av.AudioFrame.from_ndarray(data.copy(), format=frame.format.name, layout=frame.layout.name)
    cut.sample_rate = frame.sample_rate
    return cut


class StreamCarrier:
    """Carries the audio and subtitle streams of `source_path` into `output` (an open PyAV container).

    audio: "copy" (stream copy), "stretch" (slowed by `stretch`, re-encoded) or "drop".
    Subtitles are copied (retimed by `stretch`) when the container accepts their codec; skipped streams are
    explained in `notices`. Streams are added to `output` at construction, before its header is written.
    """

    def __init__(
        self,
        source_path: Path,
        output,
        *,
        start: Fraction,
        audio: str = "copy",
        stretch: Fraction = Fraction(1),
        subtitles: bool = True,
    ):
        if audio not in AUDIO_MODES:
            raise ValueError(f"audio must be one of {AUDIO_MODES}, got {audio!r}")
        self.notices: list[str] = []
        self.stretch = Fraction(stretch)
        self._source = av.open(str(source_path), metadata_errors="replace")
        self._carried: dict[int, _CopiedStream | _StretchedAudio] = {}
        try:
            self._add_audio(output, start, audio)
            if subtitles:
                self._add_subtitles(output, start)
        except BaseException:
            self._source.close()
            raise
        streams = [self._source.streams[index] for index in self._carried]
        self._packets = self._source.demux(*streams) if streams else iter(())
        self._held = None
        self.audio_streams = sum(1 for s in streams if s.type == "audio")
        # Output time of the latest packet carried so far (None before the first).
        self.carried_until: Fraction | None = None

    def _add_audio(self, output, start: Fraction, audio: str) -> None:
        sources = list(self._source.streams.audio)
        if not sources or audio == "drop":
            return
        for stream in sources:
            codec_name = stream.codec_context.name if stream.codec_context else None
            if codec_name is None:
                self.notices.append(f"audio stream {stream.index} has a codec FFmpeg cannot decode; it is left out")
                continue
            if audio == "copy" and container_accepts(output, codec_name):
                out_stream = output.add_stream_from_template(stream)
                self._carried[stream.index] = _CopiedStream(stream, out_stream, start, Fraction(1))
                continue
            # Stretching re-encodes; so does a copy the container cannot hold (losing the audio would be worse).
            encoder = self._stretch_encoder(output)
            if encoder is None:
                self.notices.append(
                    f"audio stream {stream.index} ({codec_name}): no audio encoder fits the "
                    f"{output.format.name} container; it is left out"
                )
                continue
            if audio == "copy":
                self.notices.append(
                    f"audio stream {stream.index} ({codec_name}) cannot be copied into {output.format.name}; "
                    f"it is re-encoded as {encoder}"
                )
            stream.thread_type = "AUTO"
            stretch = self.stretch if audio == "stretch" else Fraction(1)
            self._carried[stream.index] = _StretchedAudio(stream, output, start, stretch, encoder)

    @staticmethod
    def _stretch_encoder(output) -> str | None:
        """The first audio encoder this FFmpeg has and the container accepts, or None."""
        candidates = _STRETCH_ENCODERS.get(output.format.name.split(",")[0], _DEFAULT_STRETCH_ENCODERS)
        for name in candidates:
            try:
                av.Codec(name, "w")
            except (av.FFmpegError, ValueError):
                continue
            if container_accepts(output, name):
                return name
        return None

    def _add_subtitles(self, output, start: Fraction) -> None:
        for stream in self._source.streams.subtitles:
            codec_name = stream.codec_context.name if stream.codec_context else None
            if codec_name is None or not container_accepts(output, codec_name):
                self.notices.append(
                    f"subtitle stream {stream.index} ({codec_name}) does not fit the "
                    f"{output.format.name} container; it is left out"
                )
                continue
            out_stream = output.add_stream_from_template(stream)
            self._carried[stream.index] = _CopiedStream(stream, out_stream, start, self.stretch)

    def _output_time(self, packet) -> Fraction | None:
        ticks = packet.pts if packet.pts is not None else packet.dts
        if ticks is None:
            return None
        carried = self._carried[packet.stream_index]
        return (ticks * carried.time_base - carried_start(carried)) * self.stretch

    def carry_until(self, container, ts: Fraction | None) -> None:
        """Mux every carried packet that plays before output time `ts` (all of them when ts is None)."""
        while True:
            packet = self._held
            self._held = None
            if packet is None:
                packet = next(self._packets, None)
                if packet is None:
                    return
            if packet.size == 0:
                continue  # demuxer flush packet: nothing to carry
            when = self._output_time(packet)
            if ts is not None and when is not None and when > ts:
                self._held = packet
                return
            self._carried[packet.stream_index].carry(packet, container)
            if when is not None:
                self.carried_until = when if self.carried_until is None else max(self.carried_until, when)

    def finish(self, container) -> None:
        """Carry the remaining packets and flush the audio encoders."""
        self.carry_until(container, None)
        for carried in self._carried.values():
            if isinstance(carried, _StretchedAudio):
                carried.finish(container)

    def close(self) -> None:
        self._source.close()


def carried_start(carried: _CopiedStream | _StretchedAudio) -> Fraction:
    """The source time that maps to output time 0 for a carried stream."""
    if isinstance(carried, _CopiedStream):
        return carried.shift_ticks * carried.time_base
    return carried.start
