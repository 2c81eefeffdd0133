"""RGB to planar YUV for the encoder, with an explicit matrix and range (OpenCV, several times faster than swscale).

swscale's rgb24 -> yuv420p path costs ~8 ms per 720p frame on one core; an affine `cv2.transform` plus a
2x2 area average of the chroma does the same conversion in ~1.3 ms with the same round-trip error
(chroma averaged over each 2x2 block, as swscale's default filter does).
"""

from __future__ import annotations

import numpy as np

# Luma weights (Kr, Kb) by FFmpeg colorspace (AVColorSpace). Unspecified (2) is converted as BT.601, which is
# what swscale assumes when it decodes an untagged file, so untagged output decodes to the same colours.
_LUMA_WEIGHTS = {
    1: (0.2126, 0.0722),  # BT.709
    2: (0.299, 0.114),  # unspecified
    4: (0.30, 0.11),  # FCC
    5: (0.299, 0.114),  # BT.470BG (BT.601 625)
    6: (0.299, 0.114),  # SMPTE 170M (BT.601 525)
    7: (0.212, 0.087),  # SMPTE 240M
    9: (0.2627, 0.0593),  # BT.2020 non-constant luminance
}
FULL_RANGE = 2  # AVCOL_RANGE_JPEG
FAST_PIX_FMTS = ("yuv420p", "yuv422p", "yuv444p")


def rgb_to_yuv_matrix(colorspace: int, color_range: int) -> np.ndarray:
    """3x4 float32 affine matrix taking 8-bit RGB to 8-bit Y, Cb, Cr for a colorspace and range."""
    red_weight, blue_weight = _LUMA_WEIGHTS[colorspace]
    luma = np.array([red_weight, 1 - red_weight - blue_weight, blue_weight])
    blue_difference = (np.array([0.0, 0.0, 1.0]) - luma) / (2 * (1 - blue_weight))
    red_difference = (np.array([1.0, 0.0, 0.0]) - luma) / (2 * (1 - red_weight))
    if color_range == FULL_RANGE:
        luma_scale, chroma_scale, luma_offset = 255.0, 255.0, 0.0
    else:  # limited ("tv") range: Y in 16..235, Cb/Cr in 16..240
        luma_scale, chroma_scale, luma_offset = 219.0, 224.0, 16.0
    matrix = np.zeros((3, 4), np.float32)
    matrix[0, :3], matrix[0, 3] = luma * luma_scale / 255, luma_offset
    matrix[1, :3], matrix[1, 3] = blue_difference * chroma_scale / 255, 128.0
    matrix[2, :3], matrix[2, 3] = red_difference * chroma_scale / 255, 128.0
    return matrix


def supports(pix_fmt: str, colorspace: int, width: int, height: int) -> bool:
    """Whether `rgb_to_planar_yuv` handles this target (otherwise the caller lets swscale convert)."""
    if pix_fmt not in FAST_PIX_FMTS or colorspace not in _LUMA_WEIGHTS:
        return False
    if pix_fmt == "yuv422p":
        return width % 2 == 0
    return pix_fmt != "yuv420p" or (width % 2 == 0 and height % 2 == 0)


