// Schemas of the dainctl ops and their CPU implementations (glue between torch and cpu/drivers.cpp).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <tuple>

#include "checks.h"
#include "dainctl/cpu_drivers.h"

namespace dainctl {
namespace {

void check_cpu_dtype(const at::Tensor& tensor, const char* name) {
  TORCH_CHECK(tensor.scalar_type() == at::kFloat || tensor.scalar_type() == at::kDouble, name,
              " must be float32 or float64 on CPU, got ", tensor.scalar_type());
}

at::Tensor depth_flow_projection_cpu(const at::Tensor& flow, const at::Tensor& weight, bool fill_holes) {
  // Validate arguments.
  check_projection_args(flow, weight);
  check_cpu_dtype(flow, "flow");
  const at::Tensor flow_c = flow.contiguous();
  const at::Tensor weight_c = weight.to(flow.scalar_type()).contiguous();
  // Create output tensor.
  at::Tensor out = at::empty(flow.sizes(), flow.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  // Run the driver.
  AT_DISPATCH_FLOATING_TYPES(flow.scalar_type(), "depth_flow_projection_cpu", [&] {
    cpu::depth_flow_projection<scalar_t>(flow_c.data_ptr<scalar_t>(), weight_c.data_ptr<scalar_t>(),
                                         out.data_ptr<scalar_t>(), flow.size(0), flow.size(2), flow.size(3),
                                         fill_holes);
  });
  return out;
}

at::Tensor filter_interpolation_cpu(const at::Tensor& input, const at::Tensor& flow, const at::Tensor& filters) {
  check_filter_args(input, flow, filters);
  check_cpu_dtype(input, "input");
  const at::Tensor input_c = input.contiguous();
  const at::Tensor flow_c = flow.to(input.scalar_type()).contiguous();
  const at::Tensor filters_c = filters.to(input.scalar_type()).contiguous();
  at::Tensor out = at::empty(input.sizes(), input.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "filter_interpolation_cpu", [&] {
    cpu::filter_interpolation<scalar_t>(input_c.data_ptr<scalar_t>(), flow_c.data_ptr<scalar_t>(),
                                        filters_c.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), input.size(0),
                                        input.size(1), input.size(2), input.size(3));
  });
  return out;
}

at::Tensor correlation_cpu(const at::Tensor& a, const at::Tensor& b, int64_t max_displacement) {
  const int64_t displacements = check_correlation_args(a, b, max_displacement);
  check_cpu_dtype(a, "a");
  // The CPU driver reads channels-last (free when the input already is).
  const at::Tensor a_c = a.contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor b_c = b.contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor out = at::empty({a.size(0), displacements, a.size(2), a.size(3)}, a.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "correlation_cpu", [&] {
    cpu::correlation<scalar_t>(a_c.data_ptr<scalar_t>(), b_c.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                               a.size(0), a.size(1), a.size(2), a.size(3), static_cast<int>(max_displacement));
  });
  return out;
}

// The two warps' forward glue: `run(input, flow, out)` calls the driver for the dispatched scalar type.
template <typename Run>
at::Tensor warp_forward_cpu(const at::Tensor& input, const at::Tensor& flow, Run run) {
  check_warp_args(input, flow);
  check_cpu_dtype(input, "input");
  const at::Tensor input_c = input.contiguous();
  const at::Tensor flow_c = flow.to(input.scalar_type()).contiguous();
  at::Tensor out = at::empty(input.sizes(), input.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "warp_forward_cpu", [&] {
    run(input_c.data_ptr<scalar_t>(), flow_c.data_ptr<scalar_t>(), out.data_ptr<scalar_t>());
  });
  return out;
}

at::Tensor backward_warp_cpu(const at::Tensor& input, const at::Tensor& flow) {
  return warp_forward_cpu(input, flow, [&](auto* in, auto* fl, auto* out) {
    cpu::backward_warp(in, fl, out, input.size(0), input.size(1), input.size(2), input.size(3));
  });
}

at::Tensor bicubic_warp_cpu(const at::Tensor& input, const at::Tensor& flow) {
  return warp_forward_cpu(input, flow, [&](auto* in, auto* fl, auto* out) {
    cpu::bicubic_warp(in, fl, out, input.size(0), input.size(1), input.size(2), input.size(3));
  });
}


std::tuple<at::Tensor, at::Tensor> backward_warp_backward_cpu(const at::Tensor& grad, const at::Tensor& input,
                                                              const at::Tensor& flow) {
  check_warp_args(input, flow, grad);
  check_cpu_dtype(input, "input");
  const at::Tensor input_c = input.contiguous();
  const at::Tensor flow_c = flow.to(input.scalar_type()).contiguous();
  const at::Tensor grad_c = grad.to(input.scalar_type()).contiguous();
  at::Tensor grad_input = at::empty(input.sizes(), input_c.options());
  at::Tensor grad_flow = at::empty(flow.sizes(), flow_c.options());
  if (input.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "backward_warp_backward_cpu", [&] {
      cpu::backward_warp_backward<scalar_t>(grad_c.data_ptr<scalar_t>(), input_c.data_ptr<scalar_t>(),
                                            flow_c.data_ptr<scalar_t>(), grad_input.data_ptr<scalar_t>(),
                                            grad_flow.data_ptr<scalar_t>(), input.size(0), input.size(1),
                                            input.size(2), input.size(3));
    });
  }
  return {grad_input, grad_flow.to(flow.scalar_type())};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> filter_interpolation_backward_cpu(const at::Tensor& grad,
                                                                                const at::Tensor& input,
                                                                                const at::Tensor& flow,
                                                                                const at::Tensor& filters) {
  check_filter_args(input, flow, filters, grad);
  check_cpu_dtype(input, "input");
  const at::Tensor input_c = input.contiguous();
  const at::Tensor flow_c = flow.to(input.scalar_type()).contiguous();
  const at::Tensor filters_c = filters.to(input.scalar_type()).contiguous();
  const at::Tensor grad_c = grad.to(input.scalar_type()).contiguous();
  at::Tensor grad_input = at::empty(input.sizes(), input_c.options());
  at::Tensor grad_flow = at::empty(flow.sizes(), input_c.options());
  at::Tensor grad_filters = at::empty(filters.sizes(), input_c.options());
  if (input.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "filter_interpolation_backward_cpu", [&] {
      cpu::filter_interpolation_backward<scalar_t>(
          grad_c.data_ptr<scalar_t>(), input_c.data_ptr<scalar_t>(), flow_c.data_ptr<scalar_t>(),
          filters_c.data_ptr<scalar_t>(), grad_input.data_ptr<scalar_t>(), grad_flow.data_ptr<scalar_t>(),
          grad_filters.data_ptr<scalar_t>(), input.size(0), input.size(1), input.size(2), input.size(3));
    });
  }
  return {grad_input, grad_flow.to(flow.scalar_type()), grad_filters.to(filters.scalar_type())};
}

std::tuple<at::Tensor, at::Tensor> correlation_backward_cpu(const at::Tensor& grad, const at::Tensor& a,
                                                            const at::Tensor& b, int64_t max_displacement) {
  check_correlation_args(a, b, max_displacement, grad);
  check_cpu_dtype(a, "a");
  // The driver reads and writes channels-last (as the forward reads).
  const at::Tensor a_c = a.contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor b_c = b.to(a.scalar_type()).contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor grad_c = grad.to(a.scalar_type()).contiguous();
  at::Tensor grad_a = at::empty(a.sizes(), a.options().memory_format(at::MemoryFormat::ChannelsLast));
  at::Tensor grad_b = at::empty(b.sizes(), a.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (a.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "correlation_backward_cpu", [&] {
      cpu::correlation_backward<scalar_t>(grad_c.data_ptr<scalar_t>(), a_c.data_ptr<scalar_t>(), b_c.data_ptr<scalar_t>(),
                                          grad_a.data_ptr<scalar_t>(), grad_b.data_ptr<scalar_t>(), a.size(0), a.size(1),
                                          a.size(2), a.size(3), static_cast<int>(max_displacement));
    });
  }
  return {grad_a, grad_b.to(b.scalar_type())};
}

std::tuple<at::Tensor, at::Tensor> depth_flow_projection_backward_cpu(const at::Tensor& grad, const at::Tensor& flow,
                                                                      const at::Tensor& weight, bool fill_holes) {
  check_projection_args(flow, weight, grad);
  check_cpu_dtype(flow, "flow");
  const at::Tensor flow_c = flow.contiguous();
  const at::Tensor weight_c = weight.to(flow.scalar_type()).contiguous();
  const at::Tensor grad_c = grad.to(flow.scalar_type()).contiguous();
  at::Tensor grad_flow = at::empty(flow.sizes(), flow_c.options());
  at::Tensor grad_weight = at::empty(weight.sizes(), flow_c.options());
  if (flow.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES(flow.scalar_type(), "depth_flow_projection_backward_cpu", [&] {
      cpu::depth_flow_projection_backward<scalar_t>(grad_c.data_ptr<scalar_t>(), flow_c.data_ptr<scalar_t>(),
                                                    weight_c.data_ptr<scalar_t>(), grad_flow.data_ptr<scalar_t>(),
                                                    grad_weight.data_ptr<scalar_t>(), flow.size(0), flow.size(2),
                                                    flow.size(3), fill_holes);
    });
  }
  return {grad_flow, grad_weight.to(weight.scalar_type())};
}

}  // namespace

