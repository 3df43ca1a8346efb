// The native CPU kernel: one operator call per forward and one per backward.
//
// Rows are cut into chunks of about 64 Ki elements (256 KiB of float32: in L2), and
// the threads of ONE at::parallel_for take chunks from a shared counter, so a thread
// that the OS deschedules (another process on the cores) leaves its chunks to the
// others instead of holding everyone at a barrier. Each step on a chunk is ATen's own
// op (mul, sum, div_, add_, rsqrt_, to) in the order rmsnorm_torch's graph path
// (kernels/_graph.py) runs them, so every bit equals that path's forward and, in
// backward, what autograd computes from it (derivatives.yaml: mul, rsqrt, mean, pow,
// _to_copy). Reductions over rows (the weight and bias gradients) run once, after the
// chunks, as autograd runs them: at::sum_to over the whole gradient.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <tuple>
#include <vector>

namespace {

// 64 Ki elements: 256 KiB of float32 per scratch block, in L2 (measured at [4096, 4096],
// 2 threads: forward over x.clone() 1.22 / 1.64 / 1.63 (fp32 / bf16 / fp16) at 64 Ki,
// 1.25 / 1.67 / 1.65 at 256 Ki, 1.38 / 1.55 / 1.54 at 1 Mi).
constexpr int64_t kChunkElements = 65536;

int64_t chunk_rows(int64_t n) { return std::max<int64_t>(1, kChunkElements / std::max<int64_t>(n, 1)); }

// One worker's float32 scratch blocks, allocated once per call and reused for every
// chunk it takes (a fresh 256 KiB allocation per chunk costs page faults).
class Scratch {
 public:
  Scratch(int64_t rows, int64_t n, const at::TensorOptions& options)
      : rows_(rows), n_(n), options_(options.dtype(at::kFloat)) {}
  at::Tensor get(size_t i, int64_t m) {
    if (blocks_.size() <= i) blocks_.resize(i + 1);
    if (!blocks_[i].defined()) blocks_[i] = at::empty({rows_, n_}, options_);
    return blocks_[i].narrow(0, 0, m);
  }

 private:
  int64_t rows_, n_;
  at::TensorOptions options_;
  std::vector<at::Tensor> blocks_;
};

// fn(start, stop, scratch) on every chunk of rows; the threads of one parallel region
// take chunks from a shared counter.
template <typename F>
void for_chunks(int64_t rows, int64_t n, const at::TensorOptions& options, const F& fn) {
  const int64_t step = chunk_rows(n);
  const int64_t chunks = (rows + step - 1) / step;
  if (chunks == 0) return;
  std::atomic<int64_t> next{0};
  const int64_t workers = std::min<int64_t>(chunks, at::get_num_threads());
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    // Thread-local state does not travel to OpenMP's workers, and the calling thread
    // works too: every worker sets the same (no autograd, no autocast), so each chunk's
    // ops are the plain ATen kernels whichever thread runs them.
    at::NoGradGuard no_grad;
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    Scratch scratch(std::min(step, rows), n, options);
    for (int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) {
      const int64_t start = c * step;
      fn(start, std::min(rows, start + step), scratch);
    }
  });
}

int64_t block_numel(at::IntArrayRef block) {
  int64_t n = 1;
  for (auto d : block) n *= d;
  return n;
}

bool half_or_single(at::ScalarType t) {
  return t == at::kFloat || t == at::kBFloat16 || t == at::kHalf;
}

void check_dtype(const char* name, at::ScalarType t) {
  TORCH_CHECK(half_or_single(t), "rmsnorm_bridge: ", name, " must be float32, bfloat16 or float16, got ",
              t);
}

