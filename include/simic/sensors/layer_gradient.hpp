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
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "simic/core/error.hpp"
#include "simic/core/thresholds.hpp"
#include "simic/reduce/gradient_summary.hpp"
#include "simic/reduce/auto_backend.hpp"
#include "simic/reduce/backend.hpp"
#include "simic/emit/events.hpp"
#include "simic/emit/field_writer.hpp"
#include "simic/sensors/param_filter.hpp"
#include "simic/sensors/parameters.hpp"
#include "simic/sensors/sensor.hpp"

namespace simic {
inline namespace v0 {

// The per-layer health score documented above.
constexpr double layer_gradient_health(std::uint64_t small, std::uint64_t large, std::uint64_t numel,
                                       std::uint64_t nonfinite) noexcept {
  return nonfinite > 0 ? 0.0 : gradient_health(small, large, numel);
}

// Per-layer (per named parameter) gradient statistics.
struct layer_gradient_stats {
  std::string name;
  std::uint64_t numel = 0;
  double norm = 0.0;  // L2
  double mean = 0.0;
  double std = 0.0;  // population standard deviation
  double min = 0.0;
  double max = 0.0;
  double zero_fraction = 0.0;   // exact zeros
  double small_fraction = 0.0;  // |g| < small bound (default 1e-6)
  double large_fraction = 0.0;  // |g| > large bound (default 10)
  std::uint64_t nan_count = 0;
  std::uint64_t inf_count = 0;
  double health = 1.0;     // per-layer health score in [0, 1]
  bool dead = false;       // zero_fraction > dead bound (default 0.9)
  bool exploding = false;  // large_fraction > exploding bound (default 0.1)
};

struct layer_gradient_report {
  std::vector<layer_gradient_stats> layers;
  std::vector<std::string> dead_layers;
  std::vector<std::string> exploding_layers;
  std::uint64_t skipped_without_grad = 0;
};

// The layer_gradients event; TensorBoard gets each layer's norm and health.
struct layer_gradients_event {
  static constexpr std::string_view name = "layer_gradients";
  layer_gradient_report report{};
  void describe(field_writer& w) const {
    w.begin_array("layers");
    for (const layer_gradient_stats& l : report.layers) {
      w.begin_object();
      describe_layer(w, l);
      w.end();
      if (w.scalars()) {
        w.scalar("layers/" + l.name + "/norm", l.norm);
        w.scalar("layers/" + l.name + "/health", l.health);
      }
    }
    w.end();
    describe_summary(w, report);
  }
  // One layer's fields, and the fields after the layers: apart, for a reader
  // that makes each layer's fields only when asked (the Python module).
  static void describe_layer(field_writer& w, const layer_gradient_stats& l) {
    w.text("name", l.name);
    w.count("numel", l.numel);
    w.real("norm", l.norm);
    w.real("mean", l.mean);
    w.real("std", l.std);
    w.real("min", l.min);
    w.real("max", l.max);
    w.real("zero_fraction", l.zero_fraction);
    w.real("small_fraction", l.small_fraction);
    w.real("large_fraction", l.large_fraction);
    w.count("nan_count", l.nan_count);
    w.count("inf_count", l.inf_count);
    w.real("health", l.health);
    w.flag("dead", l.dead);
    w.flag("exploding", l.exploding);
  }
  static void describe_summary(field_writer& w, const layer_gradient_report& r) {
    w.texts("dead_layers", r.dead_layers);
    w.texts("exploding_layers", r.exploding_layers);
    w.count("skipped_without_grad", r.skipped_without_grad);
  }
};

struct layer_gradient_options {
  double small = defaults::layer_small;  // |g| strictly below: small
  double large = defaults::layer_large;  // |g| strictly above: large
  double dead_zero_fraction = defaults::dead_layer_zero_fraction;             // zero fraction strictly above: dead
  double exploding_large_fraction = defaults::exploding_layer_large_fraction;  // large fraction strictly above: exploding
  param_filter filter{};
  bool enabled = true;  // in a session: read while the level is DEBUG

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
  using options_type = layer_gradient_options;
  using category = cat::debug;
  static constexpr std::string_view name = "layer_gradients";

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

  // ---- in a session (sensors/sensor.hpp) ----------------------------------
  // While the effective level is DEBUG (the check that escalated included).
  template <class M>
  void diagnose(const sensor_context<M>& ctx, const check_result&) {
    last_.reset();
    if (!opts_.enabled || ctx.watched().empty() || !ctx.template collects<category>()) return;
    last_ = measure(ctx.watched());
    ++measurements_;
    if (ctx.emitting()) ctx.emit(layer_gradients_event{.report = *last_});
  }
  const std::optional<layer_gradient_report>& last() const noexcept { return last_; }
  std::uint64_t measurements() const noexcept { return measurements_; }

 private:
  layer_gradient_options opts_;
  Backend backend_;
  std::optional<layer_gradient_report> last_;
  std::uint64_t measurements_ = 0;
};

}  // namespace v0
}  // namespace simic
