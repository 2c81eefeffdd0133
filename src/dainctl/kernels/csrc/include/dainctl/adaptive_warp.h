// FilterInterpolation (adaptive warping) per-pixel math (semantics: dainctl/kernels/adaptive_warp.py).
#pragma once

#include "dainctl/common.h"

namespace dainctl {

constexpr int kFilterSize = 4;
constexpr int kFilterTaps = kFilterSize * kFilterSize;

// Where output pixel (x, y) reads: whether the flow is valid there, the window's 4 row offsets and 4
// columns (reads clamped to the border; tap t = 4 * row + col reads row[t / 4] + col[t % 4]) and the
// bilinear weights of the four 2x2 quadrants.
template <typename A>
struct FilterTaps {
  bool valid = false;
  int64_t row[kFilterSize];
  int col[kFilterSize];
  A alpha = 0, beta = 0;
  A corner[4] = {0, 0, 0, 0};  // top-left, top-right, bottom-left, bottom-right
};

// The quadrant (index into FilterTaps::corner) of window tap `tap` = 4 * row + col.
DAINCTL_HD int filter_quadrant(int tap) { return ((tap / kFilterSize) / 2) * 2 + (tap % kFilterSize) / 2; }

template <typename A>
DAINCTL_HD FilterTaps<A> filter_interpolation_taps(A fx, A fy, int x, int y, int height, int width) {
  FilterTaps<A> taps;
  const A sample_x = static_cast<A>(x) + fx;
  const A sample_y = static_cast<A>(y) + fy;
  // Positive tests so NaN or infinite flow is invalid; invalid pixels copy the input through.
  taps.valid = sample_x >= A(0) && sample_x <= static_cast<A>(width - 1) && sample_y >= A(0) &&
               sample_y <= static_cast<A>(height - 1) && abs_of(fx) < static_cast<A>(width) / A(2) &&
               abs_of(fy) < static_cast<A>(height) / A(2);
  if (!taps.valid) return taps;
  const int base_x = floor_nonnegative(sample_x);
  const int base_y = floor_nonnegative(sample_y);
  taps.alpha = sample_x - static_cast<A>(base_x);
  taps.beta = sample_y - static_cast<A>(base_y);
  const int window_x0 = base_x + 1 - kFilterSize / 2;
  const int window_y0 = base_y + 1 - kFilterSize / 2;
  for (int a = 0; a < kFilterSize; ++a) {
    taps.row[a] = static_cast<int64_t>(clamp_index(window_y0 + a, height - 1)) * width;
    taps.col[a] = clamp_index(window_x0 + a, width - 1);
  }
  taps.corner[0] = (A(1) - taps.alpha) * (A(1) - taps.beta);
  taps.corner[1] = taps.alpha * (A(1) - taps.beta);
  taps.corner[2] = (A(1) - taps.alpha) * taps.beta;
  taps.corner[3] = taps.alpha * taps.beta;
  return taps;
}

// One channel's values at the 16 taps.
template <typename T, typename A>
DAINCTL_HD void filter_tap_values(const T* channel, const FilterTaps<A>& taps, A value[kFilterTaps]) {
  for (int a = 0; a < kFilterSize; ++a)
    for (int b = 0; b < kFilterSize; ++b)
      value[a * kFilterSize + b] = Storage<T>::load(channel[taps.row[a] + taps.col[b]]);
}

// The four quadrant sums of tap values times the filter (each 2x2 quadrant summed row by row).
template <typename A>
DAINCTL_HD void filter_quadrant_sums(const A value[kFilterTaps], const A kernel[kFilterTaps], A quadrant[4]) {
  for (int q = 0; q < 4; ++q) {
    const int t = (q / 2) * 2 * kFilterSize + (q % 2) * 2;  // the quadrant's top-left tap
    const int below = t + kFilterSize;
    quadrant[q] = value[t] * kernel[t] + value[t + 1] * kernel[t + 1] + value[below] * kernel[below] +
                  value[below + 1] * kernel[below + 1];
  }
}

// How a pixel reads a channel's 16 tap values (and the backward adds a gradient to them), through the
// taps' row offsets and columns (borders clamped): the general window, on the CPU and on CUDA. `add(c, offset,
// value)` adds `value` at `offset` of channel c's plane of the input's gradient (on the CPU into the
// result or a thread's own buffer, see `scatter_rows`; with atomics on CUDA). A driver may pass its
// own window with the same three members (the CPU's reads and adds runs of 4 where the window lies
// inside the frame's columns). The forward needs no `add_at`: `NoAdd`.
//   image: (channels, plane) of T
template <typename T, typename A, typename Add>
struct FilterWindow {
  const T* image;
  int64_t plane;
  const FilterTaps<A>* taps;
  Add add_at;