def rgb_to_planar_yuv(rgb: np.ndarray, pix_fmt: str, matrix: np.ndarray) -> np.ndarray:
    """Convert uint8 (H, W, 3) RGB to the array `av.VideoFrame.from_ndarray` takes for `pix_fmt`.

    yuv420p: (H * 3 // 2, W) uint8, planes Y, U, V stacked; yuv422p: (2 * H, W), the same; yuv444p:
    (3, H, W) uint8. Chroma is the mean of each 2x2 (4:2:0) or 2x1 (4:2:2) block.
    """
    import cv2

    height, width = rgb.shape[:2]
    yuv = cv2.transform(rgb, matrix)  # rounds and saturates to uint8
    if pix_fmt == "yuv444p":
        return np.ascontiguousarray(yuv.transpose(2, 0, 1))
    chroma_height = height if pix_fmt == "yuv422p" else height // 2
    half = cv2.resize(yuv, (width // 2, chroma_height), interpolation=cv2.INTER_AREA)
    luma_size, chroma_size = height * width, half.shape[0] * half.shape[1]
    # The two chroma planes follow the luma plane back to back in the flat buffer.
    flat = np.empty(luma_size + 2 * chroma_size, np.uint8)
    planes = flat.reshape(-1, width)
    planes[:height] = yuv[..., 0]
    flat[luma_size : luma_size + chroma_size] = half[..., 1].reshape(-1)
    flat[luma_size + chroma_size :] = half[..., 2].reshape(-1)
    return planes


def yuv_to_rgb_matrix(colorspace: int, color_range: int) -> np.ndarray:
    """3x4 float32 affine matrix taking 8-bit Y, Cb, Cr back to 8-bit RGB (inverse of `rgb_to_yuv_matrix`)."""
    forward = rgb_to_yuv_matrix(colorspace, color_range).astype(np.float64)
    inverse = np.linalg.inv(forward[:, :3])
    matrix = np.zeros((3, 4), np.float32)
    matrix[:, :3] = inverse
    matrix[:, 3] = -inverse @ forward[:, 3]
    return matrix


def decodes_fast(pix_fmt: str, colorspace: int, width: int, height: int) -> bool:
    """Whether `planar_yuv_to_rgb` handles a decoded frame: the layouts `rgb_to_planar_yuv` writes
    (`supports`), in either range (the yuvj formats are full-range yuv)."""
    return supports(pix_fmt.replace("yuvj", "yuv", 1), colorspace, width, height)


def _plane_pixels(frame) -> list[np.ndarray]:
    """The Y, Cb and Cr planes of a decoded 8-bit planar PyAV frame, as (rows, width) views of its buffers."""
    return [np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
            for plane in frame.planes[:3]]


def planar_yuv_to_rgb(frame, matrix: np.ndarray) -> np.ndarray:
    """A decoded 8-bit frame that `decodes_fast` accepts (PyAV) as contiguous uint8 (H, W, 3) RGB: the
    chroma planes repeated over each 2x2 (4:2:0) or 2x1 (4:2:2) block, then the exact inverse of the
    encoder's matrix.

    This is the inverse of `rgb_to_planar_yuv`, whose chroma mean undoes the repetition: a frame
    decoded and written again keeps its Y, Cb and Cr up to rounding. swscale's default path, the
    alternative, also repeats the chroma, but its fixed-point matrix decodes about one level darker than
    the exact one (1.0-1.5 levels per channel on flipping_a_pancake.mkv), so a copied frame came back
    at 45 dB, and every written frame carried that bias (docs/benchmarks.md, 2026-12-04).
    """
    import cv2

    planes = _plane_pixels(frame)
    height, width = planes[0].shape
    if planes[1].shape != planes[0].shape:
        planes[1:] = [cv2.resize(p, (width, height), interpolation=cv2.INTER_NEAREST) for p in planes[1:]]
    return yuv444p_to_rgb(planes, matrix)


def yuv444p_to_rgb(planes, matrix: np.ndarray) -> np.ndarray:
    """Convert uint8 Y, Cb, Cr planes of one size ((3, H, W), or three (H, W) arrays) to contiguous uint8
    (H, W, 3) RGB."""
    import cv2

    interleaved = cv2.merge([planes[0], planes[1], planes[2]])
    return cv2.transform(interleaved, matrix)


# 8-bit planar YUV layouts whose planes `planar_thumbnail` reads directly.
THUMBNAIL_PIX_FMTS = ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p")


def planar_thumbnail(frame, width: int, height: int, matrix: np.ndarray) -> np.ndarray:
    """A decoded 8-bit planar YUV frame (PyAV) as a (height, width, 3) uint8 RGB thumbnail: each plane
    area-averaged to the thumbnail's size (OpenCV), then the frame's own matrix. Averaging before the
    (affine) conversion gives the colours of converting first, up to rounding, at a third of swscale's
    cost for a 720p frame."""
    import cv2

    planes = [cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA) for pixels in _plane_pixels(frame)]
    return yuv444p_to_rgb(planes, matrix)
