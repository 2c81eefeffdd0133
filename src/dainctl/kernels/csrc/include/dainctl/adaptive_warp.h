// FilterInterpolation (adaptive warping) per-pixel math (semantics: dainctl/kernels/adaptive_warp.py).
#pragma once

#include "dainctl/common.h"

namespace dainctl {

constexpr int kFilterSize = 4;
constexpr int kFilterTaps = kFilterSize * kFilterSize;

// Output pixel (x, y) of one batch item, all channels.
//   image:   (channels, height, width) of T      flow:    (2, height, width) of A
//   filters: (16, height, width) of T            out:     (channels, height, width) of T
template <typename T, typename A>
DAINCTL_HD void filter_interpolation_pixel(const T* image, const A* flow, const T* filters, T* out,
                                           int channels, int height, int width, int x, int y) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int64_t pixel = static_cast<int64_t>(y) * width + x;
  const A fx = flow[pixel];
  const A fy = flow[plane + pixel];
  const A sample_x = static_cast<A>(x) + fx;
  const A sample_y = static_cast<A>(y) + fy;
  // Positive tests so NaN or infinite flow is invalid; invalid pixels copy the input through.
  const bool valid = sample_x >= A(0) && sample_x <= static_cast<A>(width - 1) && sample_y >= A(0) &&
                     sample_y <= static_cast<A>(height - 1) && abs_of(fx) < static_cast<A>(width) / A(2) &&
                     abs_of(fy) < static_cast<A>(height) / A(2);
  if (!valid) {
    for (int c = 0; c < channels; ++c) out[c * plane + pixel] = image[c * plane + pixel];
    return;
  }
  const int base_x = floor_nonnegative(sample_x);
  const int base_y = floor_nonnegative(sample_y);
  const A alpha = sample_x - static_cast<A>(base_x);
  const A beta = sample_y - static_cast<A>(base_y);
  const int window_x0 = base_x + 1 - kFilterSize / 2;
  const int window_y0 = base_y + 1 - kFilterSize / 2;

  // Tap offsets (reads clamped to the border) and kernel values, in row-major window order.
  int64_t tap_offset[kFilterTaps];
  A kernel[kFilterTaps];
  for (int a = 0; a < kFilterSize; ++a) {
    const int row = clamp_index(window_y0 + a, height - 1);
    for (int b = 0; b < kFilterSize; ++b) {
      const int col = clamp_index(window_x0 + b, width - 1);
      tap_offset[a * kFilterSize + b] = static_cast<int64_t>(row) * width + col;
      kernel[a * kFilterSize + b] = Storage<T>::load(filters[(a * kFilterSize + b) * plane + pixel]);
    }
  }
  const A weight_tl = (A(1) - alpha) * (A(1) - beta);
  const A weight_tr = alpha * (A(1) - beta);
  const A weight_bl = (A(1) - alpha) * beta;
  const A weight_br = alpha * beta;

  for (int c = 0; c < channels; ++c) {
    const T* channel = image + c * plane;
    // Each 2x2 quadrant is summed row by row, then weighted by its corner's bilinear weight.
    A quadrant[4];
    for (int q = 0; q < 4; ++q) {
      const int row0 = (q / 2) * 2;
      const int col0 = (q % 2) * 2;
      A total = 0;
      for (int a = row0; a < row0 + 2; ++a)
        for (int b = col0; b < col0 + 2; ++b)
          total += Storage<T>::load(channel[tap_offset[a * kFilterSize + b]]) * kernel[a * kFilterSize + b];
      quadrant[q] = total;
    }
    const A value = weight_tl * quadrant[0] + weight_tr * quadrant[1] + weight_bl * quadrant[2] +
                    weight_br * quadrant[3];
    out[c * plane + pixel] = Storage<T>::store(value);
  }
}

}  // namespace dainctl
