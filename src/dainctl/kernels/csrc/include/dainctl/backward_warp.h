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
  const SamplePoint<A> point = warp_sample_point(fx, fy, x, y, height, width);
  const A sample_x = point.x;
  const A sample_y = point.y;
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

// ---- backward: the derivative of the forward above, with the floor() held constant (as autograd of
// the reference twin takes it).

// The clamp's gradient mask on one axis: 1 where position + f lies in [0, size-1] (bounds included, as
// torch.clamp's backward) and f is finite (a NaN displacement counts as none and passes no gradient).
template <typename A>
DAINCTL_HD A backward_warp_pass(A f, int position, int size) {
  // `&` rather than `&&`: without branches, so the CPU driver's loop over a row's masks vectorises.
  const bool finite = (f == f) & (f - f == A(0));
  const A s = static_cast<A>(position) + f;
  return finite & (s >= A(0)) & (s <= static_cast<A>(size - 1)) ? A(1) : A(0);
}

// The bilinear weights of the four taps (top-left, top-right, bottom-left, bottom-right) at `sample`:
// an output pixel's gradient g adds g * weight to each tap of the input's gradient.
template <typename A>
DAINCTL_HD void backward_warp_tap_weights(const WarpSample<A>& sample, A weights[4]) {
  weights[0] = (A(1) - sample.alpha) * (A(1) - sample.beta);
  weights[1] = sample.alpha * (A(1) - sample.beta);
  weights[2] = (A(1) - sample.alpha) * sample.beta;
  weights[3] = sample.alpha * sample.beta;
}

// One channel's part of d(out)/d(sample point) times g, added to (*dx, *dy):
//   dx += g [(1-beta)(TR-TL) + beta(BR-BL)],  dy += g [(1-alpha)(BL-TL) + alpha(BR-TR)].
template <typename T, typename A>
DAINCTL_HD void backward_warp_add_sample_gradient(const T* channel, const WarpSample<A>& sample, A g, A* dx, A* dy) {
  const A tl = Storage<T>::load(channel[sample.top_left]);
  const A tr = Storage<T>::load(channel[sample.top_right]);
  const A bl = Storage<T>::load(channel[sample.bottom_left]);
  const A br = Storage<T>::load(channel[sample.bottom_right]);
  *dx += g * ((A(1) - sample.beta) * (tr - tl) + sample.beta * (br - bl));
  *dy += g * ((A(1) - sample.alpha) * (bl - tl) + sample.alpha * (br - tr));
}

// The flow's gradient at one output pixel of one batch item, summed over channels, from its sample and
// the clamp masks of its two flow components.
//   image, grad: (channels, plane) of T
template <typename T, typename A>
DAINCTL_HD void backward_warp_flow_gradient_at(const T* image, const T* grad, const WarpSample<A>& sample, A pass_x,
                                               A pass_y, int channels, int64_t plane, int64_t pixel, A* grad_x,
                                               A* grad_y) {
  A dx = 0, dy = 0;
  for (int c = 0; c < channels; ++c)
    backward_warp_add_sample_gradient(image + c * plane, sample, Storage<T>::load(grad[c * plane + pixel]), &dx, &dy);
  *grad_x = dx * pass_x;
  *grad_y = dy * pass_y;
}

// The same at output pixel (x, y), sample and masks computed here.
//   image, grad: (channels, height, width) of T    flow: (2, height, width) of A
template <typename T, typename A>
DAINCTL_HD void backward_warp_flow_gradient(const T* image, const A* flow, const T* grad, int channels, int height,
                                            int width, int x, int y, A* grad_x, A* grad_y) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int pixel = y * width + x;
  const A fx = flow[pixel];
  const A fy = flow[plane + pixel];
  const WarpSample<A> sample = backward_warp_sample(fx, fy, x, y, height, width);
  backward_warp_flow_gradient_at(image, grad, sample, backward_warp_pass(fx, x, width), backward_warp_pass(fy, y, height),
                                 channels, plane, pixel, grad_x, grad_y);
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
