// Bilinear backward warp per-pixel math (semantics: dainctl/kernels/warp.py).
#pragma once

#include "dainctl/common.h"

namespace dainctl {

// Output pixel (x, y) of one batch item, all channels.
//   image: (channels, height, width) of T    flow: (2, height, width) of A    out: like image
template <typename T, typename A>
DAINCTL_HD void backward_warp_pixel(const T* image, const A* flow, T* out, int channels, int height, int width,
                                    int x, int y) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int64_t pixel = static_cast<int64_t>(y) * width + x;
  A fx = flow[pixel];
  A fy = flow[plane + pixel];
  // NaN displacement counts as none; infinities clamp to the border below.
  if (fx != fx) fx = A(0);
  if (fy != fy) fy = A(0);
  A sample_x = static_cast<A>(x) + fx;
  A sample_y = static_cast<A>(y) + fy;
  const A last_x = static_cast<A>(width - 1);
  const A last_y = static_cast<A>(height - 1);
  sample_x = sample_x < A(0) ? A(0) : (sample_x > last_x ? last_x : sample_x);
  sample_y = sample_y < A(0) ? A(0) : (sample_y > last_y ? last_y : sample_y);
  const int left = floor_nonnegative(sample_x);
  const int top = floor_nonnegative(sample_y);
  const A alpha = sample_x - static_cast<A>(left);
  const A beta = sample_y - static_cast<A>(top);
  const int right = left + 1 < width ? left + 1 : width - 1;
  const int bottom = top + 1 < height ? top + 1 : height - 1;
  const int64_t offset_tl = static_cast<int64_t>(top) * width + left;
  const int64_t offset_tr = static_cast<int64_t>(top) * width + right;
  const int64_t offset_bl = static_cast<int64_t>(bottom) * width + left;
  const int64_t offset_br = static_cast<int64_t>(bottom) * width + right;
  const A weight_tl = (A(1) - alpha) * (A(1) - beta);
  const A weight_tr = alpha * (A(1) - beta);
  const A weight_bl = (A(1) - alpha) * beta;
  const A weight_br = alpha * beta;
  for (int c = 0; c < channels; ++c) {
    const T* channel = image + c * plane;
    const A value = weight_tl * Storage<T>::load(channel[offset_tl]) +
                    weight_tr * Storage<T>::load(channel[offset_tr]) +
                    weight_bl * Storage<T>::load(channel[offset_bl]) +
                    weight_br * Storage<T>::load(channel[offset_br]);
    out[c * plane + pixel] = Storage<T>::store(value);
  }
}

}  // namespace dainctl
