// Autograd kernels of the four dainctl ops: each forward op's compiled backward (`<op>_backward`,
// defined in ops.cpp) as a C++ `torch::autograd::Function`, for the CPU and the CUDA variant alike (both
// call the ops through the dispatcher). In C++ rather than through `torch.library.register_autograd`,
// whose Python glue cost about 0.1 ms per forward and backward (measured on backward_warp at 256x256:
// 1.2-1.3 ms down to 1.0-1.1 ms; docs/benchmarks.md). Autocast rules and fake kernels stay in Python
// (`_autograd.py`, `_fake.py`).
//
// Each backward returns a gradient only for the inputs that need one (undefined otherwise), and none for
// the non-tensor arguments.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <tuple>

namespace dainctl {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The op `name`, typed `Signature` (each caller keeps the handle in a function-local static).
template <typename Signature>
c10::TypedOperatorHandle<Signature> typed_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

at::Tensor needed(const AutogradContext* ctx, size_t index, const at::Tensor& grad) {
  return ctx->needs_input_grad(index) ? grad : at::Tensor();
}

class BackwardWarp : public torch::autograd::Function<BackwardWarp> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& flow) {
    using Forward = at::Tensor(const at::Tensor&, const at::Tensor&);
    static const auto op = typed_op<Forward>("dainctl::backward_warp");
    ctx->save_for_backward({input, flow});
    at::AutoDispatchBelowADInplaceOrView guard;
    return op.call(input, flow);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    using Backward = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&);
    static const auto op = typed_op<Backward>("dainctl::backward_warp_backward");
    const variable_list saved = ctx->get_saved_variables();
    auto [grad_input, grad_flow] = op.call(grads[0].contiguous(), saved[0], saved[1]);
    return {needed(ctx, 0, grad_input), needed(ctx, 1, grad_flow)};
  }
};

class FilterInterpolation : public torch::autograd::Function<FilterInterpolation> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& flow,
                            const at::Tensor& filters) {
    using Forward = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&);
    static const auto op = typed_op<Forward>("dainctl::filter_interpolation");
    ctx->save_for_backward({input, flow, filters});
    at::AutoDispatchBelowADInplaceOrView guard;
    return op.call(input, flow, filters);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    using Backward = std::tuple<at::Tensor, at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                    const at::Tensor&, const at::Tensor&);
    static const auto op = typed_op<Backward>("dainctl::filter_interpolation_backward");
    const variable_list saved = ctx->get_saved_variables();
    auto [grad_input, grad_flow, grad_filters] = op.call(grads[0].contiguous(), saved[0], saved[1], saved[2]);
    return {needed(ctx, 0, grad_input), needed(ctx, 1, grad_flow), needed(ctx, 2, grad_filters)};
  }
};

class Correlation : public torch::autograd::Function<Correlation> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b,
                            int64_t max_displacement) {
    using Forward = at::Tensor(const at::Tensor&, const at::Tensor&, int64_t);
    static const auto op = typed_op<Forward>("dainctl::correlation");
    ctx->save_for_backward({a, b});
    ctx->saved_data["max_displacement"] = max_displacement;
    at::AutoDispatchBelowADInplaceOrView guard;
    return op.call(a, b, max_displacement);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    using Backward =
        std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t);
    static const auto op = typed_op<Backward>("dainctl::correlation_backward");
    const variable_list saved = ctx->get_saved_variables();
    auto [grad_a, grad_b] =
        op.call(grads[0].contiguous(), saved[0], saved[1], ctx->saved_data["max_displacement"].toInt());
    return {needed(ctx, 0, grad_a), needed(ctx, 1, grad_b), at::Tensor()};
  }
};

// The true derivative of our forward (hole filling included); the original's weight gradient has a sign
// slip in its mean term, which this does not reproduce (see kernels/projection.py).
class DepthFlowProjection : public torch::autograd::Function<DepthFlowProjection> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& flow, const at::Tensor& weight, bool fill_holes) {
    using Forward = at::Tensor(const at::Tensor&, const at::Tensor&, bool);
    static const auto op = typed_op<Forward>("dainctl::depth_flow_projection");
    ctx->save_for_backward({flow, weight});
    ctx->saved_data["fill_holes"] = fill_holes;
    at::AutoDispatchBelowADInplaceOrView guard;
    return op.call(flow, weight, fill_holes);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    using Backward = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&, bool);
    static const auto op = typed_op<Backward>("dainctl::depth_flow_projection_backward");
    const variable_list saved = ctx->get_saved_variables();
    auto [grad_flow, grad_weight] =
        op.call(grads[0].contiguous(), saved[0], saved[1], ctx->saved_data["fill_holes"].toBool());
    return {needed(ctx, 0, grad_flow), needed(ctx, 1, grad_weight), at::Tensor()};
  }
};

at::Tensor backward_warp_autograd(const at::Tensor& input, const at::Tensor& flow) {
  return BackwardWarp::apply(input, flow);
}

at::Tensor filter_interpolation_autograd(const at::Tensor& input, const at::Tensor& flow, const at::Tensor& filters) {
  return FilterInterpolation::apply(input, flow, filters);
}

at::Tensor correlation_autograd(const at::Tensor& a, const at::Tensor& b, int64_t max_displacement) {
  return Correlation::apply(a, b, max_displacement);
}

at::Tensor depth_flow_projection_autograd(const at::Tensor& flow, const at::Tensor& weight, bool fill_holes) {
  return DepthFlowProjection::apply(flow, weight, fill_holes);
}

}  // namespace

TORCH_LIBRARY_IMPL(dainctl, Autograd, m) {
  m.impl("depth_flow_projection", &depth_flow_projection_autograd);
  m.impl("filter_interpolation", &filter_interpolation_autograd);
  m.impl("correlation", &correlation_autograd);
  m.impl("backward_warp", &backward_warp_autograd);
}

}  // namespace dainctl
