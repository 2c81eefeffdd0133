// Shared helpers for the per-pixel math: compiled by a C++ compiler (CPU driver) and by nvcc (CUDA
// driver). Torch-free on purpose: everything here works on raw pointers and sizes.
#pragma once

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define DAINCTL_HD __host__ __device__ __forceinline__
#define DAINCTL_SIMD
#else
#define DAINCTL_HD inline
// The next loop's iterations are independent (no aliasing between what it reads and writes): vectorise.
#define DAINCTL_SIMD _Pragma("omp simd")
#endif

namespace dainctl {

// How a stored element type is read into, and written from, the type arithmetic runs in.
// Precision contract: half is only a storage format; coordinates, weights and sums are float32
// (float64 when the data itself is float64).
template <typename T>
struct Storage {
  using acc = float;
  static DAINCTL_HD acc load(T value) { return static_cast<acc>(value); }
  static DAINCTL_HD T store(acc value) { return static_cast<T>(value); }
};

template <>
struct Storage<double> {
  using acc = double;
  static DAINCTL_HD double load(double value) { return value; }
  static DAINCTL_HD double store(double value) { return value; }
};

#if defined(__CUDACC__)
template <>
struct Storage<__half> {
  using acc = float;
  static DAINCTL_HD float load(__half value) { return __half2float(value); }
  static DAINCTL_HD __half store(float value) { return __float2half_rn(value); }
};
#endif

// floor() of a coordinate already known to lie in [0, INT_MAX]: truncation, without a libm call
// (which the baseline x86-64 target cannot inline). NaN never gets here: callers test ranges first.
template <typename A>
DAINCTL_HD int floor_nonnegative(A value) { return static_cast<int>(value); }
DAINCTL_HD float abs_of(float value) { return fabsf(value); }
DAINCTL_HD double abs_of(double value) { return fabs(value); }

DAINCTL_HD int clamp_index(int index, int last) { return index < 0 ? 0 : (index > last ? last : index); }

// Where output pixel (x, y) of a backward warp reads: (x + fx, y + fy), a NaN displacement counting as
// none, clamped to [0, width-1] x [0, height-1] (infinities clamp to the border). Branch-free, so the
// CPU drivers' loops over a row vectorise. The bilinear and the bicubic warp share it.
template <typename A>
struct SamplePoint {
  A x, y;
};

template <typename A>
DAINCTL_HD SamplePoint<A> warp_sample_point(A fx, A fy, int x, int y, int height, int width) {
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
  return SamplePoint<A>{sample_x, sample_y};
}

}  // namespace dainctl
