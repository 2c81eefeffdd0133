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
// Channels [c0, c0 + Count) of one pixel, as correlation_backward_pixel: the Count sums stay in
// registers over all displacements (summing into `out` would take every displacement's add through
// memory), and the displacements are walked row by row (no division per displacement).
template <int Count, typename T, typename A>
DAINCTL_HD void correlation_backward_block(const T* grad, const T* features, A* out, int64_t out_stride, int c0,
                                           int channels, int height, int width, int64_t pixel_stride,
                                           int64_t channel_stride, int max_displacement, int x, int y, bool second) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int side = 2 * max_displacement + 1;
  const int64_t pixel = static_cast<int64_t>(y) * width + x;
  A sum[Count];
  for (int i = 0; i < Count; ++i) sum[i] = A(0);
  for (int dy = -max_displacement; dy <= max_displacement; ++dy) {
    const int other_y = second ? y - dy : y + dy;
    if (other_y < 0 || other_y >= height) continue;
    for (int dx = -max_displacement; dx <= max_displacement; ++dx) {
      const int other_x = second ? x - dx : x + dx;
      if (other_x < 0 || other_x >= width) continue;
      const int64_t d = static_cast<int64_t>(dy + max_displacement) * side + (dx + max_displacement);
      const int64_t other = static_cast<int64_t>(other_y) * width + other_x;
      const A g = Storage<T>::load(grad[d * plane + (second ? other : pixel)]);
      const T* source = features + other * pixel_stride + c0 * channel_stride;
      if (channel_stride == 1) {  // channels-last (the CPU's): unit strides vectorise
        for (int i = 0; i < Count; ++i) sum[i] += g * Storage<T>::load(source[i]);
      } else {
        for (int i = 0; i < Count; ++i) sum[i] += g * Storage<T>::load(source[i * channel_stride]);
      }
    }
  }
  const A scale = A(1) / static_cast<A>(channels);
  for (int i = 0; i < Count; ++i) out[(c0 + i) * out_stride] = sum[i] * scale;
}

template <typename T, typename A>
DAINCTL_HD void correlation_backward_pixel(const T* grad, const T* features, A* out, int64_t out_stride, int channels,
                                           int height, int width, int64_t pixel_stride, int64_t channel_stride,
                                           int max_displacement, int x, int y, bool second) {
  // Blocks of 32 channels, then of 8, then one by one; each channel sums in displacement order.
  int c0 = 0;
  for (; c0 + 32 <= channels; c0 += 32)
    correlation_backward_block<32>(grad, features, out, out_stride, c0, channels, height, width, pixel_stride,
                                   channel_stride, max_displacement, x, y, second);
  for (; c0 + 8 <= channels; c0 += 8)
    correlation_backward_block<8>(grad, features, out, out_stride, c0, channels, height, width, pixel_stride,
                                  channel_stride, max_displacement, x, y, second);
  for (; c0 < channels; ++c0)
    correlation_backward_block<1>(grad, features, out, out_stride, c0, channels, height, width, pixel_stride,
                                  channel_stride, max_displacement, x, y, second);
}

}  // namespace dainctl
