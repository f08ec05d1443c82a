// The LibTorch-operations back end: per-tensor statistics built from ATen
// operations, so it runs on any device LibTorch supports (CUDA today, until
// the fused kernel of the CUDA issue replaces it there), and serves as the
// reference implementation the fused back ends are tested against.
//
// Norms come from at::_foreach_norm (one fused call for the whole list)
// where the LibTorch version has it and it accumulates in float32 or wider
// (torch_compat.hpp); otherwise, or with use_foreach = false, from one
// at::linalg_vector_norm per tensor with a float32 accumulator. Nothing here
// synchronises with the device: results stay on it until materialize().
//
// Memory: the other statistics use per-tensor temporaries (|x|, masks; a
// float32 copy of a float16 / bfloat16 tensor for stat_set::full), each at
// most the size of one tensor and released before the next tensor; no
// concatenation of the list.
#pragma once

#include <ATen/ATen.h>

#include <limits>
#include <vector>

#include "simic/reduce/backend.hpp"
#include "simic/sensors/torch_compat.hpp"

namespace simic {
inline namespace v0 {

struct torch_ops_backend {
  bool use_foreach = true;

  at::Tensor reduce(const reduce_request& r) const {
    detail::validate_request(r, "simic::torch_ops_backend::reduce");
    if (r.tensors.empty()) return detail::empty_stats();
    const std::size_t n = r.tensors.size();
    const auto dopt = at::TensorOptions().dtype(at::kDouble).device(r.tensors[0].device());
    constexpr double inf = std::numeric_limits<double>::infinity();

    // Squared norms: the fused foreach call where allowed, else per tensor.
    std::vector<at::Tensor> sumsq(n);
    if (use_foreach && detail::foreach_norm_available) {
      std::vector<at::Tensor> list;
      std::vector<std::size_t> where;
      for (std::size_t i = 0; i < n; ++i) {
        const at::Tensor& t = r.tensors[i];
        if (t.numel() > 0 && detail::foreach_norm_accepts(t.scalar_type())) {
          list.push_back(t);
          where.push_back(i);
        }
      }
      if (!list.empty()) {
        std::vector<at::Tensor> norms = detail::foreach_norm_float(list);
        for (std::size_t j = 0; j < where.size(); ++j) sumsq[where[j]] = norms[j].to(at::kDouble).square();
      }
    }

    std::vector<at::Tensor> rows;
    rows.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      const at::Tensor& t = r.tensors[i];
      if (t.numel() == 0) {
        at::Tensor row = at::zeros({stat::count}, dopt);
        row[stat::min].fill_(inf);
        row[stat::max].fill_(-inf);
        rows.push_back(row);
        continue;
      }
      if (!sumsq[i].defined()) sumsq[i] = detail::vector_norm_float(t).to(at::kDouble).square();
      const bool is_double = t.scalar_type() == at::kDouble;
      // Compares against the bounds happen in float32 (or float64), with
      // bounds rounded so that they count exactly as the CPU back end does.
      const at::Tensor x = (is_double || t.scalar_type() == at::kFloat) ? t : t.to(at::kFloat);
      const at::Tensor a = x.abs();
      auto d = [](const at::Tensor& v) { return v.to(at::kDouble); };
      std::vector<at::Tensor> cols(stat::count);
      cols[stat::sumsq] = sumsq[i].reshape({});
      cols[stat::max_abs] = d(at::nan_to_num(a, 0.0, inf, -inf).max());
      cols[stat::zeros] = d(t.eq(0).sum());
      cols[stat::nans] = d(t.isnan().sum());
      cols[stat::infs] = d(t.isinf().sum());
      cols[stat::numel] = at::scalar_tensor(static_cast<double>(t.numel()), dopt);
      if (r.set == stat_set::full) {
        cols[stat::sum] = x.sum(at::kDouble);
        cols[stat::min] = d(at::nan_to_num(x, inf, inf, -inf).min());
        cols[stat::max] = d(at::nan_to_num(x, -inf, inf, -inf).max());
        cols[stat::m2] = d(detail::population_var(x)) * static_cast<double>(t.numel());
        const double small = is_double ? r.small : static_cast<double>(detail::float_bound_for_less(r.small));
        const double large = is_double ? r.large : static_cast<double>(detail::float_bound_for_greater(r.large));
        cols[stat::small] = d(a.lt(small).sum());
        cols[stat::large] = d(a.gt(large).sum());
      } else {
        for (auto c : {stat::sum, stat::min, stat::max, stat::m2, stat::small, stat::large})
          cols[c] = at::zeros({}, dopt);
      }
      rows.push_back(at::stack(cols));
    }
    return at::stack(rows);
  }
};

}  // namespace v0
}  // namespace simic
