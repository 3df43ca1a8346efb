// The native CPU kernel: one operator call per forward and one per backward.
//
// Rows are cut into chunks of about 64 Ki elements (256 KiB of float32: in L2), and
// the threads of ONE at::parallel_for take chunks, each from its own lane first and
// then from the others' (Lanes), so a thread that the OS deschedules (another process
// on the cores) leaves its chunks to the others instead of holding everyone at a
// barrier. Every step on a chunk computes the
// bits of the graph path's ops (kernels/_graph.py) in their order: the elementwise
// steps as loops (each product, sum and conversion one IEEE operation, rounded as
// ATen's kernels round: square_rows, finish_rows, gradient_rows, dx_rows, and the
// per-row statistic's scalar steps), every sum over a row in at::sum's own order
// (row_sum, or at::sum itself), so that in backward every bit is what autograd computes
// from that path (derivatives.yaml: mul, rsqrt, mean, pow, _to_copy). Reductions over
// rows: the weight's gradient added up by row groups as the chunks make its products,
// finished in at::sum_to's order (rmsnorm_sums.h), or, where that order is not known to
// hold, at::sum_to over the stored products, as the bias's gradient is, once, after the
// chunks.
#include "rmsnorm_cpu.h"
#include "rmsnorm_sums.h"

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <vector>

#if defined(__AVX2__) && defined(__F16C__)
#include <immintrin.h>
#endif

namespace {

// 64 Ki elements: 256 KiB of float32 per scratch block, in L2. Chosen when each step
// was an ATen op (forward over x.clone() at [4096, 4096], 2 threads: 1.22 / 1.64 / 1.63
// fp32 / bf16 / fp16 at 64 Ki, 1.25 / 1.67 / 1.65 at 256 Ki, 1.38 / 1.55 / 1.54 at 1 Mi);
// not measured again since the steps became loops.
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

// The chunks in lanes, one per worker: lane w holds a contiguous run of chunks, which its
// worker takes front to back, so each thread writes its own region of the output (two
// threads first-touching pages of one region contend in the kernel's page-fault path,
// which is most of a fresh output's cost: forward over x.clone() at [4096, 4096], 2
// threads, median of 3 runs each, 1.13 / 1.30 / 1.22 (fp32 / bf16 / fp16) with one
// shared counter, 1.10 / 1.29 / 1.18 in lanes; software prefetch of the next chunk
// measured no better and was left out). A worker whose lane is empty takes chunks from the front of the others'
// lanes, so a thread that the OS deschedules (another process on the cores) leaves its
// chunks to the others instead of holding everyone at the region's barrier.
class Lanes {
 public:
  Lanes(int64_t chunks, int64_t workers) : workers_(workers), lanes_(new Lane[workers]) {
    for (int64_t w = 0; w < workers; ++w) {
      lanes_[w].next.store(w * chunks / workers, std::memory_order_relaxed);
      lanes_[w].end = (w + 1) * chunks / workers;
    }
  }
  // the next chunk for worker w (its own lane first, then the others'), or -1
  int64_t take(int64_t w) {
    for (int64_t k = 0; k < workers_; ++k) {
      Lane& lane = lanes_[(w + k) % workers_];
      const int64_t c = lane.next.fetch_add(1, std::memory_order_relaxed);
      if (c < lane.end) return c;
    }
    return -1;
  }

