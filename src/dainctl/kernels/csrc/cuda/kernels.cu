// CUDA drivers: one thread per pixel (grid-stride), calling the per-pixel math in include/dainctl.
// Torch-free so that `nvcc -c` checks it without a CUDA build of torch (scripts/compile_cuda.sh).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "dainctl/adaptive_warp.h"
#include "dainctl/backward_warp.h"
#include "dainctl/bicubic_warp.h"
#include "dainctl/cost_volume.h"
#include "dainctl/cuda_launchers.h"
#include "dainctl/projection.h"

namespace dainctl {
namespace cuda {

namespace {

constexpr int kThreads = 256;

inline unsigned int blocks_for(int64_t count) {
  // Grid-stride loops cover the rest; the cap keeps the grid size in range for any input.
  const int64_t blocks = (count + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(blocks < 65536 * 8 ? blocks : 65536 * 8);
}

#define DAINCTL_GRID_STRIDE_LOOP(index, count)                                                          \
  for (int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; index < (count);   \
       index += static_cast<int64_t>(blockDim.x) * gridDim.x)

// Every pixel of `batch` planes of `plane` pixels: `b` the batch item, `pixel` the offset in its plane.
#define DAINCTL_FOR_EACH_PIXEL(b, pixel, batch, plane)                                       \
  DAINCTL_GRID_STRIDE_LOOP(pixel##_index, (batch) * (plane))                                 \
  if (const int64_t b = pixel##_index / (plane), pixel = pixel##_index % (plane); true)

// ----------------------------------------------------------------------------------------------------
// DepthFlowProjection: splat (atomics into float32 sums), average in place, then fill holes.

__global__ void projection_splat_kernel(const float* flow, const float* weight, float* sums, int64_t batch,
                                        int height, int width) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  DAINCTL_FOR_EACH_PIXEL(b, pixel, batch, plane) {
    const int y = static_cast<int>(pixel / width);
    const int x = static_cast<int>(pixel % width);
    const float* flow_x = flow + b * 2 * plane;
    const ProjectionSplat<float> splat =
        projection_splat<float>(x, y, width, height, flow_x[pixel], flow_x[plane + pixel], weight[b * plane + pixel]);
    if (!splat.lands) continue;
    float* sum_x = sums + b * 3 * plane;
    float* sum_y = sum_x + plane;
    float* weight_sum = sum_y + plane;
    const int64_t targets[4] = {static_cast<int64_t>(splat.top) * width + splat.left,
                                static_cast<int64_t>(splat.top) * width + splat.right,
                                static_cast<int64_t>(splat.bottom) * width + splat.left,
                                static_cast<int64_t>(splat.bottom) * width + splat.right};
    for (int corner = 0; corner < 4; ++corner) {
      atomicAdd(sum_x + targets[corner], splat.neg_weighted_x);
      atomicAdd(sum_y + targets[corner], splat.neg_weighted_y);
      atomicAdd(weight_sum + targets[corner], splat.weight);
    }
  }
}

__global__ void projection_average_kernel(float* sums, int64_t batch, int64_t plane) {
  DAINCTL_GRID_STRIDE_LOOP(index, batch * plane) {
    float* sum_x = sums + (index / plane) * 3 * plane + index % plane;
    projection_average(sum_x[2 * plane], sum_x, sum_x + plane);
  }
}

// Reads the averaged sums only (never the output), so every pixel's result is independent of the
// order in which threads run.
template <typename T>
__global__ void projection_output_kernel(const float* sums, T* out, int64_t batch, int height, int width,
                                         bool fill_holes) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  DAINCTL_FOR_EACH_PIXEL(b, pixel, batch, plane) {
    const float* averaged_x = sums + b * 3 * plane;
    const float* averaged_y = averaged_x + plane;
    const float* weight_sum = averaged_y + plane;
    float value_x = averaged_x[pixel];
    float value_y = averaged_y[pixel];
    if (fill_holes && projection_is_hole(weight_sum[pixel])) {
      projection_fill_by_scan(averaged_x, averaged_y, weight_sum, height, width, static_cast<int>(pixel % width),
                              static_cast<int>(pixel / width), &value_x, &value_y);
    }
    out[b * 2 * plane + pixel] = Storage<T>::store(value_x);
    out[b * 2 * plane + plane + pixel] = Storage<T>::store(value_y);
  }
}

// ----------------------------------------------------------------------------------------------------
// Pixel-parallel ops: adaptive warp, backward warp, correlation.

template <typename T>
__global__ void filter_interpolation_kernel(const T* input, const float* flow, const T* filters, T* out,
                                            int64_t batch, int channels, int height, int width) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  DAINCTL_FOR_EACH_PIXEL(b, pixel, batch, plane) {
    filter_interpolation_pixel<T, float>(input + b * channels * plane, flow + b * 2 * plane,
                                         filters + b * kFilterTaps * plane, out + b * channels * plane, channels,
                                         height, width, static_cast<int>(pixel % width),
                                         static_cast<int>(pixel / width));
  }
}

template <typename T>
__global__ void backward_warp_kernel(const T* input, const float* flow, T* out, int64_t batch, int channels,
                                     int height, int width) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  DAINCTL_FOR_EACH_PIXEL(b, pixel, batch, plane) {
    backward_warp_pixel<T, float>(input + b * channels * plane, flow + b * 2 * plane, out + b * channels * plane,
                                  channels, height, width, static_cast<int>(pixel % width),
                                  static_cast<int>(pixel / width));
  }
}

template <typename T>
__global__ void bicubic_warp_kernel(const T* input, const float* flow, T* out, int64_t batch, int channels, int height,
                                    int width) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  DAINCTL_FOR_EACH_PIXEL(b, pixel, batch, plane) {
    bicubic_warp_pixel<T, float>(input + b * channels * plane, flow + b * 2 * plane, out + b * channels * plane,
                                 channels, height, width, static_cast<int>(pixel % width),
                                 static_cast<int>(pixel / width));
  }
}

// One thread per output element; neighbouring threads read neighbouring x, so loads coalesce.
template <typename T>
__global__ void correlation_kernel(const T* a, const T* b, T* out, int64_t batch, int channels, int height,
                                   int width, int max_displacement) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int side = 2 * max_displacement + 1;
  const int64_t displacements = static_cast<int64_t>(side) * side;
  DAINCTL_GRID_STRIDE_LOOP(index, batch * displacements * plane) {
    const int64_t pixel = index % plane;
    const int64_t d = (index / plane) % displacements;
    const int64_t item = index / (plane * displacements);
    const int dy = static_cast<int>(d / side) - max_displacement;
    const int dx = static_cast<int>(d % side) - max_displacement;
    out[index] = Storage<T>::store(correlation_value(a + item * channels * plane, b + item * channels * plane,
                                                     channels, height, width, 1, plane,
                                                     static_cast<int>(pixel % width),
                                                     static_cast<int>(pixel / width), dx, dy));
  }
}

}  // namespace

