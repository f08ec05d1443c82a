// Host / module gradient ratio: how strong the gradients of a module (the
// reference's "seed") are compared with those of the host network it grows
// in, each normalised by its size:
//
//   ratio = (module_norm / sqrt(module_params)) / (host_norm / sqrt(host_params))
//
// where *_params counts scalar parameters (elements) with a gradient. Measure
// the host once per update (one read, one transfer) and reuse it for every
// module. No data (either side without parameters, or a zero host norm)
// gives an absent ratio, distinct from a ratio of 0.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "simic/reduce/auto_backend.hpp"
#include "simic/reduce/backend.hpp"
#include "simic/sensors/param_filter.hpp"
#include "simic/sensors/parameters.hpp"

namespace simic {
inline namespace v0 {

// Squared gradient norm and size of one network (or module).
struct gradient_mass {
  double squared_norm = 0.0;
  std::uint64_t parameters = 0;  // elements with a gradient
  std::uint64_t tensors = 0;     // tensors with a gradient
  std::uint64_t skipped_without_grad = 0;
  double norm() const noexcept { return std::sqrt(squared_norm); }
};

// The ratio above; std::nullopt when there is no data to compare.
inline std::optional<double> gradient_ratio(const gradient_mass& host, const gradient_mass& module) noexcept {
  if (host.parameters == 0 || module.parameters == 0 || host.squared_norm == 0.0) return std::nullopt;
  const double h = host.norm() / std::sqrt(static_cast<double>(host.parameters));
  const double m = module.norm() / std::sqrt(static_cast<double>(module.parameters));
  return m / h;
}

template <reduction_backend Backend = auto_backend>
class gradient_mass_sensor {
 public:
  explicit gradient_mass_sensor(param_filter filter = {}, Backend backend = {})
      : filter_(std::move(filter)), backend_(std::move(backend)) {}

  // Gradient tensors, or named parameters / a module (filtered; reads their .grad()).
  template <parameter_source P = std::span<const at::Tensor>>
  pending_report<gradient_mass> measure_async(const P& source) const {
    at::NoGradGuard no_grad;
    const watched_tensors w = watch_tensors(source, filter_, parameter_tensor::gradient);
    std::vector<at::Tensor> present;
    std::uint64_t skipped = 0;
    for (const auto& g : w.tensors) {
      if (g.defined())
        present.push_back(g);
      else
        ++skipped;
    }
    return pending_report<gradient_mass>(backend_.reduce(reduce_request{present, stat_set::basic}),
                                         [skipped](const stats_table& t) {
                                           gradient_mass m;
                                           m.skipped_without_grad = skipped;
                                           m.tensors = t.size();
                                           for (std::size_t i = 0; i < t.size(); ++i) {
                                             m.squared_norm += t[i].sum_of_squares();
                                             m.parameters += t[i].numel();
                                           }
                                           return m;
                                         });
  }
  template <parameter_source P = std::span<const at::Tensor>>
  gradient_mass measure(const P& source) const {
    return measure_async(source).materialize();
  }

 private:
  param_filter filter_;
  Backend backend_;
};

}  // namespace v0
}  // namespace simic