 private:
  struct Lane {
    std::atomic<int64_t> next{0};
    int64_t end = 0;
  };
  int64_t workers_;
  std::unique_ptr<Lane[]> lanes_;
};

// fn(start, stop, scratch) on every chunk of rows [start, stop), in lanes; every chunk
// but the last a multiple of `align` rows.
template <typename F>
void for_chunks(int64_t rows, int64_t n, const at::TensorOptions& options, const F& fn,
                int64_t align = 1) {
  const int64_t step = (chunk_rows(n) + align - 1) / align * align;
  const int64_t chunks = (rows + step - 1) / step;
  if (chunks == 0) return;
  const int64_t workers = std::min<int64_t>(chunks, at::get_num_threads());
  Lanes lanes(chunks, workers);
  // a call under torch.inference_mode() allocates inference tensors, which only code in
  // that mode may update in place (the per-row statistic is updated so)
  const bool inference = c10::InferenceMode::is_enabled();
  at::parallel_for(0, workers, 1, [&](int64_t first, int64_t last) {
    // Thread-local state does not travel to OpenMP's workers, and the calling thread
    // works too: every worker sets the same (the caller's inference mode, no autograd,
    // no autocast), so each chunk's ops are the plain ATen kernels whichever thread runs
    // them.
    std::optional<c10::InferenceMode> inference_mode;
    if (inference) inference_mode.emplace();
    at::NoGradGuard no_grad;
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    Scratch scratch(std::min(step, rows), n, options);
    // a thread given several workers' ids (a region run inline) serves them in turn
    for (int64_t w = first; w < last; ++w) {
      for (int64_t c = lanes.take(w); c >= 0; c = lanes.take(w)) {
        const int64_t start = c * step;
        fn(start, std::min(rows, start + step), scratch);
      }
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
    TORCH_CHECK(half_or_single(gain->scalar_type()) && gain->sizes().equals(block),
                "rmsnorm_bridge: the gain must be float32, bfloat16 or float16 of shape ", block);
  }
}

// The forward's elementwise steps, written as loops over a chunk: each widening and
// narrowing rounds to nearest even as ATen's kernels do, and each product or sum is one
// IEEE operation (no fused multiply-add: -ffp-contract=off), so every element is the
// bits of the ATen ops they replace (the graph path's order); the row sum stays ATen's
// at::sum, whose summation order is ATen's own. One pass reads x for the squares and
// one writes y, where the ATen form made six. With AVX2 and F16C (the build's flags on
// such a CPU: kernels/_cpu_op.py) eight lanes at a time, as ATen's AVX2 kernels convert
// (a NaN narrowed to bfloat16 may carry another payload, as in ATen's own vector body
// and tail); the tail, and every lane elsewhere, through c10's scalar conversions.
template <typename T>
inline float wide(T v) {
  return static_cast<float>(v);
}

#if defined(__AVX2__) && defined(__F16C__)
#define RMSNORM_LANES 8

inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const c10::BFloat16* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
}
inline __m256 load8(const c10::Half* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// bfloat16 bits in 32-bit lanes: (u + 0x7fff + ((u >> 16) & 1)) >> 16, a NaN 0xffff
// (ATen's cvtfp32_bf16)
inline __m256i bf16_lanes(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i biased = _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb);
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  return _mm256_blendv_epi8(_mm256_srli_epi32(biased, 16), _mm256_set1_epi32(0xffff), nan);
}

inline void store8(float* p, __m256 v) { _mm256_storeu_ps(p, v); }
inline void store8(c10::BFloat16* p, __m256 v) {
  const __m256i r = bf16_lanes(v);
  const __m128i packed =
      _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), packed);
}
inline void store8(c10::Half* p, __m256 v) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}

// Sixteen lanes, the same bits as two store8: bfloat16's two halves packed in one step.
template <typename Out>
inline void store16(Out* p, __m256 lo, __m256 hi) {
  store8(p, lo);
  store8(p + 8, hi);
}
template <>
inline void store16(c10::BFloat16* p, __m256 lo, __m256 hi) {
  // packus works within 128-bit halves: lo0 hi0 lo1 hi1, put back in order by the permute
  const __m256i packed = _mm256_packus_epi32(bf16_lanes(lo), bf16_lanes(hi));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm256_permute4x64_epi64(packed, 0xD8));
}
#else
#define RMSNORM_LANES 0
#endif

struct NoRound {
  static float apply(float v) { return v; }
#if RMSNORM_LANES
  static __m256 apply8(__m256 v) { return v; }
#endif
};

template <typename M>
struct RoundTo {
  static float apply(float v) { return static_cast<float>(static_cast<M>(v)); }
#if RMSNORM_LANES
  static __m256 apply8(__m256 v) {
    if constexpr (std::is_same_v<M, float>) {
      return v;
    } else if constexpr (std::is_same_v<M, c10::Half>) {
      return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    } else {
      return _mm256_castsi256_ps(_mm256_slli_epi32(bf16_lanes(v), 16));
    }
  }
#endif
};

template <typename In>
void square_rows(const In* x, float* t, int64_t count) {
  int64_t i = 0;
#if RMSNORM_LANES
  for (; i + RMSNORM_LANES <= count; i += RMSNORM_LANES) {
    const __m256 h = load8(x + i);
    store8(t + i, _mm256_mul_ps(h, h));
  }
#endif
  for (; i < count; ++i) {
    const float h = wide(x[i]);
    t[i] = h * h;
  }
}

