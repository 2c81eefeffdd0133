// CPU drivers (OpenMP) for the dainctl ops. Torch-free: contiguous NCHW raw pointers and sizes.
// Instantiated for float and double in cpu/drivers.cpp.
#pragma once

#include <stdint.h>

namespace dainctl {
namespace cpu {

// flow (B,2,H,W), weight (B,1,H,W) -> out (B,2,H,W); all of T.
template <typename T>
void depth_flow_projection(const T* flow, const T* weight, T* out, int64_t batch, int height, int width,
                           bool fill_holes);

// input (B,C,H,W), flow (B,2,H,W), filters (B,16,H,W) -> out (B,C,H,W); all of T.
template <typename T>
void filter_interpolation(const T* input, const T* flow, const T* filters, T* out, int64_t batch, int channels,
                          int height, int width);

// a, b (B,H,W,C) channels-last -> out (B,(2d+1)^2,H,W) contiguous; all of T.
template <typename T>
void correlation(const T* a, const T* b, T* out, int64_t batch, int channels, int height, int width,
                 int max_displacement);

// input (B,C,H,W), flow (B,2,H,W) -> out (B,C,H,W); all of T.
template <typename T>
void backward_warp(const T* input, const T* flow, T* out, int64_t batch, int channels, int height, int width);

// Bicubic warp: input (B,C,H,W), flow (B,2,H,W) -> out (B,C,H,W); all of T.
template <typename T>
void bicubic_warp(const T* input, const T* flow, T* out, int64_t batch, int channels, int height, int width);

// Backward of backward_warp: grad (B,C,H,W), input (B,C,H,W), flow (B,2,H,W) -> grad_input (B,C,H,W),
// grad_flow (B,2,H,W); all of T.
template <typename T>
void backward_warp_backward(const T* grad, const T* input, const T* flow, T* grad_input, T* grad_flow,
                            int64_t batch, int channels, int height, int width);

// Backward of filter_interpolation: grad, input (B,C,H,W), flow (B,2,H,W), filters (B,16,H,W) ->
// grad_input (B,C,H,W), grad_flow (B,2,H,W), grad_filters (B,16,H,W); all of T.
template <typename T>
void filter_interpolation_backward(const T* grad, const T* input, const T* flow, const T* filters, T* grad_input,
                                   T* grad_flow, T* grad_filters, int64_t batch, int channels, int height, int width);

// Backward of correlation: grad (B,(2d+1)^2,H,W) contiguous, a, b (B,H,W,C) channels-last -> grad_a,
// grad_b (B,H,W,C) channels-last.
template <typename T>
void correlation_backward(const T* grad, const T* a, const T* b, T* grad_a, T* grad_b, int64_t batch, int channels,
                          int height, int width, int max_displacement);

// Backward of depth_flow_projection: grad (B,2,H,W), flow (B,2,H,W), weight (B,1,H,W) -> grad_flow
// (B,2,H,W), grad_weight (B,1,H,W); all of T.
template <typename T>
void depth_flow_projection_backward(const T* grad, const T* flow, const T* weight, T* grad_flow, T* grad_weight,
                                    int64_t batch, int height, int width, bool fill_holes);

}  // namespace cpu
}  // namespace dainctl