cudaError_t depth_flow_projection(const float* flow, const float* weight, void* out, StorageType out_type,
                                  float* scratch, int64_t batch, int height, int width, bool fill_holes,
                                  cudaStream_t stream) {
  const int64_t count = batch * static_cast<int64_t>(height) * width;
  if (count == 0) return cudaSuccess;
  cudaError_t status = cudaMemsetAsync(scratch, 0, sizeof(float) * 3 * count, stream);
  if (status != cudaSuccess) return status;
  projection_splat_kernel<<<blocks_for(count), kThreads, 0, stream>>>(flow, weight, scratch, batch, height, width);
  projection_average_kernel<<<blocks_for(count), kThreads, 0, stream>>>(scratch, batch,
                                                                        static_cast<int64_t>(height) * width);
  if (out_type == StorageType::kFloat16)
    projection_output_kernel<__half><<<blocks_for(count), kThreads, 0, stream>>>(
        scratch, static_cast<__half*>(out), batch, height, width, fill_holes);
  else
    projection_output_kernel<float><<<blocks_for(count), kThreads, 0, stream>>>(
        scratch, static_cast<float*>(out), batch, height, width, fill_holes);
  return cudaGetLastError();
}

cudaError_t filter_interpolation(const void* input, const float* flow, const void* filters, void* out,
                                 StorageType type, int64_t batch, int channels, int height, int width,
                                 cudaStream_t stream) {
  const int64_t count = batch * static_cast<int64_t>(height) * width;
  if (count == 0) return cudaSuccess;
  if (type == StorageType::kFloat16)
    filter_interpolation_kernel<__half><<<blocks_for(count), kThreads, 0, stream>>>(
        static_cast<const __half*>(input), flow, static_cast<const __half*>(filters), static_cast<__half*>(out),
        batch, channels, height, width);
  else
    filter_interpolation_kernel<float><<<blocks_for(count), kThreads, 0, stream>>>(
        static_cast<const float*>(input), flow, static_cast<const float*>(filters), static_cast<float*>(out), batch,
        channels, height, width);
  return cudaGetLastError();
}