// A row's sum in ATen's order (at::sum over the last dim of a contiguous float32 matrix
// with n >= 8 columns: vectorized_inner_sum with 8-lane accumulators, SumKernel.cpp),
// of values src gives (the squares of x's row, or a scratch row as it is), without
// storing them or calling ATen: the row's n / 8 vectors go to four streams in turn (up to
// the last whole round of four; the vectors after it to stream 0 later), each stream's
// vectors added in multi_row_sum's groups and levels (sums::Groups), the streams
// added 0 + 1 + 2 + 3; then the n % 8 values after the vectors from +0, then the eight
// lanes in order; stored as 0 + that. Whether this process's at::sum adds so is checked
// once (row_order_holds); where it does not, or n is below 8 or at ATen's parallel grain
// (32768: a one-row sum may be split across threads), the chunk's sum stays at::sum.
#if RMSNORM_LANES
struct V8 {
  __m256 v;
  static V8 zero() { return {_mm256_setzero_ps()}; }
  V8 operator+(V8 o) const { return {_mm256_add_ps(v, o.v)}; }
  void store(float* out) const { _mm256_storeu_ps(out, v); }
};
template <typename In>
inline V8 square8(const In* p) {
  const __m256 h = load8(p);
  return {_mm256_mul_ps(h, h)};
}
inline V8 plain8(const float* p) { return {_mm256_loadu_ps(p)}; }
#else
struct V8 {
  float v[8];
  static V8 zero() { return {}; }
  V8 operator+(const V8& o) const {
    V8 r;
    for (int k = 0; k < 8; ++k) r.v[k] = v[k] + o.v[k];
    return r;
  }
  void store(float* out) const { std::copy(v, v + 8, out); }
};
template <typename In>
inline V8 square8(const In* p) {
  V8 r;
  for (int k = 0; k < 8; ++k) r.v[k] = wide(p[k]) * wide(p[k]);
  return r;
}
inline V8 plain8(const float* p) {
  V8 r;
  std::copy(p, p + 8, r.v);
  return r;
}
#endif

// The values a row sum adds: x's squares, or a float32 row as it is.
template <typename In>
struct Squares {
  const In* x;
  V8 vec(int64_t k) const { return square8(x + k); }
  float one(int64_t k) const { return wide(x[k]) * wide(x[k]); }
};
struct Values {
  const float* x;
  V8 vec(int64_t k) const { return plain8(x + k); }
  float one(int64_t k) const { return x[k]; }
};

constexpr int64_t kRowSumMax = 32768;  // ATen's GRAIN_SIZE

template <typename Src>
float row_sum(const Src& src, int64_t n) {
  const int64_t vecs = n / 8, per = vecs / 4;
  const sums::Groups groups(per);
  V8 acc[4][4];  // [level][stream]
  for (auto& level : acc)
    for (auto& a : level) a = V8::zero();
  int64_t i = 0;
  for (; i + groups.length <= per;) {
    for (int64_t j = 0; j < groups.length; ++j, ++i) {
      for (int s = 0; s < 4; ++s) acc[0][s] = acc[0][s] + src.vec((i * 4 + s) * 8);
    }
    const int carries = groups.carries(i);
    for (int level = 1; level <= carries; ++level) {
      for (int s = 0; s < 4; ++s) {
        acc[level][s] = acc[level][s] + acc[level - 1][s];
        acc[level - 1][s] = V8::zero();
      }
    }
  }
  for (; i < per; ++i) {
    for (int s = 0; s < 4; ++s) acc[0][s] = acc[0][s] + src.vec((i * 4 + s) * 8);
  }
  for (int level = 1; level < 4; ++level) {
    for (int s = 0; s < 4; ++s) acc[0][s] = acc[0][s] + acc[level][s];
  }
  for (int64_t v = per * 4; v < vecs; ++v) acc[0][0] = acc[0][0] + src.vec(v * 8);
  V8 total = acc[0][0];
  for (int s = 1; s < 4; ++s) total = total + acc[0][s];
  float f = 0.0f;
  for (int64_t k = vecs * 8; k < n; ++k) f += src.one(k);
  float lanes[8];
  total.store(lanes);
  for (int k = 0; k < 8; ++k) f += lanes[k];
  return 0.0f + f;
}

// Whether at::sum over rows' last dim adds as row_sum does, found once per process on
// probe rows: values over many binades, lengths with and without a vector tail, a scalar
// tail, a stream tail, and each level of the groups.
bool row_order_holds() {
  static const bool holds = [] {
    at::NoGradGuard no_grad;
    uint64_t state = 0x2545F4914F6CDD1Dull;
    for (const int64_t n : {8, 13, 37, 100, 131, 1000, 4096, 4103, 8200, 20011}) {
      at::Tensor t = at::empty({3, n}, at::TensorOptions().dtype(at::kFloat));
      float* d = t.data_ptr<float>();
      sums::probe_values(d, 3 * n, state);
      const at::Tensor aten = at::sum(t, {-1});
      for (int64_t r = 0; r < 3; ++r) {
        const float ours = row_sum(Values{d + r * n}, n);
        if (std::memcmp(&ours, aten.data_ptr<float>() + r, sizeof(float)) != 0) return false;
      }
    }
    return true;
  }();
  return holds;
}

