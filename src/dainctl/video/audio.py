"""Audio and subtitle streams carried from the input file into the output container.

`StreamCarrier` reads the source file with its own demuxer (the video reader keeps its own), so packets can
be interleaved with the video as it is written: `carry_until(ts)` moves everything that plays before output
time `ts`, `finish()` moves the rest. Audio is either stream-copied or, for slow motion, decoded, slowed with
an atempo chain (pitch preserved) and re-encoded; subtitles are copied and retimed by the same factor.
Every source timestamp is shifted by the video's start offset, so A/V sync is exactly the source's.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av

from dainctl.video.probe import format_name, is_mov_family

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


# MP4/MOV (`is_mov_family`) can start a stream before time zero and mark the head to be skipped (edit
# lists): copied packets there keep the input's timing to the sample. Elsewhere (Matroska, WebM, AVI) a
# copied stream can only be cut at packet boundaries.
# Codecs FFmpeg's table lists for a muxer but that its header writing refuses (QuickTime .mov and Opus
# or Vorbis; text subtitles other than mov_text in the MP4 family; WebM takes WebVTT only).
_REFUSED = {
    "mov": {"opus", "vorbis"},
}
_TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "text", "webvtt", "mov_text"}


def can_copy(output, codec_name: str, kind: str) -> bool:
    """Whether a stream of this codec can be stream-copied into `output` (and the file then written)."""
    fmt = format_name(output)
    if codec_name in _REFUSED.get(fmt, ()):
        return False
    if kind == "subtitle":
        if is_mov_family(output):
            return codec_name == "mov_text"
        if fmt == "webm":
            return codec_name == "webvtt"
    return container_accepts(output, codec_name)


def subtitle_target(output, codec_name: str) -> str | None:
    """The text subtitle codec a source subtitle stream is converted to for `output` (SRT/ASS/WebVTT to
    mov_text for MP4/MOV, to WebVTT for WebM, to SubRip elsewhere); None when it cannot be (bitmap
    subtitles)."""
    if codec_name not in _TEXT_SUBTITLES:
        return None
    fmt = format_name(output)
    for target in ("mov_text",) if is_mov_family(output) else ("webvtt",) if fmt == "webm" else ("subrip", "webvtt"):
        if container_accepts(output, target):
            return target
    return None


def opus_pre_skip(stream) -> Fraction:
    """Seconds an Opus stream's decoder discards at its start (OpusHead's pre-skip, at 48 kHz); else 0."""
    context = stream.codec_context
    if context is None or context.name != "opus":
        return Fraction(0)
    extradata = context.extradata or b""
    if len(extradata) >= 12 and extradata[:8] == b"OpusHead":
        return Fraction(int.from_bytes(extradata[10:12], "little"), 48_000)
    return Fraction(0)


def copy_works(output_format: str, source_path: Path, stream_index: int) -> bool:
    """Whether FFmpeg's `output_format` muxer really takes a stream copy of this source stream: its header,
    a few packets and its trailer are written to memory. FFmpeg's codec tables accept combinations that
    its muxers then refuse (PCM or WMA into MP4, FLAC into .mov ...); those are re-encoded instead."""
    import io

    try:
        with av.open(str(source_path), metadata_errors="replace") as source:
            stream = source.streams[stream_index]
            buffer = io.BytesIO()
            with av.open(buffer, "w", format=output_format) as trial:
                out = trial.add_stream_from_template(stream)
                trial.start_encoding()
                sent = 0
                first = None
                for packet in source.demux(stream):
                    if packet.size == 0 or packet.pts is None:
                        continue
                    first = packet.pts if first is None else first
                    packet.pts -= first
                    packet.dts = packet.pts if packet.dts is None else packet.dts - first
                    packet.stream = out
                    trial.mux(packet)
                    sent += 1
                    if sent == 3:
                        break
        return True
    except (av.FFmpegError, ValueError, OSError):
        return False


def keeps_copied_packet(start: Fraction, skippable_head: Fraction, edit_list: bool, time_base: Fraction) -> bool:
    """Whether a copied packet that plays from output time `start` is carried (the plan's rule: what
    plays before the first video frame is cut). With an edit list (MP4/MOV) every packet is kept and the
    container cuts the head to the sample; elsewhere a packet that starts before 0 is dropped, unless it
    lies within the codec's own skipped head (Opus pre-skip, which the container marks), as far as the
    source's `time_base` can tell (Matroska's milliseconds round it)."""
    if edit_list or start >= 0:
        return True
    head_ticks = -(-skippable_head // time_base)  # the head rounded up to whole ticks
    return start >= -head_ticks * time_base


class _CopiedStream:
    """Packets of one source stream copied into one output stream, shifted and scaled in time."""

    def __init__(self, source_stream, output_stream, start: Fraction, stretch: Fraction, edit_list: bool = True):
        self.source = source_stream
        self.output = output_stream
        self.time_base = Fraction(source_stream.time_base)
        self.start = start
        self.stretch = stretch
        self.edit_list = edit_list
        self.skippable_head = opus_pre_skip(source_stream)

    def retime(self, ticks: int | None, time_base: Fraction) -> int | None:
        """Source ticks -> ticks of `time_base` on the output timeline, exactly then rounded once (a source
        time base can be as coarse as one audio packet: AVI)."""
        if ticks is None:
            return None
        return round((ticks * self.time_base - self.start) * self.stretch / time_base)

    def carry(self, packet, container) -> None:
        # Packets before time 0 are kept where the container can mark them to be skipped (the codec's
        # priming, which the decoder needs, or audio before the first video frame); elsewhere they are
        # dropped (`keeps_copied_packet`).
        ticks = packet.pts if packet.pts is not None else packet.dts
        if ticks is not None and not keeps_copied_packet(
            ticks * self.time_base - self.start, self.skippable_head, self.edit_list, self.time_base
        ):
            return
        packet = self.transform(packet)
        out_base = Fraction(self.output.time_base) if self.output.time_base else self.time_base
        pts, dts = self.retime(packet.pts, out_base), self.retime(packet.dts, out_base)
        duration = round(packet.duration * self.time_base * self.stretch / out_base) if packet.duration else 0
        packet.time_base = out_base
        packet.pts, packet.dts = pts, dts
        if duration:
            packet.duration = duration
        packet.stream = self.output
        container.mux(packet)

    def transform(self, packet):
        """The packet as the output stream takes it (copied unchanged)."""
        return packet


class _ConvertedSubtitles(_CopiedStream):
    """A text subtitle stream converted cue by cue to another text codec (SRT/ASS to mov_text or WebVTT),
    timed like a copy."""

    def __init__(self, source_stream, output_stream, start: Fraction, stretch: Fraction, target: str):
        super().__init__(source_stream, output_stream, start, stretch, edit_list=True)
        self.source_codec = source_stream.codec_context.name
        self.target = target

    def transform(self, packet):
        data = cue_text(bytes(packet), self.source_codec).encode("utf-8")
        if self.target == "mov_text":
            data = len(data).to_bytes(2, "big") + data  # a mov_text sample: 16-bit length, then the text
        converted = av.Packet(data)
        converted.pts, converted.dts, converted.duration = packet.pts, packet.dts, packet.duration
        converted.time_base = packet.time_base
        return converted


def cue_text(data: bytes, codec: str) -> str:
    """The plain text of one subtitle cue: SubRip/WebVTT text with its markup tags removed, the Text field
    of a Matroska ASS event without override codes ({...}) and with its line breaks, or a mov_text
    sample's text."""
    import re

    if codec == "mov_text":
        length = int.from_bytes(data[:2], "big") if len(data) >= 2 else 0
        text = data[2 : 2 + length].decode("utf-8", "replace")
    else:
        text = data.decode("utf-8", "replace")
    if codec in ("ass", "ssa"):
        # Matroska stores ASS events as ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text.
        fields = text.split(",", 8)
        text = fields[8] if len(fields) == 9 else text
        text = re.sub(r"\{[^}]*\}", "", text).replace("\\N", "\n").replace("\\n", "\n").replace("\\h", " ")
    else:
        text = re.sub(r"</?[a-zA-Z][^>]*>", "", text)
    return text.strip("\r\n")


