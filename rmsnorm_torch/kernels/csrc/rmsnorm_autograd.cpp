// rmsnorm_bridge::rmsnorm: the CPU operator as one call per forward, with its autograd
// node in C++, so a call that autograd records costs no Python beyond the call itself.
//
// Without autograd it is rmsnorm_forward's y. With it, the node (the same as the
// pure-Python fallback's, kernels/_cpu_norm.py's _CpuNorm) takes:
// - the bias, then the weight, then x: the engine readies their gradients in that order,
//   as the graph path's nodes do, so hooks run in the upstream's order;
// - x a second time where x reaches the graph path's result along two paths (two_dx: a
//   float32 x, T5's half x), so autograd adds the two partial gradients one at a time
//   into x's gradient, as the graph path's nodes deliver them;
// and saves what the graph path saves: x itself only where two_dx and x requires grad
// (else a recorded clone: the graph path saves a widened copy or a product, so an
// in-place update of x between forward and backward stays allowed, and higher orders
// reach x through the clone); the weight only where x's gradient reads it, itself only
// where the graph path saves it (a float32 w without an offset, Llama's half-precision
// scale), else a recorded clone; never the bias (their shape and dtype instead).
// Backward is one call of rmsnorm_backward, whose bits are the graph path's, on a dense,
// contiguous dy (what training losses give). Any other dy (transposed, expanded,
// batched under is_grads_batched) and a backward that builds a graph (create_graph=True)
// call rmsnorm_graph_backward, whose kernel kernels/_cpu_norm.py registers in Python:
// autograd of the graph path itself on the call's plan (`plan`, a handle that module
// hands out), whose reductions follow dy's own layout as the upstream's do, and which is
// differentiable in turn. The kernels are called through the dispatcher (forward_op).
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

enum Flag : int64_t {
  kRoundMid = 1,
  kInverse = 2,
  kTwoDx = 4,
  kHalfScale = 8,
  kBias = 16,
  kWeight = 32,
};

// The operator's kernels through the dispatcher (not as C++ calls): a Python dispatch
// mode (selective activation checkpointing, a flop counter) then sees one operator call,
// not the ATen ops inside it, which run partly on the workers of one parallel region,
// where no mode is installed (a mode would see a different subset on each call).
const c10::TypedOperatorHandle<decltype(rmsnorm_forward)>& forward_op() {
  static const auto op = c10::Dispatcher::singleton()
                              .findSchemaOrThrow("rmsnorm_bridge::rmsnorm_forward", "")
                              .typed<decltype(rmsnorm_forward)>();
  return op;
}

const c10::TypedOperatorHandle<decltype(rmsnorm_backward)>& backward_op() {
  static const auto op = c10::Dispatcher::singleton()
                              .findSchemaOrThrow("rmsnorm_bridge::rmsnorm_backward", "")
                              .typed<decltype(rmsnorm_backward)>();
  return op;
}

using GraphBackward = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
    const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
    const std::optional<at::Tensor>&, double, int64_t, bool, bool, bool);

const c10::TypedOperatorHandle<GraphBackward>& graph_backward_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("rmsnorm_bridge::rmsnorm_graph_backward", "")
                             .typed<GraphBackward>();
  return op;
}

// A stand-in of a parameter that no gradient reads, of its shape and dtype.
at::Tensor stand_in(AutogradContext* ctx, const char* sizes, const char* dtype,
                    const at::Tensor& like, bool requires_grad) {
  const auto kind = static_cast<at::ScalarType>(ctx->saved_data[dtype].toInt());
  return at::zeros(ctx->saved_data[sizes].toIntVector(), like.options().dtype(kind))
      .requires_grad_(requires_grad);
}

