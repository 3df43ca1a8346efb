// The operator's two kernels (rmsnorm_cpu.cpp), shared with its autograd node
// (rmsnorm_autograd.cpp).
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <tuple>

std::tuple<at::Tensor, at::Tensor> rmsnorm_forward(
    const at::Tensor& x, at::IntArrayRef block, const std::optional<at::Tensor>& gain,
    const std::optional<at::Tensor>& bias, double eps, bool round_mid, at::ScalarType mid,
    at::ScalarType out_dtype, bool inverse);

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> rmsnorm_backward(
    const at::Tensor& dy, const at::Tensor& x, const at::Tensor& inv, at::IntArrayRef block,
    const std::optional<at::Tensor>& gain, bool has_bias, bool round_mid, at::ScalarType mid,
    bool inverse, at::ScalarType scale_dtype, bool need_dx, bool need_dgain, bool need_dbias,
    bool two_dx);
