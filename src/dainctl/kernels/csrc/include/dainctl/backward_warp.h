// Bilinear backward warp per-pixel math (semantics: dainctl/kernels/warp.py).
#pragma once

#include "dainctl/common.h"

namespace dainctl {

// Where output pixel (x, y) reads: the four neighbours of its clamped sample point (offsets within
// a (height, width) plane) and the sample point's fractional position between them.
template <typename A>
struct WarpSample {
  int top_left, top_right, bottom_left, bottom_right;
  A alpha, beta;
};

// Branch-free, so the CPU driver's loop over a row vectorises.
template <typename A>
DAINCTL_HD WarpSample<A> backward_warp_sample(A fx, A fy, int x, int y, int height, int width) {
  // NaN displacement counts as none; infinities clamp to the border below.
  fx = fx == fx ? fx : A(0);
  fy = fy == fy ? fy : A(0);
  A sample_x = static_cast<A>(x) + fx;
  A sample_y = static_cast<A>(y) + fy;
  const A last_x = static_cast<A>(width - 1);
  const A last_y = static_cast<A>(height - 1);
  sample_x = sample_x > A(0) ? sample_x : A(0);
  sample_x = sample_x < last_x ? sample_x : last_x;
  sample_y = sample_y > A(0) ? sample_y : A(0);
  sample_y = sample_y < last_y ? sample_y : last_y;
  const int left = floor_nonnegative(sample_x);
  const int top = floor_nonnegative(sample_y);
  const int right = left + 1 < width ? left + 1 : width - 1;
  const int bottom = top + 1 < height ? top + 1 : height - 1;
  WarpSample<A> sample;
  sample.top_left = top * width + left;
  sample.top_right = top * width + right;
  sample.bottom_left = bottom * width + left;
  sample.bottom_right = bottom * width + right;
  sample.alpha = sample_x - static_cast<A>(left);
  sample.beta = sample_y - static_cast<A>(top);
  return sample;
}

// The bilinear blend of one channel, (height, width) of T, at `sample`.
template <typename T, typename A>
DAINCTL_HD T backward_warp_blend(const T* channel, const WarpSample<A>& sample) {
  const A alpha = sample.alpha;
  const A beta = sample.beta;
  const A value = (A(1) - alpha) * (A(1) - beta) * Storage<T>::load(channel[sample.top_left]) +
                  alpha * (A(1) - beta) * Storage<T>::load(channel[sample.top_right]) +
                  (A(1) - alpha) * beta * Storage<T>::load(channel[sample.bottom_left]) +
                  alpha * beta * Storage<T>::load(channel[sample.bottom_right]);
  return Storage<T>::store(value);
}

// Output pixel (x, y) of one batch item, all channels.
//   image: (channels, height, width) of T    flow: (2, height, width) of A    out: like image
// Plane offsets are int: the drivers check that H*W fits.
template <typename T, typename A>
DAINCTL_HD void backward_warp_pixel(const T* image, const A* flow, T* out, int channels, int height, int width,
                                    int x, int y) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int pixel = y * width + x;
  const WarpSample<A> sample = backward_warp_sample(flow[pixel], flow[plane + pixel], x, y, height, width);
  for (int c = 0; c < channels; ++c) out[c * plane + pixel] = backward_warp_blend(image + c * plane, sample);
}

}  // namespace dainctl