  DAINCTL_HD void load(int c, A value[kFilterTaps]) const { filter_tap_values(image + c * plane, *taps, value); }
  DAINCTL_HD void scatter(int c, const A gradient[kFilterTaps]) const {
    for (int a = 0; a < kFilterSize; ++a)
      for (int b = 0; b < kFilterSize; ++b) add_at(c, taps->row[a] + taps->col[b], gradient[a * kFilterSize + b]);
  }
  DAINCTL_HD void add(int c, int64_t offset, A value) const { add_at(c, offset, value); }
};

struct NoAdd {
  template <typename V>
  DAINCTL_HD void operator()(int, int64_t, V) const {}
};

// Output pixel `pixel` of one batch item with taps `taps`, all channels, the taps read through
// `window` (above).
//   image, out: (channels, plane) of T      filters: (16, plane) of T
template <typename T, typename A, typename Window>
DAINCTL_HD void filter_interpolation_pixel_at(const Window& window, const T* image, const T* filters, T* out,
                                              const FilterTaps<A>& taps, int channels, int64_t plane, int64_t pixel) {
  if (!taps.valid) {
    for (int c = 0; c < channels; ++c) out[c * plane + pixel] = image[c * plane + pixel];
    return;
  }
  A kernel[kFilterTaps];
  for (int t = 0; t < kFilterTaps; ++t) kernel[t] = Storage<T>::load(filters[t * plane + pixel]);
  for (int c = 0; c < channels; ++c) {
    A value[kFilterTaps], quadrant[4];
    window.load(c, value);
    filter_quadrant_sums(value, kernel, quadrant);
    const A result = taps.corner[0] * quadrant[0] + taps.corner[1] * quadrant[1] + taps.corner[2] * quadrant[2] +
                     taps.corner[3] * quadrant[3];
    out[c * plane + pixel] = Storage<T>::store(result);
  }
}

// Output pixel (x, y) of one batch item, all channels.
//   image:   (channels, height, width) of T      flow:    (2, height, width) of A
//   filters: (16, height, width) of T            out:     (channels, height, width) of T
template <typename T, typename A>
DAINCTL_HD void filter_interpolation_pixel(const T* image, const A* flow, const T* filters, T* out,
                                           int channels, int height, int width, int x, int y) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int64_t pixel = static_cast<int64_t>(y) * width + x;
  const FilterTaps<A> taps = filter_interpolation_taps<A>(flow[pixel], flow[plane + pixel], x, y, height, width);
  const FilterWindow<T, A, NoAdd> window{image, plane, &taps, NoAdd{}};
  filter_interpolation_pixel_at<T, A>(window, image, filters, out, taps, channels, plane, pixel);
}

// ---- backward: the derivative of the forward above, with the floor() held constant (as autograd of
// the reference twin takes it). An invalid pixel copies the input through, so its gradient goes to the
// input pixel itself and none to the flow or the filters.

// Every gradient of output pixel `pixel` of one batch item with taps `taps`, in one pass over the
// channels (each tap read once per channel): the flow's (2) and the filters' (16), summed over the
// channels, into `grad_flow` and `grad_filters`; the input's added through `window` (above). An invalid
// pixel passes its gradient to the input pixel itself and none to the flow or the filters.
//   filter: the pixel's 16 filter values, tap t at filter[t * filter_stride] (the filters' plane, or a
//           driver's row buffer)      grad: (channels, plane) of T
template <typename T, typename A, typename Window>
DAINCTL_HD void filter_interpolation_pixel_backward(const T* filter, int64_t filter_stride, const T* grad,
                                                    const FilterTaps<A>& taps, int channels, int64_t plane,
                                                    int64_t pixel, const Window& window, A grad_flow[2],
                                                    A grad_filters[kFilterTaps]) {
  grad_flow[0] = grad_flow[1] = A(0);
  for (int t = 0; t < kFilterTaps; ++t) grad_filters[t] = A(0);
  if (!taps.valid) {
    for (int c = 0; c < channels; ++c) window.add(c, pixel, Storage<T>::load(grad[c * plane + pixel]));
    return;
  }
  A kernel[kFilterTaps];  // the filter at each tap
  A weight[kFilterTaps];  // each tap's quadrant weight: d out / d input = weight * kernel
  for (int t = 0; t < kFilterTaps; ++t) {
    kernel[t] = Storage<T>::load(filter[t * filter_stride]);
    weight[t] = taps.corner[filter_quadrant(t)];
  }
  for (int c = 0; c < channels; ++c) {
    const A g = Storage<T>::load(grad[c * plane + pixel]);
    A value[kFilterTaps], quadrant[4], gradient[kFilterTaps];
    window.load(c, value);
    filter_quadrant_sums(value, kernel, quadrant);
    grad_flow[0] += g * ((A(1) - taps.beta) * (quadrant[1] - quadrant[0]) + taps.beta * (quadrant[3] - quadrant[2]));
    grad_flow[1] += g * ((A(1) - taps.alpha) * (quadrant[2] - quadrant[0]) + taps.alpha * (quadrant[3] - quadrant[1]));
    for (int t = 0; t < kFilterTaps; ++t) {
      const A weighted = g * weight[t];
      grad_filters[t] += weighted * value[t];
      gradient[t] = weighted * kernel[t];
    }
    window.scatter(c, gradient);
  }
}

}  // namespace dainctl
