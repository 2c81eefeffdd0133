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

// The dtype coordinates and flows are computed in for data of `dtype`.
inline at::ScalarType coordinate_type(at::ScalarType dtype) {
  return dtype == at::kDouble ? at::kDouble : at::kFloat;
}

}  // namespace dainctl
