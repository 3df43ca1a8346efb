// Sums in ATen's order, without the full-size tensors ATen would sum.
//
// The weight's gradient over rows. Autograd sums the gain's gradient products p
// (rows, n) over rows with at::sum_to, whose CPU kernel (cascade_sum, SumKernel.cpp)
// adds each column's rows in groups of L = 2^max(4, ceil_log2(rows) / 4): a group's rows
// one after another from +0, then the group sums into three levels (a level-1 sum takes
// L groups, a level-2 sum L level-1 sums, the rest go to level 3), and at the end
// ((tail + level 1) + level 2) + level 3, stored as 0 + that. That holds for the columns
// its vector loop takes in blocks of four vectors; the others (a block's remainder) are
// summed in four interleaved streams. With ATen's 8-lane float accumulators, and the
// threads' column ranges cut at multiples of 128 bytes, a column count that is a
// multiple of 32 puts every column in a block, at any thread count.
//
// So the backward adds each chunk's products into its groups' sums as it makes them
// (the chunks are whole groups), and finish_columns finishes them: the bits of
// at::sum_to(p), with one pass over the inputs instead of a full-size p written and read
// back. Whether this process's at::sum adds in that order is checked once per dtype
// (column_order_holds: the model against at::sum on probe matrices whose sums differ by
// order); where it does not (another vector width, another torch), and where the
// column count is not a multiple of 32, the backward keeps p and at::sum_to.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace sums {

// acc + v as at::sum's running sums add where both are NaN: acc's NaN is kept (measured
// on torch 2.13: the first row's NaN; x86 keeps one source operand's NaN, and a compiler
// may order an addition's operands either way, so the choice is written out).
inline float add_kept(float acc, float v) { return std::isnan(acc) ? acc : acc + v; }

// ATen's groups for a sum of `count` terms (multi_row_sum): groups of length
// 2^max(4, ceil_log2(count) / 4), whose sums go to level 1; after the group ending at
// term i, carries(i) levels take their sums up (1: the group's into level 1; 2: level 1
// into level 2 too, at every length-th group; 3: level 2 into level 3 too, at every
// length^2-th).
struct Groups {
  int64_t length, power;
  explicit Groups(int64_t count) {
    const int64_t ceil_log2 =
        count <= 2 ? 1 : 64 - __builtin_clzll(static_cast<uint64_t>(count - 1));
    power = std::max<int64_t>(4, ceil_log2 / 4);
    length = int64_t(1) << power;
  }
  int carries(int64_t i) const {
    const int64_t mask = length - 1;
    if ((i & (mask << power)) != 0) return 1;
    if ((i & (mask << (2 * power))) != 0) return 2;
    return 3;
  }
  int64_t count_of(int64_t terms) const { return (terms + length - 1) / length; }
};

// The column sums from the groups' sums `partial` (Groups(rows).count_of(rows) rows of n
// floats, each its rows added in order from +0), in cascade_sum's order.
inline void finish_columns(const float* partial, int64_t rows, int64_t n, float* out) {
  const Groups groups(rows);
  const int64_t full = rows / groups.length;
  std::vector<float> level(3 * n, 0.0f);
  float* a1 = level.data();
  float* a2 = a1 + n;
  float* a3 = a2 + n;
  for (int64_t k = 0; k < full; ++k) {
    const float* g = partial + k * n;
    const int carries = groups.carries((k + 1) * groups.length);
    for (int64_t j = 0; j < n; ++j) a1[j] = add_kept(a1[j], g[j]);
    if (carries < 2) continue;
    for (int64_t j = 0; j < n; ++j) {
      a2[j] = add_kept(a2[j], a1[j]);
      a1[j] = 0.0f;
    }
    if (carries < 3) continue;
    for (int64_t j = 0; j < n; ++j) {
      a3[j] = add_kept(a3[j], a2[j]);
      a2[j] = 0.0f;
    }
  }
  const float* tail = rows % groups.length != 0 ? partial + full * n : nullptr;
  for (int64_t j = 0; j < n; ++j) {
    const float a0 = tail != nullptr ? tail[j] : 0.0f;
    out[j] = 0.0f + add_kept(add_kept(add_kept(a0, a1[j]), a2[j]), a3[j]);
  }
}

// Probe values: count floats over 24 binades, both signs, from a linear congruential
// state (the same values in every process).
inline void probe_values(float* d, int64_t count, uint64_t& state) {
  for (int64_t k = 0; k < count; ++k) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const float unit = static_cast<float>(state >> 40) / static_cast<float>(1 << 24);
    d[k] = std::ldexp(unit - 0.5f, static_cast<int>((state >> 20) % 24) - 12);
  }
}

// The model's sums of a (rows, n) float matrix holding values of dtype t, as t.
inline at::Tensor model_column_sums(const at::Tensor& p) {
  const at::Tensor wide = p.to(at::kFloat).contiguous();
  const int64_t rows = wide.size(0), n = wide.size(1);
  const int64_t l = Groups(rows).length;
  std::vector<float> partial(Groups(rows).count_of(rows) * n, 0.0f);
  const float* v = wide.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    float* g = partial.data() + (r / l) * n;
    for (int64_t j = 0; j < n; ++j) g[j] = add_kept(g[j], v[r * n + j]);
  }
  at::Tensor out = at::empty({n}, wide.options());
  finish_columns(partial.data(), rows, n, out.data_ptr<float>());
  return out.to(p.scalar_type());
}

// Whether at::sum over rows gives the model's bits for dtype t (float32, bfloat16 or
// float16), found once per process on probe matrices: values over many binades, 96
// columns (three blocks of 32: a 16-lane kernel would stream the last 32), row counts
// with and without a tail, below and above ATen's parallel grain, reaching each level.
inline bool probe_columns(at::ScalarType t) {
  at::NoGradGuard no_grad;
  uint64_t state = 0x9E3779B97F4A7C15ull;
  for (const int64_t rows : {37, 300, 1100, 4100}) {
    const int64_t n = 96;
    at::Tensor p = at::empty({rows, n}, at::TensorOptions().dtype(at::kFloat));
    probe_values(p.data_ptr<float>(), rows * n, state);
    p = p.to(t);
    const at::Tensor aten = at::sum(p, {0});
    const at::Tensor model = model_column_sums(p);
    if (std::memcmp(aten.data_ptr(), model.data_ptr(), n * aten.element_size()) != 0) return false;
  }
  return true;
}

inline bool column_order_holds(at::ScalarType t) {
  if (t == at::kFloat) {
    static const bool f32 = probe_columns(at::kFloat);
    return f32;
  }
  if (t == at::kBFloat16) {
    static const bool bf16 = probe_columns(at::kBFloat16);
    return bf16;
  }
  static const bool f16 = probe_columns(at::kHalf);
  return f16;
}

}  // namespace sums
