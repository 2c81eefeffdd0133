"""Video and image-folder input/output with PyAV: exact timestamps, streaming, audio carried over.

    src = open_input(path)                  # file or image folder; InputError on bad input (too small/large
                                            # frames, transparent alpha, damaged file: one line)
    for ts, rgb in src.frames(): ...        # ts: Fraction s from the first frame; rgb: (H, W, 3) uint8, or
                                            # uint16 when src.info.bit_depth > 8 (10-bit video, 16-bit PNG)
    src.end_ts                              # afterwards: when the last frame stops being displayed
    src.notices                             # what the user should hear (a file cut short: frames lost)
    dst = open_output(path, width=..., height=..., rate=Fraction(...), audio_from=src, audio="copy",
                      color=src.info.color, rotation=src.info.rotation, bit_depth=src.info.bit_depth,
                      sample_aspect_ratio=src.info.sample_aspect_ratio)   # pix_fmt=None follows bit_depth
    dst.write(rgb, ts); dst.close(end_ts)   # container duration == end_ts; dst.notices: what was adapted
    measure_streams(path)                   # per-stream start/end/packets, to check the result
"""

from dainctl.video.audio import AUDIO_MODES, atempo_chain
from dainctl.video.probe import StreamTiming, measure_streams
from dainctl.video.reader import (
    IMAGE_EXTENSIONS,
    ColorInfo,
    ImageFolderInput,
    InputInfo,
    VideoInput,
    list_image_files,
    open_input,
)
from dainctl.video.synthetic import make_sample_clip, render_sample_frame
from dainctl.video.writer import (
    DEFAULT_CRF,
    DEFAULT_PRESET,
    ImageFolderOutput,
    VideoOutput,
    is_folder_output,
    open_output,
)

__all__ = [
    "AUDIO_MODES",
    "DEFAULT_CRF",
    "DEFAULT_PRESET",
    "IMAGE_EXTENSIONS",
    "ColorInfo",
    "ImageFolderInput",
    "ImageFolderOutput",
    "InputInfo",
    "StreamTiming",
    "VideoInput",
    "VideoOutput",
    "atempo_chain",
    "is_folder_output",
    "list_image_files",
    "make_sample_clip",
    "measure_streams",
    "open_input",
    "open_output",
    "render_sample_frame",
]