cudaError_t correlation(const void* a, const void* b, void* out, StorageType type, int64_t batch, int channels,
                        int height, int width, int max_displacement, cudaStream_t stream) {
  const int64_t side = 2 * static_cast<int64_t>(max_displacement) + 1;
  const int64_t count = batch * side * side * height * width;
  if (count == 0) return cudaSuccess;
  if (type == StorageType::kFloat16)
    correlation_kernel<__half><<<blocks_for(count), kThreads, 0, stream>>>(
        static_cast<const __half*>(a), static_cast<const __half*>(b), static_cast<__half*>(out), batch, channels,
        height, width, max_displacement);
  else
    correlation_kernel<float><<<blocks_for(count), kThreads, 0, stream>>>(
        static_cast<const float*>(a), static_cast<const float*>(b), static_cast<float*>(out), batch, channels,
        height, width, max_displacement);
  return cudaGetLastError();
}

cudaError_t backward_warp(const void* input, const float* flow, void* out, StorageType type, int64_t batch,
                          int channels, int height, int width, cudaStream_t stream) {
  const int64_t count = batch * static_cast<int64_t>(height) * width;
  if (count == 0) return cudaSuccess;
  if (type == StorageType::kFloat16)
    backward_warp_kernel<__half><<<blocks_for(count), kThreads, 0, stream>>>(
        static_cast<const __half*>(input), flow, static_cast<__half*>(out), batch, channels, height, width);
  else
    backward_warp_kernel<float><<<blocks_for(count), kThreads, 0, stream>>>(
        static_cast<const float*>(input), flow, static_cast<float*>(out), batch, channels, height, width);
  return cudaGetLastError();
}

cudaError_t bicubic_warp(const void* input, const float* flow, void* out, StorageType type, int64_t batch,
                         int channels, int height, int width, cudaStream_t stream) {
  const int64_t count = batch * static_cast<int64_t>(height) * width;
  if (count == 0) return cudaSuccess;
  if (type == StorageType::kFloat16)
    bicubic_warp_kernel<__half><<<blocks_for(count), kThreads, 0, stream>>>(
        static_cast<const __half*>(input), flow, static_cast<__half*>(out), batch, channels, height, width);
  else
    bicubic_warp_kernel<float><<<blocks_for(count), kThreads, 0, stream>>>(
        static_cast<const float*>(input), flow, static_cast<float*>(out), batch, channels, height, width);
  return cudaGetLastError();
}

// ----------------------------------------------------------------------------------------------------
// Backward of backward_warp: the flow's gradient per pixel; the input's by atomics into float32.

template <typename T>
__global__ void backward_warp_flow_gradient_kernel(const T* grad, const T* input, const float* flow, float* grad_flow,
                                                   int64_t batch, int channels, int height, int width) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  DAINCTL_FOR_EACH_PIXEL(b, pixel, batch, plane) {
    float dx, dy;
    backward_warp_flow_gradient<T, float>(input + b * channels * plane, flow + b * 2 * plane,
                                          grad + b * channels * plane, channels, height, width,
                                          static_cast<int>(pixel % width), static_cast<int>(pixel / width), &dx, &dy);
    grad_flow[b * 2 * plane + pixel] = dx;
    grad_flow[(b * 2 + 1) * plane + pixel] = dy;
  }
}