void check_args(const at::Tensor& x, at::IntArrayRef block, const std::optional<at::Tensor>& gain) {
  check_dtype("x", x.scalar_type());
  TORCH_CHECK(x.device().is_cpu(), "rmsnorm_bridge: x must be a CPU tensor, got ", x.device());
  TORCH_CHECK(x.is_contiguous(), "rmsnorm_bridge: x must be contiguous");
  TORCH_CHECK(x.dim() >= static_cast<int64_t>(block.size()), "rmsnorm_bridge: x of rank ", x.dim(),
              " has fewer dims than the normalized block ", block);
  TORCH_CHECK(x.sizes().slice(x.dim() - block.size()).equals(block), "rmsnorm_bridge: x of shape ",
              x.sizes(), " does not end in the normalized sizes ", block);
  if (gain.has_value()) {
    TORCH_CHECK(gain->scalar_type() == at::kFloat && gain->sizes().equals(block),
                "rmsnorm_bridge: the gain must be float32 of shape ", block);
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> rmsnorm_forward(
    const at::Tensor& x, at::IntArrayRef block, const std::optional<at::Tensor>& gain,
    const std::optional<at::Tensor>& bias, double eps, bool round_mid, at::ScalarType mid,
    at::ScalarType out_dtype, bool inverse) {
  check_args(x, block, gain);
  check_dtype("mid", mid);
  check_dtype("out_dtype", out_dtype);
  if (bias.has_value()) {
    check_dtype("bias", bias->scalar_type());
    TORCH_CHECK(bias->sizes().equals(block), "rmsnorm_bridge: bias of shape ", bias->sizes(),
                " must have the normalized shape ", block);
  }
  at::NoGradGuard no_grad;
  const int64_t n = block_numel(block);
  at::Tensor y = at::empty(x.sizes(), x.options().dtype(out_dtype));
  const int64_t rows = n == 0 ? 0 : x.numel() / n;
  at::Tensor inv = at::empty({rows, 1}, x.options().dtype(at::kFloat));
  if (rows == 0 || n == 0) return {y, inv};
  const at::Tensor x2 = x.view({rows, n});
  at::Tensor y2 = y.view({rows, n});
  at::Tensor g = gain.has_value() ? gain->reshape({n}) : at::Tensor();
  at::Tensor b = bias.has_value() ? bias->reshape({n}).to(at::kFloat) : at::Tensor();
  const bool plain = !round_mid && !g.defined() && !b.defined() && out_dtype == at::kFloat;
  for_chunks(rows, n, x.options(), [&](int64_t start, int64_t stop, Scratch& scratch) {
    const int64_t m = stop - start;
    const at::Tensor xb = x2.slice(0, start, stop);
    at::Tensor h = xb;
    if (xb.scalar_type() != at::kFloat) h = scratch.get(1, m).copy_(xb);
    at::Tensor t = scratch.get(0, m);
    at::Tensor invb = inv.slice(0, start, stop);
    at::sum_out(invb, at::mul_out(t, h, h), {-1}, /*keepdim=*/true);
    invb.div_(n).add_(eps).rsqrt_();
    at::Tensor yb = y2.slice(0, start, stop);
    if (plain) {
      at::mul_out(yb, h, invb);
      return;
    }
    if (inverse && g.defined()) {
      at::mul_out(t, invb, g).mul_(h);  // h * (inv * g): flax's order
    } else {
      at::mul_out(t, h, invb);
      if (round_mid) t.copy_(t.to(mid));
      if (g.defined() && !b.defined() && out_dtype == at::kFloat) {
        at::mul_out(yb, t, g);
        return;
      }
      if (g.defined()) t.mul_(g);
    }
    if (b.defined()) t.add_(b);
    yb.copy_(t);
  });
  return {y, inv};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> rmsnorm_backward(
    const at::Tensor& dy, const at::Tensor& x, const at::Tensor& inv, at::IntArrayRef block,
    const std::optional<at::Tensor>& gain, bool has_bias, bool round_mid, at::ScalarType mid,
    bool inverse, at::ScalarType scale_dtype, bool need_dx, bool need_dgain, bool need_dbias,
    bool split_dx) {
  check_args(x, block, gain);
  check_dtype("dy", dy.scalar_type());
  check_dtype("mid", mid);
  check_dtype("scale_dtype", scale_dtype);
  TORCH_CHECK(dy.sizes().equals(x.sizes()), "rmsnorm_bridge: dy of shape ", dy.sizes(),
              " must have x's shape ", x.sizes());
  const int64_t expected_rows = block_numel(block) == 0 ? 0 : x.numel() / block_numel(block);
  TORCH_CHECK(inv.scalar_type() == at::kFloat && inv.dim() == 2 && inv.size(0) == expected_rows &&
                  inv.size(1) == 1 && inv.is_contiguous(),
              "rmsnorm_bridge: inv must be a contiguous float32 tensor of shape (", expected_rows,
              ", 1), got ", inv.scalar_type(), " of shape ", inv.sizes());
  at::NoGradGuard no_grad;
  const int64_t n = block_numel(block);
  const int64_t rows = n == 0 ? 0 : x.numel() / n;
  const at::Tensor dy2 = dy.contiguous().view(x.sizes());
  need_dgain = need_dgain && gain.has_value();
  at::Tensor dx = need_dx ? at::empty(x.sizes(), x.options()) : at::Tensor();
  at::Tensor p = need_dgain ? at::empty(x.sizes(), x.options().dtype(scale_dtype)) : at::Tensor();
  at::Tensor g = gain.has_value() ? gain->reshape({n}).contiguous() : at::Tensor();
  if (rows > 0 && n > 0 && (need_dx || need_dgain)) {
    const at::Tensor x2 = x.view({rows, n});
    const at::Tensor dy_rows = dy2.view({rows, n});
    for_chunks(rows, n, x.options(), [&](int64_t start, int64_t stop, Scratch& scratch) {
      const int64_t m = stop - start;
      const at::Tensor xb = x2.slice(0, start, stop);
      const at::Tensor h = xb.scalar_type() == at::kFloat ? xb : scratch.get(0, m).copy_(xb);
      const at::Tensor dyb = dy_rows.slice(0, start, stop);
      // the gradient reaching the float32 result: dy widened (ToCopyBackward)
      const at::Tensor gb = dyb.scalar_type() == at::kFloat ? dyb : scratch.get(1, m).copy_(dyb);
      const at::Tensor invb = inv.slice(0, start, stop);
      at::Tensor a = scratch.get(2, m);
      at::Tensor c = scratch.get(3, m);
      at::Tensor grad_r;
      if (inverse && g.defined()) {  // y = h * (inv * g)
        at::mul_out(a, gb, h);  // the gradient of inv * g
        if (need_dgain) {
          at::Tensor pb = p.view({rows, n}).slice(0, start, stop);
          at::mul_out(pb, a, invb);
        }
        if (!need_dx) return;
        grad_r = at::mul_out(c, a, g).sum({-1}, /*keepdim=*/true);
        at::mul_out(a, invb, g);
        at::mul_out(c, gb, a);  // grad_h1 = dy * (inv * g)
      } else {  // y = round_mid(h * inv) * g
        if (need_dgain) {
          at::mul_out(a, h, invb);
          if (round_mid) a.copy_(a.to(mid));
          at::Tensor pb = p.view({rows, n}).slice(0, start, stop);
          if (scale_dtype == at::kFloat) {
            at::mul_out(pb, gb, a);
          } else {  // the scale multiplied in half precision: so do its gradient's products
            at::mul_out(pb, dyb, a.to(scale_dtype));
          }
        }
        if (!need_dx) return;
        at::Tensor grad_y = gb;
        if (g.defined()) grad_y = at::mul_out(a, gb, g);
        if (round_mid) grad_y = a.copy_(grad_y.to(mid));  // the cast to mid, backward
        grad_r = at::mul_out(c, grad_y, h).sum({-1}, /*keepdim=*/true);
        at::mul_out(c, grad_y, invb);  // grad_h1
      }
      // rsqrt: -0.5 * grad * result^3; mean: expand, / n; pow(h, 2): grad * (2 * h)
      const at::Tensor grad_ms = at::mul(grad_r, -0.5).mul_(at::pow(invb, 3)).div_(n);
      at::mul_out(a, h, 2.0).mul_(grad_ms);
      at::Tensor dxb = dx.view({rows, n}).slice(0, start, stop);
      if (dxb.scalar_type() == at::kFloat) {
        at::add_out(dxb, c, a);
      } else if (split_dx) {
        // T5's x * rsqrt(...) takes x itself: autograd rounds the product's partial
        // gradient (c) and the statistic's (a, through _to_copy) to x's dtype, then adds
        dxb.copy_(c).add_(a.to(dxb.scalar_type()));
      } else {
        dxb.copy_(c.add_(a));
      }
    });
  }
  at::Tensor dgain = need_dgain ? at::sum_to(p, block) : at::Tensor();
  at::Tensor dbias = (need_dbias && has_bias) ? at::sum_to(dy2.to(at::kFloat), block) : at::Tensor();
  return {dx, dgain, dbias};
}

TORCH_LIBRARY(rmsnorm_bridge, m) {
  m.def(
      "rmsnorm_forward(Tensor x, int[] block, Tensor? gain, Tensor? bias, float eps, "
      "bool round_mid, ScalarType mid, ScalarType out_dtype, bool inverse) -> (Tensor, Tensor)");
  m.def(
      "rmsnorm_backward(Tensor dy, Tensor x, Tensor inv, int[] block, Tensor? gain, "
      "bool has_bias, bool round_mid, ScalarType mid, bool inverse, ScalarType scale_dtype, "
      "bool need_dx, "
      "bool need_dgain, bool need_dbias, bool split_dx) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(rmsnorm_bridge, CPU, m) {
  m.impl("rmsnorm_forward", &rmsnorm_forward);
  m.impl("rmsnorm_backward", &rmsnorm_backward);
}
