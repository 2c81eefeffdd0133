// Correlation per-output math (semantics: dainctl/kernels/cost_volume.py).
#pragma once

#include "dainctl/common.h"

namespace dainctl {

// Mean over channels of a[:, y, x] * b[:, y + dy, x + dx]; zero when (y + dy, x + dx) is outside.
//   a, b: one batch item of (height, width) pixels by `channels` channels, at element offset
//   (y * width + x) * pixel_stride + c * channel_stride: NCHW is (pixel 1, channel H*W), the CUDA
//   driver's layout (neighbouring threads read neighbouring pixels); NHWC is (pixel C, channel 1), the
//   CPU driver's (one pixel's channels are contiguous).
template <typename T>
DAINCTL_HD typename Storage<T>::acc correlation_value(const T* a, const T* b, int channels, int height, int width,
                                                      int64_t pixel_stride, int64_t channel_stride, int x, int y,
                                                      int dx, int dy) {
  using A = typename Storage<T>::acc;
  const int other_x = x + dx;
  const int other_y = y + dy;
  if (other_x < 0 || other_x >= width || other_y < 0 || other_y >= height || channels == 0) return A(0);
  const T* first = a + (static_cast<int64_t>(y) * width + x) * pixel_stride;
  const T* second = b + (static_cast<int64_t>(other_y) * width + other_x) * pixel_stride;
  // Four interleaved partial sums: independent chains run several times faster than one, and the
  // CPU and CUDA drivers share this order, so they agree to the last bit.
  A partial[4] = {A(0), A(0), A(0), A(0)};
  int c = 0;
  for (; c + 4 <= channels; c += 4) {
    for (int lane = 0; lane < 4; ++lane) {
      const int64_t offset = (c + lane) * channel_stride;
      partial[lane] += Storage<T>::load(first[offset]) * Storage<T>::load(second[offset]);
    }
  }
  for (; c < channels; ++c)
    partial[0] += Storage<T>::load(first[c * channel_stride]) * Storage<T>::load(second[c * channel_stride]);
  return ((partial[0] + partial[1]) + (partial[2] + partial[3])) / static_cast<A>(channels);
}

// ---- backward. Both gradients are gathers (each element reads what it contributed to), so no two
// threads ever write one element.
//
// All channels of one pixel (x, y) of one batch item: out[c * out_stride] =
//   first  (grad of a): sum over d of grad[d, y, x]           * b[c, y + dy, x + dx]           / channels
//   second (grad of b): sum over d of grad[d, y - dy, x - dx] * a[c, y - dy, x - dx]           / channels
// grad: (2d+1)^2 planes of (height, width); features (b for `first`, a for `second`) at element offset
// pixel * pixel_stride + c * channel_stride as in `correlation_value`; out: accumulators of type A.
template <typename T, typename A>
DAINCTL_HD void correlation_backward_pixel(const T* grad, const T* features, A* out, int64_t out_stride, int channels,
                                           int height, int width, int64_t pixel_stride, int64_t channel_stride,
                                           int max_displacement, int x, int y, bool second) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int side = 2 * max_displacement + 1;
  for (int c = 0; c < channels; ++c) out[c * out_stride] = A(0);
  for (int d = 0; d < side * side; ++d) {
    const int dx = d % side - max_displacement;
    const int dy = d / side - max_displacement;
    const int other_x = second ? x - dx : x + dx;
    const int other_y = second ? y - dy : y + dy;
    if (other_x < 0 || other_x >= width || other_y < 0 || other_y >= height) continue;
    const int64_t other = static_cast<int64_t>(other_y) * width + other_x;
    const A g = Storage<T>::load(grad[d * plane + (second ? other : static_cast<int64_t>(y) * width + x)]);
    const T* source = features + other * pixel_stride;
    if (out_stride == 1 && channel_stride == 1) {  // channels-last (the CPU's): unit strides vectorise
      DAINCTL_SIMD
      for (int c = 0; c < channels; ++c) out[c] += g * Storage<T>::load(source[c]);
    } else {
      for (int c = 0; c < channels; ++c) out[c * out_stride] += g * Storage<T>::load(source[c * channel_stride]);
    }
  }
  const A scale = A(1) / static_cast<A>(channels);
  for (int c = 0; c < channels; ++c) out[c * out_stride] *= scale;
}

}  // namespace dainctl
