// DEBUG-level per-layer gradient statistics for named parameters: norm,
// mean, population std, min, max, zero / small / large fractions, NaN and
// Inf counts, all layers in one read and one device->host transfer; and the
// layer-health summary: dead layers (zero fraction above a bound), exploding
// layers (large fraction above a bound), and a per-layer health score:
//
//   layer health = 0                                     if any NaN or Inf
//                = gradient_health(small, large, numel)  otherwise
//                = clamp(1 - 0.5 small_fraction - 0.8 large_fraction, 0, 1)
//
// i.e. the gradient-health formula applied to the elements of one layer,
// with "small" (|g| < small bound, zeros included) in the role of vanishing
// and "large" (|g| > large bound) in the role of exploding. An empty layer
// scores 1 (nothing in it is unhealthy).
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "simic/core/diagnostics.hpp"
#include "simic/core/detail/error.hpp"
#include "simic/core/thresholds.hpp"
#include "simic/reduce/gradient_summary.hpp"
#include "simic/reduce/auto_backend.hpp"
#include "simic/reduce/backend.hpp"
#include "simic/sensors/param_filter.hpp"
#include "simic/sensors/parameters.hpp"

namespace simic {
inline namespace v0 {

// The per-layer health score documented above.
constexpr double layer_gradient_health(std::uint64_t small, std::uint64_t large, std::uint64_t numel,
                                       std::uint64_t nonfinite) noexcept {
  return nonfinite > 0 ? 0.0 : gradient_health(small, large, numel);
}

struct layer_gradient_options {
  double small = defaults::layer_small;  // |g| strictly below: small
  double large = defaults::layer_large;  // |g| strictly above: large
  double dead_zero_fraction = defaults::dead_layer_zero_fraction;             // zero fraction strictly above: dead
  double exploding_large_fraction = defaults::exploding_layer_large_fraction;  // large fraction strictly above: exploding
  param_filter filter{};

  void validate() const {
    static constexpr const char* where = "simic::layer_gradient_options";
    detail::require(small >= 0.0 && std::isfinite(small), where, "small", small, "[0, large)");
    detail::require(large > small && std::isfinite(large), where, "large", large, "(small, inf)");
    detail::require(dead_zero_fraction >= 0.0 && dead_zero_fraction < 1.0, where, "dead_zero_fraction",
                    dead_zero_fraction, "[0, 1)");
    detail::require(exploding_large_fraction >= 0.0 && exploding_large_fraction < 1.0, where,
                    "exploding_large_fraction", exploding_large_fraction, "[0, 1)");
  }
};

template <reduction_backend Backend = auto_backend>
class layer_gradient_sensor {
 public:
  explicit layer_gradient_sensor(layer_gradient_options options = {}, Backend backend = {})
      : opts_(std::move(options)), backend_(std::move(backend)) {
    opts_.validate();
  }

  // Named parameters or a module (filtered by options().filter).
  template <named_parameter_source P>
  pending_report<layer_gradient_report> measure_async(const P& source) const {
    at::NoGradGuard no_grad;
    watched_parameters w = watch(source, opts_.filter);
    std::vector<at::Tensor> present;
    std::vector<std::string> names;
    std::uint64_t skipped = 0;
    for (std::size_t i = 0; i < w.grads.size(); ++i) {
      if (!w.grads[i].defined()) {
        ++skipped;
        continue;
      }
      present.push_back(w.grads[i]);
      names.push_back(std::move(w.names[i]));
    }
    at::Tensor stats = backend_.reduce(reduce_request{present, stat_set::full, opts_.small, opts_.large});
    return pending_report<layer_gradient_report>(
        std::move(stats), [o = opts_, n = std::move(names), skipped](const stats_table& t) {
          layer_gradient_report r;
          r.skipped_without_grad = skipped;
          r.layers.reserve(t.size());
          for (std::size_t i = 0; i < t.size(); ++i) {
            const tensor_stats s = t[i];
            layer_gradient_stats l;
            l.name = n[i];
            l.numel = s.numel();
            l.norm = s.norm();
            l.mean = s.mean();
            l.std = s.population_std();
            l.min = s.min();
            l.max = s.max();
            l.zero_fraction = s.fraction(s.zeros());
            l.small_fraction = s.fraction(s.small());
            l.large_fraction = s.fraction(s.large());
            l.nan_count = s.nans();
            l.inf_count = s.infs();
            l.health = layer_gradient_health(s.small(), s.large(), s.numel(), s.nans() + s.infs());
            l.dead = l.zero_fraction > o.dead_zero_fraction;
            l.exploding = l.large_fraction > o.exploding_large_fraction;
            if (l.dead) r.dead_layers.push_back(l.name);
            if (l.exploding) r.exploding_layers.push_back(l.name);
            r.layers.push_back(std::move(l));
          }
          return r;
        });
  }
  template <named_parameter_source P>
  layer_gradient_report measure(const P& source) const {
    return measure_async(source).materialize();
  }

  const layer_gradient_options& options() const noexcept { return opts_; }

 private:
  layer_gradient_options opts_;
  Backend backend_;
};

}  // namespace v0
}  // namespace simic
