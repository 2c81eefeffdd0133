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

// ---- backward, NCHW planes of one batch item (plane = height * width). Both gradients are gathers (each
// element reads what it contributed to), so no two threads ever write one element.

// d(loss)/d(a[c, y, x]) = sum over displacements of grad[d, y, x] * b[c, y + dy, x + dx] / channels.
template <typename T>
DAINCTL_HD typename Storage<T>::acc correlation_grad_first(const T* grad, const T* b, int channels, int height, int width,
                                                           int max_displacement, int c, int x, int y) {
  using A = typename Storage<T>::acc;
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int side = 2 * max_displacement + 1;
  const int64_t pixel = static_cast<int64_t>(y) * width + x;
  A total = 0;
  for (int d = 0; d < side * side; ++d) {
    const int other_x = x + d % side - max_displacement;
    const int other_y = y + d / side - max_displacement;
    if (other_x < 0 || other_x >= width || other_y < 0 || other_y >= height) continue;
    total += Storage<T>::load(grad[d * plane + pixel]) *
             Storage<T>::load(b[c * plane + static_cast<int64_t>(other_y) * width + other_x]);
  }
  return total / static_cast<A>(channels);
}

// d(loss)/d(b[c, y, x]) = sum over displacements of grad[d, y - dy, x - dx] * a[c, y - dy, x - dx] / channels.
template <typename T>
DAINCTL_HD typename Storage<T>::acc correlation_grad_second(const T* grad, const T* a, int channels, int height,
                                                            int width, int max_displacement, int c, int x, int y) {
  using A = typename Storage<T>::acc;
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int side = 2 * max_displacement + 1;
  A total = 0;
  for (int d = 0; d < side * side; ++d) {
    const int source_x = x - (d % side - max_displacement);
    const int source_y = y - (d / side - max_displacement);
    if (source_x < 0 || source_x >= width || source_y < 0 || source_y >= height) continue;
    const int64_t source = static_cast<int64_t>(source_y) * width + source_x;
    total += Storage<T>::load(grad[d * plane + source]) * Storage<T>::load(a[c * plane + source]);
  }
  return total / static_cast<A>(channels);
}

}  // namespace dainctl
