// rmsnorm_bridge::rmsnorm: the CPU operator as one call per forward, with its autograd
// node in C++, so a call that autograd records costs no Python beyond the call itself.
//
// Without autograd it is rmsnorm_forward's y. With it, the node is the one
// kernels/_cpu_norm.py's Python autograd.Function builds (the pure-Python fallback
// keeps that one): x enters twice, for the product and for the statistic, where it
// reaches the graph path's result along two paths (two_dx), so autograd adds the two
// partial gradients one at a time into x's gradient, as the graph path's nodes deliver
// them; elsewhere (a half x widened once) the node saves a copy of x made by a recorded
// clone, as the graph path saves its widened copy (an in-place update of x between
// forward and backward stays allowed, and higher orders reach x through the clone); a
// weight with an offset is cloned for the same reason (the graph path saves offset + w).
// Backward is one call of rmsnorm_backward, whose bits are the graph path's; a backward
// asked to build a graph (create_graph=True) calls rmsnorm_graph_backward, whose kernel
// kernels/_cpu_norm.py registers in Python: autograd of the graph path itself, on the
// call's plan (`plan`, a handle that module hands out), differentiable in turn.
#include "rmsnorm_cpu.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <optional>
#include <vector>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// offset + w in float32, as the graph path forms the gain; w itself without an offset
// (rmsnorm_forward widens a half w itself, exactly).
std::optional<at::Tensor> gain_of(const std::optional<at::Tensor>& weight, double offset) {
  if (!weight.has_value() || !weight->defined() || offset == 0.0) return weight;
  return weight->to(at::kFloat) + offset;
}

std::optional<at::Tensor> present(const at::Tensor& t) {
  return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt;
}

struct Args {
  std::vector<int64_t> block;
  double eps;
  double offset;
  bool round_mid;
  at::ScalarType mid;
  at::ScalarType out_dtype;
  bool inverse;
  bool two_dx;      // x reaches the result along two paths: two partial gradients
  bool half_scale;  // the gain's gradient products in the weight's half dtype
  int64_t plan;     // the handle of the call's plan, for a create_graph backward
};

enum Flag : int64_t { kRoundMid = 1, kInverse = 2, kTwoDx = 4, kHalfScale = 8, kBias = 16 };

class NormFunction : public torch::autograd::Function<NormFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& /*x_stat*/,
                            const std::optional<at::Tensor>& weight,
                            const std::optional<at::Tensor>& bias, const Args& a) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [y, inv] = rmsnorm_forward(x, a.block, gain_of(weight, a.offset), bias, a.eps,
                                    a.round_mid, a.mid, a.out_dtype, a.inverse);
    // not the bias: no gradient reads its values (the graph path's y + b saves nothing
    // either), so an in-place update of it between forward and backward is allowed
    ctx->save_for_backward({x, weight.value_or(at::Tensor()), inv});
    const bool has_bias = bias.has_value() && bias->defined();
    ctx->saved_data["block"] = a.block;
    ctx->saved_data["offset"] = a.offset;
    ctx->saved_data["mid"] = static_cast<int64_t>(a.mid);
    ctx->saved_data["plan"] = a.plan;
    ctx->saved_data["flags"] = (a.round_mid ? kRoundMid : 0) | (a.inverse ? kInverse : 0) |
                               (a.two_dx ? kTwoDx : 0) | (a.half_scale ? kHalfScale : 0) |
                               (has_bias ? kBias : 0);
    if (has_bias) {
      ctx->saved_data["bias_sizes"] = bias->sizes().vec();
      ctx->saved_data["bias_dtype"] = static_cast<int64_t>(bias->scalar_type());
    }
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& weight = saved[1];
    const int64_t flags = ctx->saved_data["flags"].toInt();
    const bool has_weight = weight.defined();
    const bool has_bias = (flags & kBias) != 0;
    const bool two_dx = (flags & kTwoDx) != 0;
    // edges: x, x again, then the weight and the bias where present
    const bool need_x = ctx->needs_input_grad(0);
    const bool need_w = has_weight && ctx->needs_input_grad(2);
    const bool need_b = has_bias && ctx->needs_input_grad(has_weight ? 3 : 2);
    std::vector<int64_t> bias_sizes;
    at::ScalarType bias_dtype = at::kFloat;
    if (has_bias) {
      bias_sizes = ctx->saved_data["bias_sizes"].toIntVector();
      bias_dtype = static_cast<at::ScalarType>(ctx->saved_data["bias_dtype"].toInt());
    }
    variable_list out(5);  // x, x again, weight, bias, the arguments
    if (at::GradMode::is_enabled()) {  // create_graph=True: a differentiable backward
      std::optional<at::Tensor> bias_stand_in;  // its shape and dtype (values are not read)
      if (has_bias) {
        bias_stand_in = at::zeros(bias_sizes, x.options().dtype(bias_dtype)).requires_grad_(need_b);
      }
      static const auto graph_backward =
          c10::Dispatcher::singleton()
              .findSchemaOrThrow("rmsnorm_bridge::rmsnorm_graph_backward", "")
              .typed<std::vector<at::Tensor>(const at::Tensor&, const at::Tensor&,
                                             const std::optional<at::Tensor>&,
                                             const std::optional<at::Tensor>&, int64_t, bool, bool,
                                             bool)>();
      const std::vector<at::Tensor> g =
          graph_backward.call(grads[0], x, present(weight), bias_stand_in,
                              ctx->saved_data["plan"].toInt(), need_x, need_w, need_b);
      size_t i = 0;  // the gradients asked for, in this order
      if (need_x) {
        out[0] = g.at(i++);
        if (two_dx) out[1] = g.at(i++);
      }
      if (need_w) out[2] = g.at(i++);
      if (need_b) out[3] = g.at(i++);
      return out;
    }
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    const at::ScalarType scale_dtype = has_weight && !has_bias && (flags & kHalfScale) != 0
                                           ? weight.scalar_type()
                                           : at::kFloat;
    const std::vector<int64_t> block = ctx->saved_data["block"].toIntVector();
    auto [dx, dgain, dbias, dx2] = rmsnorm_backward(
        grads[0], x, saved[2], block, gain_of(present(weight), ctx->saved_data["offset"].toDouble()),
        has_bias, (flags & kRoundMid) != 0,
        static_cast<at::ScalarType>(ctx->saved_data["mid"].toInt()), (flags & kInverse) != 0,
        scale_dtype, need_x, need_w, need_b, two_dx);
    if (need_x) {
      out[0] = dx;
      out[1] = dx2;
    }
    if (need_w) out[2] = dgain.to(weight.scalar_type()).reshape(weight.sizes());
    if (need_b) out[3] = dbias.to(bias_dtype).reshape(bias_sizes);
    return out;
  }
};