// Whether a row of n takes row_sum (else at::sum on a scratch).
bool own_row_sums(int64_t n) { return n >= 8 && n < kRowSumMax && row_order_holds(); }

// y = out(round(h * inv) * g + b), or out(h * (inv * g) + b) for flax's order.
template <typename In, typename Out, typename Round>
void finish_rows(const In* x, Out* y, const float* inv, const float* g, const float* b,
                 int64_t m, int64_t n, bool inverse) {
  const bool fold = inverse && g != nullptr;
  const bool plain = !inverse && g != nullptr && b == nullptr;
  for (int64_t r = 0; r < m; ++r) {
    const float iv = inv[r];
    const In* xr = x + r * n;
    Out* yr = y + r * n;
    int64_t j = 0;
#if RMSNORM_LANES
    const __m256 ivv = _mm256_set1_ps(iv);
    if (plain) {  // the usual form, round(h * inv) * g, sixteen lanes a step
      for (; j + 2 * RMSNORM_LANES <= n; j += 2 * RMSNORM_LANES) {
        const __m256 lo = Round::apply8(_mm256_mul_ps(load8(xr + j), ivv));
        const __m256 hi = Round::apply8(_mm256_mul_ps(load8(xr + j + 8), ivv));
        store16(yr + j, _mm256_mul_ps(lo, load8(g + j)), _mm256_mul_ps(hi, load8(g + j + 8)));
      }
    }
    for (; j + RMSNORM_LANES <= n; j += RMSNORM_LANES) {
      const __m256 h = load8(xr + j);
      __m256 t;
      if (fold) {
        t = _mm256_mul_ps(_mm256_mul_ps(ivv, load8(g + j)), h);
      } else {
        t = Round::apply8(_mm256_mul_ps(h, ivv));
        if (g != nullptr) t = _mm256_mul_ps(t, load8(g + j));
      }
      if (b != nullptr) t = _mm256_add_ps(t, load8(b + j));
      store8(yr + j, t);
    }
#endif
    for (; j < n; ++j) {
      float t;
      if (fold) {
        t = (iv * g[j]) * wide(xr[j]);
      } else {
        t = Round::apply(wide(xr[j]) * iv);
        if (g != nullptr) t = t * g[j];
      }
      if (b != nullptr) t = t + b[j];
      yr[j] = static_cast<Out>(t);
    }
  }
}

// The backward's elementwise steps, as loops in the same way (the row sums and the
// statistic's gradient per row stay ATen's ops). RoundKind is the rounding to the spec's
// intermediate dtype, chosen per call (a predictable branch per lane group).
enum class RoundKind { kNone, kBFloat16, kHalf };

inline float round1(float v, RoundKind k) {
  if (k == RoundKind::kBFloat16) return RoundTo<c10::BFloat16>::apply(v);
  if (k == RoundKind::kHalf) return RoundTo<c10::Half>::apply(v);
  return v;
}

#if RMSNORM_LANES
inline __m256 round8(__m256 v, RoundKind k) {
  if (k == RoundKind::kBFloat16) return RoundTo<c10::BFloat16>::apply8(v);
  if (k == RoundKind::kHalf) return RoundTo<c10::Half>::apply8(v);
  return v;
}
#endif

struct Backward {
  const float* g;  // the float32 gain, or null
  RoundKind mid;   // round(h * inv) before the scale, and its gradient
  bool inverse;    // flax's h * (inv * g)
  bool need_dx;
  bool need_dgain;
};

// Where the gain's gradient products go: stored per element (pf in float32, or, where
// half, ph in dy's half dtype: the scale multiplied in it), or, where group_sums is
// given, added into their row group's sum (float32, a group's first row from +0:
// rmsnorm_sums.h), each product first rounded to dy's dtype where half. Rows r count
// from the chunk's first, which starts a group.
template <typename Dy>
struct Products {
  float* pf;
  Dy* ph;
  float* group_sums;
  int64_t group;
  bool half;

  void put(int64_t r, int64_t o, int64_t j, int64_t n, float v) const {
    if (group_sums == nullptr) {
      if (half) ph[o + j] = static_cast<Dy>(v);
      else pf[o + j] = v;
      return;
    }
    if (half) v = wide(static_cast<Dy>(v));
    float* s = group_sums + (r / group) * n + j;
    *s = sums::add_kept(r % group == 0 ? 0.0f : *s, v);
  }
#if RMSNORM_LANES
  void put8(int64_t r, int64_t o, int64_t j, int64_t n, __m256 v) const {
    if (group_sums == nullptr) {
      if (half) store8(ph + o + j, v);
      else store8(pf + o + j, v);
      return;
    }
    if (half) v = RoundTo<Dy>::apply8(v);
    float* s = group_sums + (r / group) * n + j;
    const __m256 acc = r % group == 0 ? _mm256_setzero_ps() : load8(s);
    // sums::add_kept in lanes: acc's NaN where acc is NaN
    const __m256 nan = _mm256_cmp_ps(acc, acc, _CMP_UNORD_Q);
    store8(s, _mm256_blendv_ps(_mm256_add_ps(acc, v), acc, nan));
  }
#endif
};

