// CUDA implementations of the dainctl ops (glue between torch and cuda/kernels.cu). Compiled only where
// torch itself was built with CUDA.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <tuple>

#include "checks.h"
#include "dainctl/cuda_launchers.h"

namespace dainctl {
namespace {

cuda::StorageType storage_type(const at::Tensor& tensor, const char* name) {
  TORCH_CHECK(tensor.scalar_type() == at::kFloat || tensor.scalar_type() == at::kHalf, name,
              " must be float32 or float16 on CUDA, got ", tensor.scalar_type());
  return tensor.scalar_type() == at::kHalf ? cuda::StorageType::kFloat16 : cuda::StorageType::kFloat32;
}

void check_launch(cudaError_t status, const char* op) {
  TORCH_CHECK(status == cudaSuccess, op, " CUDA launch failed: ", cudaGetErrorString(status));
}

at::Tensor depth_flow_projection_cuda(const at::Tensor& flow, const at::Tensor& weight, bool fill_holes) {
  // Validate arguments.
  check_projection_args(flow, weight);
  const cuda::StorageType out_type = storage_type(flow, "flow");
  const c10::cuda::CUDAGuard device_guard(flow.device());
  // Coordinates and accumulators are float32 whatever the storage type.
  const at::Tensor flow_f = flow.to(at::kFloat).contiguous();
  const at::Tensor weight_f = weight.to(at::kFloat).contiguous();
  // Create output and scratch tensors.
  at::Tensor out = at::empty(flow.sizes(), flow.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  at::Tensor sums = at::empty({flow.size(0), 3, flow.size(2), flow.size(3)}, flow_f.options());
  // Launch on the current stream.
  check_launch(cuda::depth_flow_projection(flow_f.data_ptr<float>(), weight_f.data_ptr<float>(), out.data_ptr(),
                                           out_type, sums.data_ptr<float>(), flow.size(0), flow.size(2),
                                           flow.size(3), fill_holes, c10::cuda::getCurrentCUDAStream()),
               "depth_flow_projection");
  return out;
}

at::Tensor filter_interpolation_cuda(const at::Tensor& input, const at::Tensor& flow, const at::Tensor& filters) {
  check_filter_args(input, flow, filters);
  const cuda::StorageType type = storage_type(input, "input");
  const c10::cuda::CUDAGuard device_guard(input.device());
  const at::Tensor input_c = input.contiguous();
  const at::Tensor flow_f = flow.to(at::kFloat).contiguous();
  const at::Tensor filters_c = filters.to(input.scalar_type()).contiguous();
  at::Tensor out = at::empty(input.sizes(), input.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  check_launch(cuda::filter_interpolation(input_c.data_ptr(), flow_f.data_ptr<float>(), filters_c.data_ptr(),
                                          out.data_ptr(), type, input.size(0), input.size(1), input.size(2),
                                          input.size(3), c10::cuda::getCurrentCUDAStream()),
               "filter_interpolation");
  return out;
}

at::Tensor correlation_cuda(const at::Tensor& a, const at::Tensor& b, int64_t max_displacement) {
  const int64_t displacements = check_correlation_args(a, b, max_displacement);
  const cuda::StorageType type = storage_type(a, "a");
  const c10::cuda::CUDAGuard device_guard(a.device());
  const at::Tensor a_c = a.contiguous();
  const at::Tensor b_c = b.contiguous();
  at::Tensor out = at::empty({a.size(0), displacements, a.size(2), a.size(3)}, a.options());
  if (out.numel() == 0) return out;
  check_launch(cuda::correlation(a_c.data_ptr(), b_c.data_ptr(), out.data_ptr(), type, a.size(0), a.size(1),
                                 a.size(2), a.size(3), static_cast<int>(max_displacement),
                                 c10::cuda::getCurrentCUDAStream()),
               "correlation");
  return out;
}

// The two warps' forward glue: `launch(input, flow, out, type)` launches the kernel on the current stream.
template <typename Launch>
at::Tensor warp_forward_cuda(const at::Tensor& input, const at::Tensor& flow, const char* name, Launch launch) {
  check_warp_args(input, flow);
  const cuda::StorageType type = storage_type(input, "input");
  const c10::cuda::CUDAGuard device_guard(input.device());
  const at::Tensor input_c = input.contiguous();
  const at::Tensor flow_f = flow.to(at::kFloat).contiguous();
  at::Tensor out = at::empty(input.sizes(), input.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  check_launch(launch(input_c.data_ptr(), flow_f.data_ptr<float>(), out.data_ptr(), type), name);
  return out;
}

at::Tensor backward_warp_cuda(const at::Tensor& input, const at::Tensor& flow) {
  return warp_forward_cuda(input, flow, "backward_warp",
                           [&](const void* in, const float* fl, void* out, cuda::StorageType type) {
                             return cuda::backward_warp(in, fl, out, type, input.size(0), input.size(1), input.size(2),
                                                        input.size(3), c10::cuda::getCurrentCUDAStream());
                           });
}

at::Tensor bicubic_warp_cuda(const at::Tensor& input, const at::Tensor& flow) {
  return warp_forward_cuda(input, flow, "bicubic_warp",
                           [&](const void* in, const float* fl, void* out, cuda::StorageType type) {
                             return cuda::bicubic_warp(in, fl, out, type, input.size(0), input.size(1), input.size(2),
                                                       input.size(3), c10::cuda::getCurrentCUDAStream());
                           });
}

std::tuple<at::Tensor, at::Tensor> backward_warp_backward_cuda(const at::Tensor& grad, const at::Tensor& input,
                                                               const at::Tensor& flow) {
  check_warp_args(input, flow, grad);
  const cuda::StorageType type = storage_type(input, "input");
  const c10::cuda::CUDAGuard device_guard(input.device());
  const at::Tensor input_c = input.contiguous();
  const at::Tensor grad_c = grad.to(input.scalar_type()).contiguous();
  const at::Tensor flow_f = flow.to(at::kFloat).contiguous();
  // float32 accumulators (atomics), cast to the inputs' dtypes at the end.
  at::Tensor grad_input = at::empty(input.sizes(), input_c.options().dtype(at::kFloat));
  at::Tensor grad_flow = at::empty(flow.sizes(), flow_f.options());
  if (input.numel() > 0) {
    check_launch(cuda::backward_warp_backward(grad_c.data_ptr(), input_c.data_ptr(), flow_f.data_ptr<float>(),
                                              grad_input.data_ptr<float>(), grad_flow.data_ptr<float>(), type,
                                              input.size(0), input.size(1), input.size(2), input.size(3),
                                              c10::cuda::getCurrentCUDAStream()),
                 "backward_warp_backward");
  }
  return {grad_input.to(input.scalar_type()), grad_flow.to(flow.scalar_type())};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> filter_interpolation_backward_cuda(const at::Tensor& grad,
                                                                                 const at::Tensor& input,
                                                                                 const at::Tensor& flow,
                                                                                 const at::Tensor& filters) {
  check_filter_args(input, flow, filters, grad);
  const cuda::StorageType type = storage_type(input, "input");
  const c10::cuda::CUDAGuard device_guard(input.device());
  const at::Tensor input_c = input.contiguous();
  const at::Tensor grad_c = grad.to(input.scalar_type()).contiguous();
  const at::Tensor filters_c = filters.to(input.scalar_type()).contiguous();
  const at::Tensor flow_f = flow.to(at::kFloat).contiguous();
  const at::TensorOptions accumulate = input_c.options().dtype(at::kFloat);
  at::Tensor grad_input = at::empty(input.sizes(), accumulate);
  at::Tensor grad_flow = at::empty(flow.sizes(), accumulate);
  at::Tensor grad_filters = at::empty(filters.sizes(), accumulate);
  if (input.numel() > 0) {
    check_launch(cuda::filter_interpolation_backward(
                     grad_c.data_ptr(), input_c.data_ptr(), flow_f.data_ptr<float>(), filters_c.data_ptr(),
                     grad_input.data_ptr<float>(), grad_flow.data_ptr<float>(), grad_filters.data_ptr<float>(), type,
                     input.size(0), input.size(1), input.size(2), input.size(3), c10::cuda::getCurrentCUDAStream()),
                 "filter_interpolation_backward");
  }
  return {grad_input.to(input.scalar_type()), grad_flow.to(flow.scalar_type()), grad_filters.to(filters.scalar_type())};
}

std::tuple<at::Tensor, at::Tensor> correlation_backward_cuda(const at::Tensor& grad, const at::Tensor& a,
                                                             const at::Tensor& b, int64_t max_displacement) {
  check_correlation_args(a, b, max_displacement, grad);
  const cuda::StorageType type = storage_type(a, "a");
  const c10::cuda::CUDAGuard device_guard(a.device());
  const at::Tensor a_c = a.contiguous();
  const at::Tensor b_c = b.to(a.scalar_type()).contiguous();
  const at::Tensor grad_c = grad.to(a.scalar_type()).contiguous();
  at::Tensor grad_a = at::empty(a.sizes(), a_c.options().dtype(at::kFloat));
  at::Tensor grad_b = at::empty(b.sizes(), a_c.options().dtype(at::kFloat));
  if (a.numel() > 0) {
    check_launch(cuda::correlation_backward(grad_c.data_ptr(), a_c.data_ptr(), b_c.data_ptr(), grad_a.data_ptr<float>(),
                                            grad_b.data_ptr<float>(), type, a.size(0), a.size(1), a.size(2), a.size(3),
                                            static_cast<int>(max_displacement), c10::cuda::getCurrentCUDAStream()),
                 "correlation_backward");
  }
  return {grad_a.to(a.scalar_type()), grad_b.to(b.scalar_type())};
}

std::tuple<at::Tensor, at::Tensor> depth_flow_projection_backward_cuda(const at::Tensor& grad, const at::Tensor& flow,
                                                                       const at::Tensor& weight, bool fill_holes) {
  check_projection_args(flow, weight, grad);
  storage_type(flow, "flow");
  const c10::cuda::CUDAGuard device_guard(flow.device());
  const at::Tensor flow_f = flow.to(at::kFloat).contiguous();
  const at::Tensor weight_f = weight.to(at::kFloat).contiguous();
  const at::Tensor grad_f = grad.to(at::kFloat).contiguous();
  at::Tensor grad_flow = at::empty(flow.sizes(), flow_f.options());
  at::Tensor grad_weight = at::empty(weight.sizes(), flow_f.options());
  if (flow.numel() > 0) {
    at::Tensor scratch = at::empty({6 * flow.size(0) * flow.size(2) * flow.size(3)}, flow_f.options());
    check_launch(cuda::depth_flow_projection_backward(grad_f.data_ptr<float>(), flow_f.data_ptr<float>(),
                                                      weight_f.data_ptr<float>(), grad_flow.data_ptr<float>(),
                                                      grad_weight.data_ptr<float>(), scratch.data_ptr<float>(),
                                                      flow.size(0), flow.size(2), flow.size(3), fill_holes,
                                                      c10::cuda::getCurrentCUDAStream()),
                 "depth_flow_projection_backward");
  }
  return {grad_flow.to(flow.scalar_type()), grad_weight.to(weight.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(dainctl, CUDA, m) { DAINCTL_REGISTER_IMPLS(m, cuda); }

}  // namespace dainctl