template <typename T>
__global__ void backward_warp_input_gradient_kernel(const T* grad, const float* flow, float* grad_input,
                                                    int64_t batch, int channels, int height, int width) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  DAINCTL_FOR_EACH_PIXEL(b, pixel, batch, plane) {
    const float* flow_x = flow + b * 2 * plane;
    const WarpSample<float> sample = backward_warp_sample<float>(
        flow_x[pixel], flow_x[plane + pixel], static_cast<int>(pixel % width), static_cast<int>(pixel / width), height,
        width);
    float weights[4];
    backward_warp_tap_weights(sample, weights);
    for (int c = 0; c < channels; ++c) {
      const float g = Storage<T>::load(grad[(b * channels + c) * plane + pixel]);
      float* target = grad_input + (b * channels + c) * plane;
      atomicAdd(target + sample.top_left, weights[0] * g);
      atomicAdd(target + sample.top_right, weights[1] * g);
      atomicAdd(target + sample.bottom_left, weights[2] * g);
      atomicAdd(target + sample.bottom_right, weights[3] * g);
    }
  }
}

cudaError_t backward_warp_backward(const void* grad, const void* input, const float* flow, float* grad_input,
                                   float* grad_flow, StorageType type, int64_t batch, int channels, int height,
                                   int width, cudaStream_t stream) {
  const int64_t count = batch * static_cast<int64_t>(height) * width;
  cudaError_t status = cudaMemsetAsync(grad_input, 0, sizeof(float) * count * channels, stream);
  if (status != cudaSuccess || count == 0) return status;
  if (type == StorageType::kFloat16) {
    backward_warp_flow_gradient_kernel<__half><<<blocks_for(count), kThreads, 0, stream>>>(
        static_cast<const __half*>(grad), static_cast<const __half*>(input), flow, grad_flow, batch, channels, height,
        width);
    backward_warp_input_gradient_kernel<__half><<<blocks_for(count), kThreads, 0, stream>>>(
        static_cast<const __half*>(grad), flow, grad_input, batch, channels, height, width);
  } else {
    backward_warp_flow_gradient_kernel<float><<<blocks_for(count), kThreads, 0, stream>>>(
        static_cast<const float*>(grad), static_cast<const float*>(input), flow, grad_flow, batch, channels, height,
        width);
    backward_warp_input_gradient_kernel<float><<<blocks_for(count), kThreads, 0, stream>>>(
        static_cast<const float*>(grad), flow, grad_input, batch, channels, height, width);
  }
  return cudaGetLastError();
}

// ----------------------------------------------------------------------------------------------------
// Backward of filter_interpolation: every gradient of one pixel in one thread; the input's by atomics.

template <typename T>
__global__ void filter_interpolation_backward_kernel(const T* grad, const T* input, const float* flow,
                                                     const T* filters, float* grad_input, float* grad_flow,
                                                     float* grad_filters, int64_t batch, int channels, int height,
                                                     int width) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  DAINCTL_FOR_EACH_PIXEL(b, pixel, batch, plane) {
    const int x = static_cast<int>(pixel % width);
    const int y = static_cast<int>(pixel / width);
    const float* flow_b = flow + b * 2 * plane;
    const FilterTaps<float> taps =
        filter_interpolation_taps<float>(flow_b[pixel], flow_b[plane + pixel], x, y, height, width);
    float* target = grad_input + b * channels * plane;
    auto add = [target, plane](int c, int64_t offset, float value) { atomicAdd(target + c * plane + offset, value); };
    const FilterWindow<T, float, decltype(add)> window{input + b * channels * plane, plane, &taps, add};
    float flow_gradient[2];
    float filter_gradient[kFilterTaps];
    filter_interpolation_pixel_backward<T, float>(filters + b * kFilterTaps * plane + pixel, plane,
                                                  grad + b * channels * plane, taps, channels, plane, pixel, window,
                                                  flow_gradient, filter_gradient);
    for (int k = 0; k < 2; ++k) grad_flow[(b * 2 + k) * plane + pixel] = flow_gradient[k];
    for (int t = 0; t < kFilterTaps; ++t) grad_filters[(b * kFilterTaps + t) * plane + pixel] = filter_gradient[t];
  }
}