TORCH_LIBRARY(dainctl, m) {
  m.def("depth_flow_projection(Tensor flow, Tensor weight, bool fill_holes) -> Tensor");
  m.def("filter_interpolation(Tensor input, Tensor flow, Tensor filters) -> Tensor");
  m.def("correlation(Tensor a, Tensor b, int max_displacement) -> Tensor");
  m.def("backward_warp(Tensor input, Tensor flow) -> Tensor");
  // Forward only: it differentiates through its reference twin (dainctl/kernels/warp.py).
  m.def("bicubic_warp(Tensor input, Tensor flow) -> Tensor");
  // Backward ops: gradients of the forward ops above, called by their Autograd kernels (autograd.cpp).
  m.def("backward_warp_backward(Tensor grad, Tensor input, Tensor flow) -> (Tensor, Tensor)");
  m.def("filter_interpolation_backward(Tensor grad, Tensor input, Tensor flow, Tensor filters) -> (Tensor, Tensor, Tensor)");
  m.def("correlation_backward(Tensor grad, Tensor a, Tensor b, int max_displacement) -> (Tensor, Tensor)");
  m.def("depth_flow_projection_backward(Tensor grad, Tensor flow, Tensor weight, bool fill_holes) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(dainctl, CPU, m) { DAINCTL_REGISTER_IMPLS(m, cpu); }

}  // namespace dainctl