class NormFunction : public torch::autograd::Function<NormFunction> {
 public:
  // x_stat: x again where it has two paths (two_dx), else absent (one edge to x's node)
  static at::Tensor forward(AutogradContext* ctx, const std::optional<at::Tensor>& bias,
                            const std::optional<at::Tensor>& weight, const at::Tensor& x,
                            const std::optional<at::Tensor>& /*x_stat*/, const Args& a) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [y, inv] = forward_op().call(x, a.block, gain_of(weight, a.offset), bias, a.eps,
                                      a.round_mid, a.mid, a.out_dtype, a.inverse);
    // the weight only where x's gradient reads it (as the graph path's product saves it
    // only then), and never the bias (no gradient reads its values): an in-place update
    // of either between forward and backward is allowed where the graph path allows it
    const bool has_weight = weight.has_value() && weight->defined();
    const bool has_bias = bias.has_value() && bias->defined();
    ctx->save_for_backward({x, has_weight && x.requires_grad() ? *weight : at::Tensor(), inv});
    ctx->saved_data["block"] = a.block;
    ctx->saved_data["eps"] = a.eps;
    ctx->saved_data["offset"] = a.offset;
    ctx->saved_data["mid"] = static_cast<int64_t>(a.mid);
    ctx->saved_data["plan"] = a.plan;
    ctx->saved_data["flags"] = (a.round_mid ? kRoundMid : 0) | (a.inverse ? kInverse : 0) |
                               (a.two_dx ? kTwoDx : 0) | (a.half_scale ? kHalfScale : 0) |
                               (has_bias ? kBias : 0) | (has_weight ? kWeight : 0);
    if (has_weight) {
      ctx->saved_data["weight_sizes"] = weight->sizes().vec();
      ctx->saved_data["weight_dtype"] = static_cast<int64_t>(weight->scalar_type());
    }
    if (has_bias) {
      ctx->saved_data["bias_sizes"] = bias->sizes().vec();
      ctx->saved_data["bias_dtype"] = static_cast<int64_t>(bias->scalar_type());
    }
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const int64_t flags = ctx->saved_data["flags"].toInt();
    const bool has_weight = (flags & kWeight) != 0;
    const bool has_bias = (flags & kBias) != 0;
    const bool two_dx = (flags & kTwoDx) != 0;
    // edges: the bias and the weight where present, then x (and x again where two_dx)
    const size_t x_edge = static_cast<size_t>(has_weight) + static_cast<size_t>(has_bias);
    const bool need_b = has_bias && ctx->needs_input_grad(0);
    const bool need_w = has_weight && ctx->needs_input_grad(has_bias ? 1 : 0);
    const bool need_x = ctx->needs_input_grad(x_edge);
    at::Tensor weight = saved[1];
    if (has_weight && !weight.defined()) {  // not saved: only its gradient is asked for
      weight = stand_in(ctx, "weight_sizes", "weight_dtype", x, need_w);
    }
    variable_list out(5);  // bias, weight, x, x again, the arguments
    const at::Tensor& dy = grads[0];
    if (at::GradMode::is_enabled() || !dense(dy)) {  // create_graph=True, or another dy
      std::optional<at::Tensor> bias;
      if (has_bias) bias = stand_in(ctx, "bias_sizes", "bias_dtype", x, need_b);
      // (dx, dx2, dweight, dbias): those not asked for are empty stand-ins
      auto [dx, dx2, dw, db] = graph_backward_op().call(
          dy, x, present(weight), bias, ctx->saved_data["eps"].toDouble(),
          ctx->saved_data["plan"].toInt(), need_x, need_w, need_b);
      if (need_b) out[0] = db;
      if (need_w) out[1] = dw;
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
    auto [dx, dgain, dbias, dx2] = backward_op().call(
        dy, x, saved[2], block, gain_of(present(weight), ctx->saved_data["offset"].toDouble()),
        has_bias, (flags & kRoundMid) != 0,
        static_cast<at::ScalarType>(ctx->saved_data["mid"].toInt()), (flags & kInverse) != 0,
        scale_dtype, need_x, need_w, need_b, two_dx);
    if (need_b) {
      const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["bias_dtype"].toInt());
      out[0] = dbias.to(dtype).reshape(ctx->saved_data["bias_sizes"].toIntVector());
    }
    if (need_w) out[1] = dgain.to(weight.scalar_type()).reshape(weight.sizes());
    if (need_x) {
      out[2] = dx;
      if (two_dx) out[3] = dx2;
    }
    return out;
  }
};

at::Tensor rmsnorm_plain(const at::Tensor& x, at::IntArrayRef block,
                         const std::optional<at::Tensor>& weight,
                         const std::optional<at::Tensor>& bias, double eps, double offset,
                         bool round_mid, at::ScalarType mid, at::ScalarType out_dtype, bool inverse,
                         bool /*two_dx*/, bool /*half_scale*/, int64_t /*plan*/) {
  return std::get<0>(forward_op().call(x, block, gain_of(weight, offset), bias, eps, round_mid,
                                       mid, out_dtype, inverse));
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
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("rmsnorm_bridge::rmsnorm", "")
                               .typed<decltype(rmsnorm_plain)>();
    return op.call(x, block, weight, bias, eps, offset, round_mid, mid, out_dtype, inverse,
                   two_dx, half_scale, plan);
  }
  // the node's own copy where the graph path saves none of x itself (and always of an
  // inference tensor, which autograd cannot save), recorded, so higher orders reach x
  const at::Tensor saved_x = two_dx && x.requires_grad() && !x.is_inference() ? x : x.clone();
  std::optional<at::Tensor> saved_w = weight;
  if (x.requires_grad() && weight.has_value() && weight->defined() &&
      (offset != 0.0 || (weight->scalar_type() != at::kFloat && !half_scale))) {
    saved_w = weight->clone();  // the graph path saves offset + w, or f(w), not w
  }
  const std::optional<at::Tensor> x_stat =
      two_dx ? std::optional<at::Tensor>(saved_x) : std::nullopt;
  return NormFunction::apply(bias, saved_w, saved_x, x_stat,
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
      "rmsnorm_graph_backward(Tensor dy, Tensor x, Tensor? weight, Tensor? bias, float eps, "
      "int plan, bool need_x, bool need_weight, bool need_bias) "
      "-> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(rmsnorm_bridge, CPU, m) { m.impl("rmsnorm", &rmsnorm_plain); }

TORCH_LIBRARY_IMPL(rmsnorm_bridge, Autograd, m) { m.impl("rmsnorm", &rmsnorm_autograd); }