at::Tensor rmsnorm_plain(const at::Tensor& x, at::IntArrayRef block,
                         const std::optional<at::Tensor>& weight,
                         const std::optional<at::Tensor>& bias, double eps, double offset,
                         bool round_mid, at::ScalarType mid, at::ScalarType out_dtype, bool inverse,
                         bool /*two_dx*/, bool /*half_scale*/, int64_t /*plan*/) {
  return std::get<0>(rmsnorm_forward(x, block, gain_of(weight, offset), bias, eps, round_mid, mid,
                                     out_dtype, inverse));
}

bool requires_grad(const std::optional<at::Tensor>& t) {
  return t.has_value() && t->defined() && t->requires_grad();
}

at::Tensor rmsnorm_autograd(const at::Tensor& x, at::IntArrayRef block,
                            const std::optional<at::Tensor>& weight,
                            const std::optional<at::Tensor>& bias, double eps, double offset,
                            bool round_mid, at::ScalarType mid, at::ScalarType out_dtype,
                            bool inverse, bool two_dx, bool half_scale, int64_t plan) {
  if (!at::GradMode::is_enabled() ||
      !(x.requires_grad() || requires_grad(weight) || requires_grad(bias))) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return rmsnorm_plain(x, block, weight, bias, eps, offset, round_mid, mid, out_dtype, inverse,
                         two_dx, half_scale, plan);
  }
  // the node's own copy where the graph path saves a widened one (and always of an
  // inference tensor, which autograd cannot save), recorded, so higher orders reach x
  const at::Tensor saved_x = two_dx && !x.is_inference() ? x : x.clone();
  std::optional<at::Tensor> saved_w = weight;
  if (weight.has_value() && weight->defined() && offset != 0.0) saved_w = weight->clone();
  return NormFunction::apply(saved_x, saved_x, saved_w, bias,
                             Args{block.vec(), eps, offset, round_mid, mid, out_dtype, inverse,
                                  two_dx, half_scale, plan});
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rmsnorm_bridge, m) {
  m.def(
      "rmsnorm(Tensor x, int[] block, Tensor? weight, Tensor? bias, float eps, float offset, "
      "bool round_mid, ScalarType mid, ScalarType out_dtype, bool inverse, bool two_dx, "
      "bool half_scale, int plan) -> Tensor");
  m.def(
      "rmsnorm_graph_backward(Tensor dy, Tensor x, Tensor? weight, Tensor? bias, int plan, "
      "bool need_x, bool need_weight, bool need_bias) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(rmsnorm_bridge, CPU, m) { m.impl("rmsnorm", &rmsnorm_plain); }

TORCH_LIBRARY_IMPL(rmsnorm_bridge, Autograd, m) { m.impl("rmsnorm", &rmsnorm_autograd); }