// Per element: the products whose row sums give the statistic's gradient (c), the
// gradient through the normalized product (h1) and the gain's gradient products (to p),
// as the ATen ops of the graph path's autograd compute them.
template <typename In, typename Dy>
void gradient_rows(const In* x, const Dy* dy, const float* inv, float* c, float* h1,
                   const Products<Dy>& p, int64_t m, int64_t n, const Backward& a) {
  const float* g = a.g;
  const bool fold = a.inverse && g != nullptr;
  for (int64_t r = 0; r < m; ++r) {
    const float iv = inv[r];
    const int64_t o = r * n;
    int64_t j = 0;
#if RMSNORM_LANES
    const __m256 ivv = _mm256_set1_ps(iv);
    for (; j + RMSNORM_LANES <= n; j += RMSNORM_LANES) {
      const __m256 h = load8(x + o + j);
      const __m256 d = load8(dy + o + j);
      if (fold) {  // a = dy * h; p = a * inv; c = a * g; h1 = dy * (inv * g)
        const __m256 dh = _mm256_mul_ps(d, h);
        if (a.need_dgain) p.put8(r, o, j, n, _mm256_mul_ps(dh, ivv));
        if (a.need_dx) {
          const __m256 gv = load8(g + j);
          store8(c + o + j, _mm256_mul_ps(dh, gv));
          store8(h1 + o + j, _mm256_mul_ps(d, _mm256_mul_ps(ivv, gv)));
        }
        continue;
      }
      if (a.need_dgain) {  // p = dy * round(h * inv), in dy's half dtype where it scaled
        const __m256 ym = round8(_mm256_mul_ps(h, ivv), a.mid);
        p.put8(r, o, j, n, _mm256_mul_ps(d, p.half ? RoundTo<Dy>::apply8(ym) : ym));
      }
      if (a.need_dx) {  // gy = round(dy * g); c = gy * h; h1 = gy * inv
        __m256 gy = g != nullptr ? _mm256_mul_ps(d, load8(g + j)) : d;
        gy = round8(gy, a.mid);
        store8(c + o + j, _mm256_mul_ps(gy, h));
        store8(h1 + o + j, _mm256_mul_ps(gy, ivv));
      }
    }
#endif
    for (; j < n; ++j) {
      const float h = wide(x[o + j]);
      const float d = wide(dy[o + j]);
      if (fold) {
        const float dh = d * h;
        if (a.need_dgain) p.put(r, o, j, n, dh * iv);
        if (a.need_dx) {
          c[o + j] = dh * g[j];
          h1[o + j] = d * (iv * g[j]);
        }
        continue;
      }
      if (a.need_dgain) {
        const float ym = round1(h * iv, a.mid);
        p.put(r, o, j, n, d * (p.half ? wide(static_cast<Dy>(ym)) : ym));
      }
      if (a.need_dx) {
        float gy = g != nullptr ? d * g[j] : d;
        gy = round1(gy, a.mid);
        c[o + j] = gy * h;
        h1[o + j] = gy * iv;
      }
    }
  }
}

// dx = h1 + (h * 2) * grad_ms, cast to x's dtype; or, where x reaches the result along
// two paths (dx2 given), the two terms apart, each cast to x's dtype: autograd then adds
// them where x's other gradients are, in the order the graph path's nodes deliver them.
template <typename In>
void dx_rows(const In* x, const float* h1, const float* grad_ms, In* dx, In* dx2, int64_t m,
             int64_t n) {
  for (int64_t r = 0; r < m; ++r) {
    const float gm = grad_ms[r];
    const int64_t o = r * n;
    int64_t j = 0;
#if RMSNORM_LANES
    const __m256 gmv = _mm256_set1_ps(gm);
    const __m256 two = _mm256_set1_ps(2.0f);
    for (; j + RMSNORM_LANES <= n; j += RMSNORM_LANES) {
      const __m256 t2 = _mm256_mul_ps(_mm256_mul_ps(load8(x + o + j), two), gmv);
      const __m256 t1 = load8(h1 + o + j);
      if (dx2 != nullptr) {
        store8(dx + o + j, t1);
        store8(dx2 + o + j, t2);
      } else {
        store8(dx + o + j, _mm256_add_ps(t1, t2));
      }
    }
#endif
    for (; j < n; ++j) {
      const float t2 = (wide(x[o + j]) * 2.0f) * gm;
      const float t1 = h1[o + j];
      if (dx2 != nullptr) {
        dx[o + j] = static_cast<In>(t1);
        dx2[o + j] = static_cast<In>(t2);
      } else {
        dx[o + j] = static_cast<In>(t1 + t2);
      }
    }
  }
}

