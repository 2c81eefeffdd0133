// Bicubic backward warp per-pixel math (semantics: dainctl/kernels/warp.py, `bicubic_warp`).
#pragma once

#include "dainctl/common.h"

namespace dainctl {

// Keys' cubic convolution with a = -0.5 (Catmull-Rom): the weights of the taps at -1, 0, 1, 2 from the
// sample point's fractional position f in [0, 1). They sum to 1 for every f, f = 0 gives (0, 1, 0, 0)
// (integer displacements copy pixels), and with a = -0.5 the read is exact on quadratics (Keys 1981:
// third-order accurate; OpenCV's and PyTorch's a = -0.75 sharpen more and reproduce only constants).
// On the shared triplets and clips a = -0.5 measured 35.41 / 34.33 dB (balanced, Middlebury / UCF101)
// against 35.54 / 34.30, and better on 4 of 5 real clips with large motion (docs/benchmarks.md).
template <typename A>
DAINCTL_HD A cubic_a() { return A(-0.5); }

template <typename A>
DAINCTL_HD void cubic_weights(A f, A w[4]) {
  const A a = cubic_a<A>();
  const A far = f + A(1);   // distance to the tap at -1, in [1, 2)
  const A near = A(1) - f;  // distance to the tap at +1, in (0, 1]
  const A farther = A(2) - f;
  w[0] = ((a * far - A(5) * a) * far + A(8) * a) * far - A(4) * a;
  w[1] = ((a + A(2)) * f - (a + A(3))) * f * f + A(1);
  w[2] = ((a + A(2)) * near - (a + A(3))) * near * near + A(1);
  w[3] = ((a * farther - A(5) * a) * farther + A(8) * a) * farther - A(4) * a;
}

// Where output pixel (x, y) reads: the 4x4 taps around its clamped sample point, from column left-1
// and row top-1 on (each tap clamped to the plane: replicate borders), and their weights per axis.
template <typename A>
struct CubicSample {
  int left, top;
  A wx[4], wy[4];
};

template <typename A>
DAINCTL_HD CubicSample<A> bicubic_warp_sample(A fx, A fy, int x, int y, int height, int width) {
  const SamplePoint<A> point = warp_sample_point(fx, fy, x, y, height, width);  // as the bilinear warp's
  CubicSample<A> sample;
  sample.left = floor_nonnegative(point.x);
  sample.top = floor_nonnegative(point.y);
  cubic_weights(point.x - static_cast<A>(sample.left), sample.wx);
  cubic_weights(point.y - static_cast<A>(sample.top), sample.wy);
  return sample;
}

// Whether all 16 taps lie inside the plane (none clamped): then they are four runs of four
// neighbouring pixels, the first at (top - 1) * width + left - 1.
template <typename A>
DAINCTL_HD bool bicubic_warp_inside(const CubicSample<A>& sample, int height, int width) {
  return (sample.left >= 1) & (sample.left + 2 < width) & (sample.top >= 1) & (sample.top + 2 < height);
}

// The bicubic value of one channel, (height, width) of T, at `sample`: each tap row interpolated
// along x, then the four rows along y, in A.
template <typename T, typename A>
DAINCTL_HD T bicubic_warp_blend(const T* channel, const CubicSample<A>& sample, int height, int width) {
  int cols[4];
  for (int k = 0; k < 4; ++k) cols[k] = clamp_index(sample.left - 1 + k, width - 1);
  A value = A(0);
  for (int i = 0; i < 4; ++i) {
    const T* row = channel + static_cast<int64_t>(clamp_index(sample.top - 1 + i, height - 1)) * width;
    const A across = sample.wx[0] * Storage<T>::load(row[cols[0]]) + sample.wx[1] * Storage<T>::load(row[cols[1]]) +
                     sample.wx[2] * Storage<T>::load(row[cols[2]]) + sample.wx[3] * Storage<T>::load(row[cols[3]]);
    value += sample.wy[i] * across;
  }
  return Storage<T>::store(value);
}

// Output pixel (x, y) of one batch item, all channels.
//   image: (channels, height, width) of T    flow: (2, height, width) of A    out: like image
// Plane offsets are int: the drivers check that H*W fits.
template <typename T, typename A>
DAINCTL_HD void bicubic_warp_pixel(const T* image, const A* flow, T* out, int channels, int height, int width, int x,
                                   int y) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int pixel = y * width + x;
  const CubicSample<A> sample = bicubic_warp_sample(flow[pixel], flow[plane + pixel], x, y, height, width);
  for (int c = 0; c < channels; ++c)
    out[c * plane + pixel] = bicubic_warp_blend(image + c * plane, sample, height, width);
}

}  // namespace dainctl