@lru_cache(maxsize=32)
def atempo_lead(sample_rate: int, stretch: Fraction) -> Fraction:
    """Seconds by which the atempo chain that slows audio by `stretch` makes sounds start early, measured
    on this FFmpeg: a train of short tone bursts goes through the same chain, and the median shift of
    their onsets (first sample above a tenth of the burst's peak) from `stretch` x their input times is
    the lead (0 when none). atempo's overlap-add fades a sound in up to a window before it starts, per
    stage, compounding (docs/benchmarks.md has the measured leads and the A/V offsets with and without)."""
    import numpy as np

    if stretch == 1:
        return Fraction(0)
    # Tone bursts of 0.1 s (a sound event) at irregular times (a golden-ratio sequence), so that they
    # meet atempo's windows at every phase and the median is not one phase's.
    spacing, count, burst = 0.5, 16, sample_rate // 10
    signal = np.zeros(int(sample_rate * spacing * (count + 1)), np.float32)
    onsets = []
    for index in range(count):
        start = int(sample_rate * spacing * (index + 0.4 + 0.2 * ((index * 0.6180339887) % 1)))
        signal[start : start + burst] = np.sin(2 * np.pi * 1000 * np.arange(burst) / sample_rate)
        onsets.append(start / sample_rate)
    graph = av.filter.Graph()
    nodes = [graph.add_abuffer(sample_rate=sample_rate, format="flt", layout="mono", time_base=Fraction(1, sample_rate))]
    nodes += [graph.add("atempo", f"{float(tempo):.12g}") for tempo in atempo_chain(stretch)]
    nodes.append(graph.add("abuffersink"))
    graph.link_nodes(*nodes).configure()
    out = []

    def drain() -> None:
        while True:
            try:
                out.append(graph.pull().to_ndarray().reshape(-1))
            except (av.BlockingIOError, av.EOFError):
                return

    for offset in range(0, signal.size, 1024):
        chunk = av.AudioFrame.from_ndarray(signal[None, offset : offset + 1024].copy(), format="flt", layout="mono")
        chunk.sample_rate, chunk.pts, chunk.time_base = sample_rate, offset, Fraction(1, sample_rate)
        graph.push(chunk)
        drain()
    graph.push(None)
    drain()
    level = np.abs(np.concatenate(out)) if out else np.zeros(0)
    factor, shifts = float(stretch), []
    for onset in onsets:
        low = int((onset - 0.3 * spacing) * factor * sample_rate)
        window = level[low : int((onset + 0.3 * spacing) * factor * sample_rate)]
        if window.size and window.max() > 0:
            # Where the burst is first heard: its first sample above a tenth of its peak.
            first = int(np.flatnonzero(window > 0.1 * window.max())[0])
            shifts.append((low + first) / sample_rate - onset * factor)
    if not shifts:
        return Fraction(0)
    lead = -float(np.median(shifts))
    return Fraction(round(lead * sample_rate), sample_rate) if lead > 0 else Fraction(0)