// Calls fn with a typed pointer to t's data (float32, bfloat16 or float16).
template <typename F>
void with_data(const at::Tensor& t, const F& fn) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return fn(t.data_ptr<float>());
    case at::kBFloat16:
      return fn(t.data_ptr<c10::BFloat16>());
    default:
      return fn(t.data_ptr<c10::Half>());
  }
}

template <typename In, typename Out>
void finish_mid(const In* x, Out* y, const float* inv, const float* g, const float* b,
                int64_t m, int64_t n, bool inverse, bool round_mid, at::ScalarType mid) {
  if (!round_mid || mid == at::kFloat) {
    finish_rows<In, Out, NoRound>(x, y, inv, g, b, m, n, inverse);
  } else if (mid == at::kBFloat16) {
    finish_rows<In, Out, RoundTo<c10::BFloat16>>(x, y, inv, g, b, m, n, inverse);
  } else {
    finish_rows<In, Out, RoundTo<c10::Half>>(x, y, inv, g, b, m, n, inverse);
  }
}

// The per-row statistic from the row sums of squares s (in place): ATen's
// div_(n).add_(eps).rsqrt_() on them, as scalar steps, each one IEEE operation (a float
// scalar operand is rounded to float first; rsqrt is 1 / sqrt, both correctly rounded,
// in ATen's vector and scalar kernels alike). Per chunk this replaces three ATen calls
// on a handful of rows, whose dispatch cost more than their arithmetic.
inline void statistic_rows(float* s, int64_t m, int64_t n, double eps) {
  const float count = static_cast<float>(n);
  const float e = static_cast<float>(eps);
  for (int64_t r = 0; r < m; ++r) s[r] = 1.0f / std::sqrt(s[r] / count + e);
}

// The statistic's gradient from the row sums grad_r (in place): autograd's rsqrt then
// mean steps, mul(grad_r, -0.5).mul_(pow(inv, 3)).div_(n), as scalar steps (pow with
// exponent 3 is ATen's inv * inv * inv, left to right).
// ATen's product a * b of two NaNs is b's NaN (x86 keeps one source operand's NaN, and
// torch 2.13's compiled kernels, vector and scalar, order their operands so: measured);
// the compiler may order a product's operands either way, so where both can be NaN (a
// row holding NaN and both infinities) the choice is written out.
inline float aten_mul(float a, float b) { return std::isnan(b) ? b : a * b; }

inline void statistic_grad_rows(float* grad_r, const float* inv, int64_t m, int64_t n) {
  const float count = static_cast<float>(n);
  for (int64_t r = 0; r < m; ++r) {
    const float cube = inv[r] * inv[r] * inv[r];
    grad_r[r] = aten_mul(grad_r[r] * -0.5f, cube) / count;
  }
}

template <typename In>
void finish_out(const In* x, at::Tensor& y, const float* inv, const float* g, const float* b,
                int64_t m, int64_t n, bool inverse, bool round_mid, at::ScalarType mid) {
  switch (y.scalar_type()) {
    case at::kFloat:
      return finish_mid(x, y.data_ptr<float>(), inv, g, b, m, n, inverse, round_mid, mid);
    case at::kBFloat16:
      return finish_mid(x, y.data_ptr<c10::BFloat16>(), inv, g, b, m, n, inverse, round_mid, mid);
    default:
      return finish_mid(x, y.data_ptr<c10::Half>(), inv, g, b, m, n, inverse, round_mid, mid);
  }
}

// y laid out as the upstreams' elementwise ops (TensorIterator) lay it out from x: row-major
// where x's strides are (the usual case) or the block is one element (x * inv is then
// a same-shape product, which TensorIterator lays out row-major); else (a contiguous x
// whose size-1 dims carry other strides) the layout TensorIterator gives x * inv, taken
// from that product on meta tensors (no data). (An empty x: "auto" never gives it to
// this operator; the layout of an empty y follows no single upstream rule.)
bool row_major_strides(const at::Tensor& x) {
  int64_t expected = 1;
  for (int64_t d = x.dim() - 1; d >= 0; --d) {
    if (x.stride(d) != expected) return false;
    expected *= std::max<int64_t>(x.size(d), 1);
  }
  return true;
}

