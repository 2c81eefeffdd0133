// Correlation per-output math (semantics: dainctl/kernels/cost_volume.py).
#pragma once

#include "dainctl/common.h"

namespace dainctl {

// Mean over channels of a[:, y, x] * b[:, y + dy, x + dx]; zero when (y + dy, x + dx) is outside.
//   a, b: (channels, height, width) of T, one batch item.
template <typename T>
DAINCTL_HD typename Storage<T>::acc correlation_value(const T* a, const T* b, int channels, int height,
                                                      int width, int x, int y, int dx, int dy) {
  using A = typename Storage<T>::acc;
  const int other_x = x + dx;
  const int other_y = y + dy;
  if (other_x < 0 || other_x >= width || other_y < 0 || other_y >= height || channels == 0) return A(0);
  const int64_t plane = static_cast<int64_t>(height) * width;
  const T* first = a + static_cast<int64_t>(y) * width + x;
  const T* second = b + static_cast<int64_t>(other_y) * width + other_x;
  A total = 0;
  for (int c = 0; c < channels; ++c) total += Storage<T>::load(first[c * plane]) * Storage<T>::load(second[c * plane]);
  return total / static_cast<A>(channels);
}

}  // namespace dainctl