_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


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
        channels = decoder.channels or 2
        layout = decoder.layout.name
        if not layout or layout.endswith("channels"):
            # An unordered layout ("2 channels": PCM in NUT, WMA) is one encoders refuse: take the usual
            # layout for that many channels.
            layout = _DEFAULT_LAYOUTS.get(channels, "stereo")
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
        self.first_packet_pts: int | None = None

    @property
    def priming(self) -> Fraction:
        """Seconds of encoder priming (AAC: 1024 samples) ahead of the first sample written; a container
        hides them only when they fall before time zero."""
        if self.first_packet_pts is None or self._first_pts is None:
            return Fraction(0)
        return Fraction(max(0, self._first_pts - self.first_packet_pts), self.sample_rate)

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
        self._take(packet.decode(), container)

    def _take(self, frames, container) -> None:
        for frame in frames:
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
                    frame = _sliced(frame, 0, remaining)
                    frame.pts = pts
            if source_time < 0:
                # The plan's rule: what plays before the first video frame is cut, to the sample.
                frame = _sliced(frame, round(-source_time * frame.sample_rate))
                source_time = Fraction(0)
            if self._graph is None:
                self._build_graph(frame)
                # The output clock starts where the first kept sample plays, scaled by the stretch; then it
                # advances by samples, as atempo produces them.
                self._next_pts = round(source_time * self.stretch * self.sample_rate)
                self._first_pts = self._next_pts
                # atempo places content early (`atempo_lead`): silence pushed ahead of the first samples
                # delays everything by that much, and the end is still cut at stretch x the input.
                lead = round(atempo_lead(frame.sample_rate, self.stretch) / self.stretch * frame.sample_rate)
                if lead > 0:
                    silence = _silence_like(frame, lead)
                    silence.pts = round(source_time * frame.sample_rate) - lead
                    silence.time_base = Fraction(1, frame.sample_rate)
                    self._graph.push(silence)
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
                    filtered = _sliced(filtered, 0, room)
            filtered.pts = self._next_pts
            filtered.time_base = Fraction(1, self.sample_rate)
            self._next_pts += filtered.samples
            packets = self.output.encode(filtered)
            if self.first_packet_pts is None and packets and packets[0].pts is not None:
                self.first_packet_pts = packets[0].pts  # the encoder's time base is 1/sample_rate
            container.mux(packets)

    def finish(self, container) -> None:
        # A frame-threaded decoder (FLAC, MP2 ...) still holds the last frames: flush it first.
        try:
            self._take(self.source.codec_context.decode(None), container)
        except av.FFmpegError:
            pass
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
    """Where the container says a stream's playback ends (MP4 edit lists), in source seconds; else None
    (other containers' declared durations are estimates)."""
    if not stream.duration or not is_mov_family(stream.container):
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


