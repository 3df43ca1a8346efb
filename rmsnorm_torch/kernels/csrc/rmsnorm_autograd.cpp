// rmsnorm_bridge::rmsnorm: the CPU operator as one call per forward, with its autograd
// node in C++, so a call that autograd records costs no Python beyond the call itself.
//
// Without autograd it is rmsnorm_forward's y. With it, the node is the one
// kernels/_cpu_norm.py's Python autograd.Function builds (the pure-Python fallback
// keeps that one): x enters twice, for the product and for the statistic, where it
// reaches the graph path's result along two paths (two_dx), so autograd adds the two
// partial gradients one at a time into x's gradient, as the graph path's nodes deliver
// them. The node saves x itself only where the graph path saves it (a float32 x, or
// T5's half x, that requires grad): elsewhere a copy made by a recorded clone, as the
// graph path saves a widened copy or a product (an in-place update of x between forward
// and backward stays allowed, and higher orders reach x through the clone); the weight
// likewise (the graph path saves w itself only for a float32 w without an offset, and
// for Llama's half-precision scale). The parameters come first among the node's inputs:
// the engine then readies their gradients before x's, as the graph path's nodes do
// (hooks run in the upstream's order). Backward is one call of rmsnorm_backward, whose
// bits are the graph path's, on a dense, contiguous dy (what training losses give);
// any other dy (a transposed or expanded one, a batched one under vmap or
// is_grads_batched) and a backward asked to build a graph (create_graph=True) call
// rmsnorm_graph_backward, whose kernel kernels/_cpu_norm.py registers in Python:
// autograd of the graph path itself on the call's plan (`plan`, a handle that module
// hands out), whose reductions follow dy's own layout as the upstream's do, and which
// is differentiable in turn.
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

// A dy that rmsnorm_backward computes the graph path's bits from: a plain, contiguous
// tensor with storage (no functorch wrapper, no ZeroTensor, no Python subclass).
bool dense(const at::Tensor& dy) {
  const c10::DispatchKeySet keys = dy.key_set();
  return !keys.has_any(c10::functorch_transforms_ks) && !keys.has(c10::DispatchKey::Python) &&
         dy.has_storage() && !dy._is_zerotensor() && dy.is_contiguous();
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
  static at::Tensor forward(AutogradContext* ctx, const std::optional<at::Tensor>& weight,
                            const std::optional<at::Tensor>& bias, const at::Tensor& x,
                            const at::Tensor& /*x_stat*/, const Args& a) {
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
    // edges: the weight and the bias where present, then x and x again
    const size_t x_edge = static_cast<size_t>(has_weight) + static_cast<size_t>(has_bias);
    const bool need_w = has_weight && ctx->needs_input_grad(0);
    const bool need_b = has_bias && ctx->needs_input_grad(has_weight ? 1 : 0);
    const bool need_x = ctx->needs_input_grad(x_edge);
    std::vector<int64_t> bias_sizes;
    at::ScalarType bias_dtype = at::kFloat;
    if (has_bias) {
      bias_sizes = ctx->saved_data["bias_sizes"].toIntVector();
      bias_dtype = static_cast<at::ScalarType>(ctx->saved_data["bias_dtype"].toInt());
    }
    variable_list out(5);  // weight, bias, x, x again, the arguments
    const at::Tensor& dy = grads[0];
    if (at::GradMode::is_enabled() || !dense(dy)) {  // create_graph=True, or another dy
      std::optional<at::Tensor> bias_stand_in;  // its shape and dtype (values are not read)
      if (has_bias) {
        bias_stand_in = at::zeros(bias_sizes, x.options().dtype(bias_dtype)).requires_grad_(need_b);
      }
      static const auto graph_backward =
          c10::Dispatcher::singleton()
              .findSchemaOrThrow("rmsnorm_bridge::rmsnorm_graph_backward", "")
              .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
                  const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                  const std::optional<at::Tensor>&, int64_t, bool, bool, bool)>();
      // (dx, dx2, dweight, dbias): those not asked for are empty stand-ins
      auto [dx, dx2, dw, db] =
          graph_backward.call(dy, x, present(weight), bias_stand_in,
                              ctx->saved_data["plan"].toInt(), need_x, need_w, need_b);
      if (need_w) out[0] = dw;
      if (need_b) out[1] = db;
      if (need_x) {
        out[2] = dx;
        if (two_dx) out[3] = dx2;
      }
      return out;
    }
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    const at::ScalarType scale_dtype = has_weight && !has_bias && (flags & kHalfScale) != 0
                                           ? weight.scalar_type()
                                           : at::kFloat;
    const std::vector<int64_t> block = ctx->saved_data["block"].toIntVector();
    auto [dx, dgain, dbias, dx2] = rmsnorm_backward(
        dy, x, saved[2], block, gain_of(present(weight), ctx->saved_data["offset"].toDouble()),
        has_bias, (flags & kRoundMid) != 0,
        static_cast<at::ScalarType>(ctx->saved_data["mid"].toInt()), (flags & kInverse) != 0,
        scale_dtype, need_x, need_w, need_b, two_dx);
    if (need_w) out[0] = dgain.to(weight.scalar_type()).reshape(weight.sizes());
    if (need_b) out[1] = dbias.to(bias_dtype).reshape(bias_sizes);
    if (need_x) {
      out[2] = dx;
      out[3] = dx2;
    }
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
  // the node's own copy where the graph path saves none of x itself (and always of an
  // inference tensor, which autograd cannot save), recorded, so higher orders reach x
  const at::Tensor saved_x = two_dx && x.requires_grad() && !x.is_inference() ? x : x.clone();
  std::optional<at::Tensor> saved_w = weight;
  if (weight.has_value() && weight->defined() &&
      (offset != 0.0 || (weight->scalar_type() != at::kFloat && !half_scale))) {
    saved_w = weight->clone();  // the graph path saves offset + w, or f(w), not w
  }
  return NormFunction::apply(saved_w, bias, saved_x, saved_x,
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
      "bool need_x, bool need_weight, bool need_bias) -> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(rmsnorm_bridge, CPU, m) { m.impl("rmsnorm", &rmsnorm_plain); }

TORCH_LIBRARY_IMPL(rmsnorm_bridge, Autograd, m) { m.impl("rmsnorm", &rmsnorm_autograd); }