template <typename T>
void launch_filter_interpolation_backward(const void* grad, const void* input, const float* flow, const void* filters,
                                          float* grad_input, float* grad_flow, float* grad_filters, int64_t batch,
                                          int channels, int height, int width, int64_t count, cudaStream_t stream) {
  filter_interpolation_backward_kernel<T><<<blocks_for(count), kThreads, 0, stream>>>(
      static_cast<const T*>(grad), static_cast<const T*>(input), flow, static_cast<const T*>(filters), grad_input,
      grad_flow, grad_filters, batch, channels, height, width);
}

cudaError_t filter_interpolation_backward(const void* grad, const void* input, const float* flow, const void* filters,
                                          float* grad_input, float* grad_flow, float* grad_filters, StorageType type,
                                          int64_t batch, int channels, int height, int width, cudaStream_t stream) {
  const int64_t count = batch * static_cast<int64_t>(height) * width;
  cudaError_t status = cudaMemsetAsync(grad_input, 0, sizeof(float) * count * channels, stream);
  if (status != cudaSuccess || count == 0) return status;
  if (type == StorageType::kFloat16)
    launch_filter_interpolation_backward<__half>(grad, input, flow, filters, grad_input, grad_flow, grad_filters, batch,
                                                 channels, height, width, count, stream);
  else
    launch_filter_interpolation_backward<float>(grad, input, flow, filters, grad_input, grad_flow, grad_filters, batch,
                                                channels, height, width, count, stream);
  return cudaGetLastError();
}

// ----------------------------------------------------------------------------------------------------
// Backward of correlation: one thread per pixel (all its channels), gathering what it contributed to;
// neighbouring threads read neighbouring pixels of each channel plane.

template <typename T>
__global__ void correlation_backward_kernel(const T* grad, const T* a, const T* b, float* grad_a, float* grad_b,
                                            int64_t batch, int channels, int height, int width, int max_displacement) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int64_t displacements = static_cast<int64_t>(2 * max_displacement + 1) * (2 * max_displacement + 1);
  DAINCTL_GRID_STRIDE_LOOP(index, batch * plane) {
    const int64_t item = index / plane;
    const int64_t pixel = index % plane;
    const int x = static_cast<int>(pixel % width);
    const int y = static_cast<int>(pixel / width);
    const T* gradient = grad + item * displacements * plane;
    const int64_t offset = item * channels * plane;
    correlation_backward_pixel<T, float>(gradient, b + offset, grad_a + offset + pixel, plane, channels, height, width,
                                         1, plane, max_displacement, x, y, false);
    correlation_backward_pixel<T, float>(gradient, a + offset, grad_b + offset + pixel, plane, channels, height, width,
                                         1, plane, max_displacement, x, y, true);
  }
}

cudaError_t correlation_backward(const void* grad, const void* a, const void* b, float* grad_a, float* grad_b,
                                 StorageType type, int64_t batch, int channels, int height, int width,
                                 int max_displacement, cudaStream_t stream) {
  const int64_t count = batch * static_cast<int64_t>(height) * width;
  if (count == 0) return cudaSuccess;
  if (type == StorageType::kFloat16)
    correlation_backward_kernel<__half><<<blocks_for(count), kThreads, 0, stream>>>(
        static_cast<const __half*>(grad), static_cast<const __half*>(a), static_cast<const __half*>(b), grad_a, grad_b,
        batch, channels, height, width, max_displacement);
  else
    correlation_backward_kernel<float><<<blocks_for(count), kThreads, 0, stream>>>(
        static_cast<const float*>(grad), static_cast<const float*>(a), static_cast<const float*>(b), grad_a, grad_b,
        batch, channels, height, width, max_displacement);
  return cudaGetLastError();
}

// ----------------------------------------------------------------------------------------------------
// Backward of DepthFlowProjection: the forward's sums again, then the fill's, the average's and the
// splat's gradients (see projection.h), in float32.