def _sliced(frame, start: int, stop: int | None = None):
    """Samples [start, stop) of an audio frame, as a new frame."""
    data = frame.to_ndarray()
    channels = 1 if frame.format.is_planar else frame.layout.nb_channels
    data = data[:, start * channels : None if stop is None else stop * channels]
    cut = av.AudioFrame.from_ndarray(data.copy(), format=frame.format.name, layout=frame.layout.name)
    cut.sample_rate = frame.sample_rate
    return cut


@dataclass(frozen=True)
class CarriedAudio:
    """How one input audio stream was carried: "copy" (packets, the head cut to the sample by an edit
    list), "copy-packets" (packets, cut at a packet boundary) or "encode" (decoded, cut to the sample and
    re-encoded, stretched in slow motion; `priming` is the encoder's, which a container shows when the
    stream starts after time zero). `dainctl.verify.expected_audio_durations` reads it."""

    source_index: int
    mode: str
    priming: Fraction = Fraction(0)  # "encode": the encoder's priming ahead of the first sample


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
        self._audio_entries: list[tuple[int, str]] = []
        self.subtitles_carried: list[str] = []
        self.subtitles_dropped: list[str] = []
        self.stretch = Fraction(stretch)
        self._source_path = source_path
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

    @property
    def audio_plan(self) -> list[CarriedAudio]:
        """How each audio stream was carried, in output order (complete once `finish` has run)."""
        plan = []
        for index, mode in self._audio_entries:
            carried = self._carried[index]
            priming = carried.priming if isinstance(carried, _StretchedAudio) else Fraction(0)
            plan.append(CarriedAudio(index, mode, priming))
        return plan

    def _add_audio(self, output, start: Fraction, audio: str) -> None:
        sources = list(self._source.streams.audio)
        if not sources or audio == "drop":
            return
        for stream in sources:
            codec_name = stream.codec_context.name if stream.codec_context else None
            if codec_name is None:
                self.notices.append(f"audio stream {stream.index} has a codec FFmpeg cannot decode; it is left out")
                continue
            if audio == "copy" and can_copy(output, codec_name, "audio") and copy_works(
                format_name(output), self._source_path, stream.index
            ):
                out_stream = output.add_stream_from_template(stream)
                edit_list = is_mov_family(output)
                self._carried[stream.index] = _CopiedStream(stream, out_stream, start, Fraction(1), edit_list)
                self._audio_entries.append((stream.index, "copy" if edit_list else "copy-packets"))
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
            self._audio_entries.append((stream.index, "encode"))

    @staticmethod
    def _stretch_encoder(output) -> str | None:
        """The first audio encoder this FFmpeg has and the container accepts, or None."""
        candidates = _STRETCH_ENCODERS.get(format_name(output), _DEFAULT_STRETCH_ENCODERS)
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
            if codec_name is not None and can_copy(output, codec_name, "subtitle") and copy_works(
                format_name(output), self._source_path, stream.index
            ):
                out_stream = output.add_stream_from_template(stream)
                self._carried[stream.index] = _CopiedStream(stream, out_stream, start, self.stretch)
                self.subtitles_carried.append(f"{codec_name} copied")
                continue
            target = subtitle_target(output, codec_name) if codec_name else None
            if target is None:
                self.notices.append(
                    f"subtitle stream {stream.index} ({codec_name}) does not fit the "
                    f"{format_name(output)} container and cannot be converted; it is left out"
                )
                self.subtitles_dropped.append(codec_name or "unknown")
                continue
            out_stream = output.add_mux_stream(target)
            out_stream.time_base = stream.time_base
            if stream.language:
                out_stream.metadata["language"] = stream.language
            self._carried[stream.index] = _ConvertedSubtitles(stream, out_stream, start, self.stretch, target)
            self.notices.append(f"subtitle stream {stream.index} ({codec_name}) converted to {target} for {format_name(output)}")
            self.subtitles_carried.append(f"{codec_name} converted to {target}")

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
    return carried.start