at::Tensor output_like(const at::Tensor& x, int64_t k, at::ScalarType dtype) {
  if (block_numel(x.sizes().slice(x.dim() - k)) == 1 || row_major_strides(x)) {
    return at::empty(x.sizes(), x.options().dtype(dtype));
  }
  const at::TensorOptions meta = x.options().device(at::kMeta).dtype(at::kFloat);
  std::vector<int64_t> rows_shape(x.sizes().begin(), x.sizes().end());
  std::fill(rows_shape.end() - k, rows_shape.end(), 1);
  const at::Tensor layout =
      at::mul(at::empty_strided(x.sizes(), x.strides(), meta), at::empty(rows_shape, meta));
  return at::empty_strided(x.sizes(), layout.strides(), x.options().dtype(dtype));
}

// A gain or bias as float32 values over the block (a half one widened: exact, as the
// graph path's f(w) and f(b)).
at::Tensor float_block(const std::optional<at::Tensor>& t, int64_t n) {
  if (!t.has_value()) return at::Tensor();
  const at::Tensor v = t->reshape({n});
  return (v.scalar_type() == at::kFloat ? v : v.to(at::kFloat)).contiguous();
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
  at::Tensor y = output_like(x, static_cast<int64_t>(block.size()), out_dtype);
  const int64_t rows = n == 0 ? 0 : x.numel() / n;
  at::Tensor inv = at::empty({rows, 1}, x.options().dtype(at::kFloat));
  if (rows == 0 || n == 0) return {y, inv};
  const at::Tensor g = float_block(gain, n);
  const at::Tensor b = float_block(bias, n);
  const float* gp = g.defined() ? g.data_ptr<float>() : nullptr;
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  // the steps on rows [start, start + m): the row sums of the squares into invb (by
  // row_sum, or as squares into the scratch t and at::sum), the statistic in place, the
  // finished rows into yb
  const bool own_sums = own_row_sums(n);
  const auto forward_rows = [&](int64_t start, int64_t m, const at::Tensor& t, at::Tensor& invb,
                                at::Tensor& yb) {
    with_data(x, [&](auto* xp) {
      const auto* xb = xp + start * n;
      using In = std::remove_pointer_t<decltype(xp)>;
      if (own_sums) {
        float* s = invb.data_ptr<float>();
        for (int64_t r = 0; r < m; ++r) s[r] = row_sum(Squares<In>{xb + r * n}, n);
      } else {
        square_rows(xb, t.data_ptr<float>(), m * n);
        at::sum_out(invb, t, {-1}, /*keepdim=*/true);
      }
      statistic_rows(invb.data_ptr<float>(), m, n, eps);
      finish_out(xb, yb, invb.data_ptr<float>(), gp, bp, m, n, inverse, round_mid, mid);
    });
  };
  if (rows <= chunk_rows(n)) {
    // one chunk (decode shapes): on the calling thread, with no views and no region,
    // whose set-up costs more than these rows' arithmetic
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    const at::Tensor t =
        own_sums ? at::Tensor() : at::empty({rows, n}, x.options().dtype(at::kFloat));
    forward_rows(0, rows, t, inv, y);
    return {y, inv};
  }
  at::Tensor y2 = y.view({rows, n});
  for_chunks(rows, n, x.options(), [&](int64_t start, int64_t stop, Scratch& scratch) {
    at::Tensor invb = inv.slice(0, start, stop);
    at::Tensor yb = y2.slice(0, start, stop);
    forward_rows(start, stop - start, own_sums ? at::Tensor() : scratch.get(0, stop - start), invb,
                 yb);
  });
  return {y, inv};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> rmsnorm_backward(
    const at::Tensor& dy, const at::Tensor& x, const at::Tensor& inv, at::IntArrayRef block,
    const std::optional<at::Tensor>& gain, bool has_bias, bool round_mid, at::ScalarType mid,
    bool inverse, at::ScalarType scale_dtype, bool need_dx, bool need_dgain, bool need_dbias,
    bool two_dx) {
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
  at::Tensor dx2 = need_dx && two_dx ? at::empty(x.sizes(), x.options()) : at::Tensor();
  // the gain's gradient: its products summed by row groups as they are made, where this
  // process's at::sum is known to add them in the order sums::finish_columns finishes
  // (every column in one of its blocks), a group of rows is at most four chunks' worth
  // (the chunks grow to whole groups) and x has dims before the block (else at::sum_to
  // sums nothing: the gradient is the products themselves, a -0 kept); else stored in
  // full for at::sum_to
  const int64_t group = rows > 0 ? sums::Groups(rows).length : 1;
  const bool grouped = need_dgain && rows > 0 && x.dim() > static_cast<int64_t>(block.size()) &&
                       n % 32 == 0 && n * group <= 4 * kChunkElements &&
                       sums::column_order_holds(scale_dtype);
  at::Tensor group_sums =
      grouped ? at::empty({sums::Groups(rows).count_of(rows), n}, x.options().dtype(at::kFloat))
              : at::Tensor();
  at::Tensor p = need_dgain && !grouped ? at::empty(x.sizes(), x.options().dtype(scale_dtype))
                                        : at::Tensor();
  const at::Tensor g = float_block(gain, n);
  if (rows > 0 && n > 0 && (need_dx || need_dgain)) {
    const at::Tensor x2 = x.view({rows, n});
    const at::Tensor dy_rows = dy2.view({rows, n});
    const RoundKind kind = !round_mid || mid == at::kFloat ? RoundKind::kNone
                           : mid == at::kBFloat16           ? RoundKind::kBFloat16
                                                            : RoundKind::kHalf;
    const Backward args{g.defined() ? g.data_ptr<float>() : nullptr, kind, inverse, need_dx,
                        need_dgain};
    // the gain's gradient products in dy's half dtype where the scale multiplied in it
    const bool p_half = need_dgain && scale_dtype != at::kFloat;
    TORCH_CHECK(!p_half || scale_dtype == dy.scalar_type(), "rmsnorm_bridge: scale_dtype ",
                scale_dtype, " must be float32 or dy's dtype ", dy.scalar_type());
    const bool own_sums = own_row_sums(n);
    for_chunks(rows, n, x.options(), [&](int64_t start, int64_t stop, Scratch& scratch) {
      const int64_t m = stop - start;
      at::Tensor c = scratch.get(0, m);
      at::Tensor h1 = scratch.get(1, m);
      const at::Tensor invb = inv.slice(0, start, stop);
      with_data(x2, [&](auto* xp) {
        with_data(dy_rows, [&](auto* dyp) {
          using Dy = std::remove_pointer_t<decltype(dyp)>;
          const bool stored = need_dgain && !grouped;
          const Products<Dy> products{
              stored && !p_half ? p.data_ptr<float>() + start * n : nullptr,
              stored && p_half ? p.data_ptr<Dy>() + start * n : nullptr,
              grouped ? group_sums.data_ptr<float>() + (start / group) * n : nullptr,
              group, p_half};
          gradient_rows(xp + start * n, dyp + start * n, invb.data_ptr<float>(),
                        c.data_ptr<float>(), h1.data_ptr<float>(), products, m, n, args);
        });
        if (!need_dx) return;
        // rsqrt: -0.5 * grad * result^3; mean: expand, / n; pow(h, 2): grad * (2 * h)
        std::vector<float> grad_ms(m);
        if (own_sums) {
          const float* cp = c.data_ptr<float>();
          for (int64_t r = 0; r < m; ++r) grad_ms[r] = row_sum(Values{cp + r * n}, n);
        } else {
          const at::Tensor s = c.sum({-1}, /*keepdim=*/true);
          std::copy(s.data_ptr<float>(), s.data_ptr<float>() + m, grad_ms.begin());
        }
        statistic_grad_rows(grad_ms.data(), invb.data_ptr<float>(), m, n);
        using In = std::remove_pointer_t<decltype(xp)>;
        In* second = dx2.defined() ? dx2.data_ptr<In>() + start * n : nullptr;
        dx_rows(xp + start * n, h1.data_ptr<float>(), grad_ms.data(),
                dx.data_ptr<In>() + start * n, second, m, n);
      });
    }, grouped ? group : 1);
  }
  at::Tensor dgain;
  if (grouped) {
    at::Tensor total = at::empty(block, x.options().dtype(at::kFloat));
    sums::finish_columns(group_sums.data_ptr<float>(), rows, n, total.data_ptr<float>());
    dgain = total.to(scale_dtype);
  } else if (need_dgain) {
    dgain = at::sum_to(p, block);
  }
  at::Tensor dbias = (need_dbias && has_bias) ? at::sum_to(dy2.to(at::kFloat), block) : at::Tensor();
  return {dx, dgain, dbias, dx2};
}

TORCH_LIBRARY(rmsnorm_bridge, m) {
  m.def(
      "rmsnorm_forward(Tensor x, int[] block, Tensor? gain, Tensor? bias, float eps, "
      "bool round_mid, ScalarType mid, ScalarType out_dtype, bool inverse) -> (Tensor, Tensor)");
  m.def(
      "rmsnorm_backward(Tensor dy, Tensor x, Tensor inv, int[] block, Tensor? gain, "
      "bool has_bias, bool round_mid, ScalarType mid, bool inverse, ScalarType scale_dtype, "
      "bool need_dx, "
      "bool need_dgain, bool need_dbias, bool two_dx) -> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(rmsnorm_bridge, CPU, m) {
  m.impl("rmsnorm_forward", &rmsnorm_forward);
  m.impl("rmsnorm_backward", &rmsnorm_backward);
}