__global__ void projection_fill_gradient_kernel(const float* sums, float* gradients, int64_t batch, int height,
                                                int width) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  DAINCTL_FOR_EACH_PIXEL(b, pixel, batch, plane) {
    const float* weight_sum = sums + b * 3 * plane + 2 * plane;
    if (!projection_is_hole(weight_sum[pixel])) continue;
    float* gx = gradients + b * 3 * plane;
    float* gy = gx + plane;
    const int x = static_cast<int>(pixel % width);
    const int y = static_cast<int>(pixel / width);
    int64_t sources[4];
    if (projection_fill_sources(weight_sum, height, width, x, y, sources) == 0) continue;
    // Sources are never holes: this hole's own gradient is not touched by any other thread.
    projection_fill_gradient(weight_sum, gx, gy, height, width, x, y, [gx, gy](int64_t source, float sx, float sy) {
      atomicAdd(gx + source, sx);
      atomicAdd(gy + source, sy);
    });
    gx[pixel] = 0.0f;
    gy[pixel] = 0.0f;
  }
}

__global__ void projection_average_gradient_kernel(const float* sums, float* gradients, int64_t batch, int64_t plane) {
  DAINCTL_GRID_STRIDE_LOOP(index, batch * plane) {
    const float* averaged_x = sums + (index / plane) * 3 * plane + index % plane;
    float* gx = gradients + (index / plane) * 3 * plane + index % plane;
    projection_average_gradient(averaged_x[2 * plane], averaged_x[0], averaged_x[plane], gx, gx + plane, gx + 2 * plane);
  }
}

__global__ void projection_source_gradient_kernel(const float* flow, const float* weight, const float* gradients,
                                                  float* grad_flow, float* grad_weight, int64_t batch, int height,
                                                  int width) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  DAINCTL_FOR_EACH_PIXEL(b, pixel, batch, plane) {
    const float* gx = gradients + b * 3 * plane;
    projection_source_gradient<float>(static_cast<int>(pixel % width), static_cast<int>(pixel / width), width, height,
                                      flow[b * 2 * plane + pixel], flow[b * 2 * plane + plane + pixel],
                                      weight[b * plane + pixel], gx, gx + plane, gx + 2 * plane,
                                      grad_flow + b * 2 * plane + pixel, grad_flow + b * 2 * plane + plane + pixel,
                                      grad_weight + b * plane + pixel);
  }
}

__global__ void projection_copy_gradient_kernel(const float* grad, float* gradients, int64_t batch, int64_t plane) {
  DAINCTL_FOR_EACH_PIXEL(b, pixel, batch, plane) {
    gradients[b * 3 * plane + pixel] = grad[b * 2 * plane + pixel];
    gradients[b * 3 * plane + plane + pixel] = grad[b * 2 * plane + plane + pixel];
  }
}

cudaError_t depth_flow_projection_backward(const float* grad, const float* flow, const float* weight, float* grad_flow,
                                           float* grad_weight, float* scratch, int64_t batch, int height, int width,
                                           bool fill_holes, cudaStream_t stream) {
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int64_t count = batch * plane;
  if (count == 0) return cudaSuccess;
  float* sums = scratch;
  float* gradients = scratch + 3 * count;
  cudaError_t status = cudaMemsetAsync(sums, 0, sizeof(float) * 3 * count, stream);
  if (status != cudaSuccess) return status;
  projection_splat_kernel<<<blocks_for(count), kThreads, 0, stream>>>(flow, weight, sums, batch, height, width);
  projection_average_kernel<<<blocks_for(count), kThreads, 0, stream>>>(sums, batch, plane);
  projection_copy_gradient_kernel<<<blocks_for(count), kThreads, 0, stream>>>(grad, gradients, batch, plane);
  if (fill_holes)
    projection_fill_gradient_kernel<<<blocks_for(count), kThreads, 0, stream>>>(sums, gradients, batch, height, width);
  projection_average_gradient_kernel<<<blocks_for(count), kThreads, 0, stream>>>(sums, gradients, batch, plane);
  projection_source_gradient_kernel<<<blocks_for(count), kThreads, 0, stream>>>(flow, weight, gradients, grad_flow,
                                                                               grad_weight, batch, height, width);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace dainctl
