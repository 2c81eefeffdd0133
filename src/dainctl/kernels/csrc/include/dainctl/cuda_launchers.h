// CUDA drivers for the dainctl ops. Torch-free (compiled with plain nvcc): contiguous NCHW device
// pointers, sizes and a stream. Each returns the launch status (cudaGetLastError after its launches).
#pragma once

#include <cuda_runtime_api.h>
#include <stdint.h>

namespace dainctl {
namespace cuda {

// Element type of the image-like tensors (input, filters, a, b, out). Flows and weights are always float32.
enum class StorageType { kFloat32, kFloat16 };

// flow (B,2,H,W) float32, weight (B,1,H,W) float32 -> out (B,2,H,W) of out_type.
// scratch: float32 device buffer of 3*B*H*W elements (summed -w*fx, -w*fy, w); overwritten.
cudaError_t depth_flow_projection(const float* flow, const float* weight, void* out, StorageType out_type,
                                  float* scratch, int64_t batch, int height, int width, bool fill_holes,
                                  cudaStream_t stream);

// input (B,C,H,W), filters (B,16,H,W), out (B,C,H,W) of type; flow (B,2,H,W) float32.
cudaError_t filter_interpolation(const void* input, const float* flow, const void* filters, void* out,
                                 StorageType type, int64_t batch, int channels, int height, int width,
                                 cudaStream_t stream);

// a, b (B,C,H,W) -> out (B,(2d+1)^2,H,W), all of type.
cudaError_t correlation(const void* a, const void* b, void* out, StorageType type, int64_t batch, int channels,
                        int height, int width, int max_displacement, cudaStream_t stream);

// input (B,C,H,W), out (B,C,H,W) of type; flow (B,2,H,W) float32.
cudaError_t backward_warp(const void* input, const float* flow, void* out, StorageType type, int64_t batch,
                          int channels, int height, int width, cudaStream_t stream);

// Bicubic warp: input (B,C,H,W), out (B,C,H,W) of type; flow (B,2,H,W) float32.
cudaError_t bicubic_warp(const void* input, const float* flow, void* out, StorageType type, int64_t batch,
                         int channels, int height, int width, cudaStream_t stream);

// Backward of backward_warp: grad, input (B,C,H,W) of type, flow (B,2,H,W) float32 -> grad_input (B,C,H,W)
// float32 (zeroed here, then summed with atomics; the caller casts it), grad_flow (B,2,H,W) float32.
cudaError_t backward_warp_backward(const void* grad, const void* input, const float* flow, float* grad_input,
                                   float* grad_flow, StorageType type, int64_t batch, int channels, int height,
                                   int width, cudaStream_t stream);

// Backward of filter_interpolation: grad, input (B,C,H,W) and filters (B,16,H,W) of type, flow (B,2,H,W)
// float32 -> grad_input (B,C,H,W) float32 (zeroed here, summed with atomics), grad_flow (B,2,H,W) and
// grad_filters (B,16,H,W) float32; the caller casts them.
cudaError_t filter_interpolation_backward(const void* grad, const void* input, const float* flow, const void* filters,
                                          float* grad_input, float* grad_flow, float* grad_filters, StorageType type,
                                          int64_t batch, int channels, int height, int width, cudaStream_t stream);

// Backward of correlation: grad (B,(2d+1)^2,H,W), a, b (B,C,H,W) of type -> grad_a, grad_b (B,C,H,W)
// float32 (gathers: no atomics; the caller casts them).
cudaError_t correlation_backward(const void* grad, const void* a, const void* b, float* grad_a, float* grad_b,
                                 StorageType type, int64_t batch, int channels, int height, int width,
                                 int max_displacement, cudaStream_t stream);

// Backward of depth_flow_projection: grad, flow (B,2,H,W), weight (B,1,H,W), all float32 -> grad_flow
// (B,2,H,W), grad_weight (B,1,H,W) float32. scratch: float32 device buffer of 6*B*H*W elements.
cudaError_t depth_flow_projection_backward(const float* grad, const float* flow, const float* weight, float* grad_flow,
                                           float* grad_weight, float* scratch, int64_t batch, int height, int width,
                                           bool fill_holes, cudaStream_t stream);

}  // namespace cuda
}  // namespace dainctl
