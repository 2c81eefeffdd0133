// Argument checks shared by the CPU and CUDA glue.
#pragma once

#include <ATen/ATen.h>

#include <climits>

namespace dainctl {

// A 4-D (B,C,H,W) floating tensor (with `channels` channels when channels >= 0) whose H and W
// match `like` and whose sizes fit the int indexing of the drivers.
inline void check_nchw(const at::Tensor& tensor, const char* name, int64_t channels, const at::Tensor& like) {
  TORCH_CHECK(tensor.dim() == 4, name, " must be 4-D (B,C,H,W), got ", tensor.sizes());
  TORCH_CHECK(at::isFloatingType(tensor.scalar_type()), name, " must be floating point, got ",
              tensor.scalar_type());
  TORCH_CHECK(channels < 0 || tensor.size(1) == channels, name, " must have ", channels, " channels, got ",
              tensor.sizes());
  TORCH_CHECK(tensor.size(0) == like.size(0) && tensor.size(2) == like.size(2) && tensor.size(3) == like.size(3),
              name, " ", tensor.sizes(), " must match ", like.sizes(), " in batch, height and width");
  TORCH_CHECK(tensor.device() == like.device(), name, " must be on ", like.device(), ", got ", tensor.device());
  TORCH_CHECK(tensor.size(1) < INT_MAX && tensor.size(2) * tensor.size(3) < INT_MAX, name,
              " is too large: channels and H*W must fit in int");
}

// The arguments of each op, the same for its CPU and CUDA glue and for its backward (`grad`, when
// defined, is the gradient of the op's output).
inline void check_projection_args(const at::Tensor& flow, const at::Tensor& weight, const at::Tensor& grad = {}) {
  check_nchw(flow, "flow", 2, flow);
  check_nchw(weight, "weight", 1, flow);
  if (grad.defined()) check_nchw(grad, "grad", 2, flow);
}

inline void check_filter_args(const at::Tensor& input, const at::Tensor& flow, const at::Tensor& filters,
                              const at::Tensor& grad = {}) {
  check_nchw(input, "input", -1, input);
  check_nchw(flow, "flow", 2, input);
  check_nchw(filters, "filters", 16, input);
  if (grad.defined()) check_nchw(grad, "grad", input.size(1), input);
}

// Returns the number of displacements, (2 * max_displacement + 1)^2.
inline int64_t check_correlation_args(const at::Tensor& a, const at::Tensor& b, int64_t max_displacement,
                                      const at::Tensor& grad = {}) {
  check_nchw(a, "a", -1, a);
  check_nchw(b, "b", a.size(1), a);
  TORCH_CHECK(b.scalar_type() == a.scalar_type(), "b must have a's dtype ", a.scalar_type(), ", got ",
              b.scalar_type());
  TORCH_CHECK(max_displacement >= 0 && max_displacement < 1024, "max_displacement must be in [0, 1024), got ",
              max_displacement);
  const int64_t side = 2 * max_displacement + 1;
  if (grad.defined()) check_nchw(grad, "grad", side * side, a);
  return side * side;
}

inline void check_warp_args(const at::Tensor& input, const at::Tensor& flow, const at::Tensor& grad = {}) {
  check_nchw(input, "input", -1, input);
  check_nchw(flow, "flow", 2, input);
  if (grad.defined()) check_nchw(grad, "grad", input.size(1), input);
}

// Every op and its backward, registered for one device: `suffix` names the implementations
// (`<op>_cpu`, `<op>_cuda`). One list, so the CPU and CUDA variants register the same ops.
#define DAINCTL_REGISTER_IMPLS(m, suffix)                                                    \
  m.impl("depth_flow_projection", &depth_flow_projection_##suffix);                          \
  m.impl("filter_interpolation", &filter_interpolation_##suffix);                            \
  m.impl("correlation", &correlation_##suffix);                                              \
  m.impl("backward_warp", &backward_warp_##suffix);                                          \
  m.impl("bicubic_warp", &bicubic_warp_##suffix);                                            \
  m.impl("depth_flow_projection_backward", &depth_flow_projection_backward_##suffix);        \
  m.impl("filter_interpolation_backward", &filter_interpolation_backward_##suffix);          \
  m.impl("correlation_backward", &correlation_backward_##suffix);                            \
  m.impl("backward_warp_backward", &backward_warp_backward_##suffix)

// The dtype coordinates and flows are computed in for data of `dtype`.
inline at::ScalarType coordinate_type(at::ScalarType dtype) {
  return dtype == at::kDouble ? at::kDouble : at::kFloat;
}

}  // namespace dainctl
