// DEBUG-level NaN/Inf scan of weights and gradients: names every parameter
// whose weight or gradient holds NaN or Inf, with max |weight|, max |grad|
// (over non-NaN elements) and, when given, whether the loss is finite.
// Weights, gradients and the loss are read in one pass and come back in one
// device->host transfer, whatever the parameter count (the reference synced
// four times per parameter).
//
// In a session (sensors/sensor.hpp) it scans the watched parameters after
// each check while the level is DEBUG, with the step's loss when the trainer
// hands it in (session::step(s, simic::step_loss{loss})).
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "simic/core/error.hpp"
#include "simic/emit/field_writer.hpp"
#include "simic/reduce/auto_backend.hpp"
#include "simic/reduce/backend.hpp"
#include "simic/sensors/param_filter.hpp"
#include "simic/sensors/parameters.hpp"
#include "simic/sensors/sensor.hpp"

namespace simic {
inline namespace v0 {

// One parameter holding NaN or Inf in its weight or its gradient.
struct nonfinite_parameter {
  std::string name;
  bool weight_nan = false;
  bool weight_inf = false;
  bool grad_nan = false;
  bool grad_inf = false;
};

struct nan_inf_scan_report {
  std::vector<nonfinite_parameter> offenders;  // in parameter order
  double max_abs_weight = 0.0;
  double max_abs_grad = 0.0;
  std::optional<bool> loss_finite;  // absent when no loss was given
  std::uint64_t parameters_scanned = 0;
  bool clean() const noexcept { return offenders.empty() && loss_finite.value_or(true); }
};

// The nan_inf_scan event.
struct nan_inf_scan_event {
  static constexpr std::string_view name = "nan_inf_scan";
  nan_inf_scan_report report{};
  void describe(field_writer& w) const {
    w.begin_array("offenders");
    for (const nonfinite_parameter& o : report.offenders) {
      w.begin_object();
      w.text("name", o.name);
      w.flag("weight_nan", o.weight_nan);
      w.flag("weight_inf", o.weight_inf);
      w.flag("grad_nan", o.grad_nan);
      w.flag("grad_inf", o.grad_inf);
      w.end();
    }
    w.end();
    if (w.scalars()) w.scalar("nan_inf_scan/offenders", static_cast<double>(report.offenders.size()));
    w.real("max_abs_weight", report.max_abs_weight, "nan_inf_scan");
    w.real("max_abs_grad", report.max_abs_grad, "nan_inf_scan");
    if (report.loss_finite) w.flag("loss_finite", *report.loss_finite);
    w.count("parameters_scanned", report.parameters_scanned);
    w.flag("clean", report.clean());
  }
};

// The step's loss, handed to the scan: session::step(s, simic::step_loss{loss}).
struct step_loss {
  at::Tensor loss;
};

struct nan_inf_scan_options {
  param_filter filter{};  // for named parameters and modules
  bool enabled = true;    // in a session: scan while the level is DEBUG
};

template <reduction_backend Backend = auto_backend>
class nan_inf_scanner {
 public:
  using options_type = nan_inf_scan_options;
  using category = cat::debug;
  static constexpr std::string_view name = "nan_inf_scan";

  explicit nan_inf_scanner(const nan_inf_scan_options& o = {}, Backend backend = {})
      : opts_(o), backend_(std::move(backend)) {}

  // `loss`: an optional loss tensor (any shape; all elements must be finite).
  template <named_parameter_source P>
  pending_report<nan_inf_scan_report> scan_async(const P& source, const at::Tensor& loss = {}) const {
    static constexpr const char* where = "simic::nan_inf_scanner::scan";
    at::NoGradGuard no_grad;
    watched_parameters w = watch(source, opts_.filter);
    const std::size_t n = w.weights.size();
    std::vector<at::Tensor> list;
    list.reserve(2 * n + 1);
    std::vector<std::int64_t> grad_row(n, -1);
    for (std::size_t i = 0; i < n; ++i) {
      detail::require(w.weights[i].defined(), where, "parameter " + w.names[i], "undefined", "a defined tensor");
      list.push_back(w.weights[i]);
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (!w.grads[i].defined()) continue;
      grad_row[i] = static_cast<std::int64_t>(list.size());
      list.push_back(w.grads[i]);
    }
    const bool has_loss = loss.defined();
    if (has_loss) {
      detail::require(at::isFloatingType(loss.scalar_type()), where, "loss.dtype", loss.scalar_type(),
                      "a floating-point type");
      // A loss elsewhere moves to the parameters' device (host->device copy,
      // no sync) so that everything comes back in the one transfer.
      list.push_back(list.empty() ? loss : loss.to(list.front().device(), /*non_blocking=*/true));
    }
    at::Tensor stats = backend_.reduce(reduce_request{list, stat_set::nonfinite});
    return pending_report<nan_inf_scan_report>(
        std::move(stats), [names = std::move(w.names), grad_row = std::move(grad_row), has_loss](const stats_table& t) {
          nan_inf_scan_report r;
          const std::size_t n = names.size();
          r.parameters_scanned = n;
          for (std::size_t i = 0; i < n; ++i) {
            const tensor_stats ws = t[i];
            nonfinite_parameter p;
            p.name = names[i];
            p.weight_nan = ws.nans() > 0;
            p.weight_inf = ws.infs() > 0;
            r.max_abs_weight = std::max(r.max_abs_weight, ws.max_abs());
            if (grad_row[i] >= 0) {
              const tensor_stats gs = t[static_cast<std::size_t>(grad_row[i])];
              p.grad_nan = gs.nans() > 0;
              p.grad_inf = gs.infs() > 0;
              r.max_abs_grad = std::max(r.max_abs_grad, gs.max_abs());
            }
            if (p.weight_nan || p.weight_inf || p.grad_nan || p.grad_inf) r.offenders.push_back(std::move(p));
          }
          if (has_loss) {
            const tensor_stats ls = t[t.size() - 1];
            r.loss_finite = ls.nans() == 0 && ls.infs() == 0;
          }
          return r;
        });
  }
  // `loss`: the loss as a number (finite or not).
  template <named_parameter_source P>
  pending_report<nan_inf_scan_report> scan_async(const P& source, double loss) const {
    pending_report<nan_inf_scan_report> p = scan_async(source);
    return pending_report<nan_inf_scan_report>(p.device_stats(), [p, finite = std::isfinite(loss)](const stats_table& t) {
      nan_inf_scan_report r = p.finish(t);
      r.loss_finite = finite;
      return r;
    });
  }
  template <named_parameter_source P, class... Loss>
    requires(sizeof...(Loss) <= 1)
  nan_inf_scan_report scan(const P& source, const Loss&... loss) const {
    return scan_async(source, loss...).materialize();
  }

  const nan_inf_scan_options& options() const noexcept { return opts_; }

  // ---- in a session (sensors/sensor.hpp) ----------------------------------
  template <class M>
  void feed(const sensor_context<M>&, const step_loss& x) {
    loss_ = x.loss.defined() ? x.loss.detach() : x.loss;
  }
  // While the effective level is DEBUG (the check that escalated included).
  template <class M>
  void diagnose(const sensor_context<M>& ctx, const check_result&) {
    last_.reset();
    const at::Tensor loss = std::exchange(loss_, at::Tensor());  // this step's, used or not
    if (!opts_.enabled || ctx.watched().empty() || !ctx.template collects<category>()) return;
    last_ = scan(ctx.watched(), loss);
    ++measurements_;
    if (ctx.emitting()) ctx.emit(nan_inf_scan_event{.report = *last_});
  }
  const std::optional<nan_inf_scan_report>& last() const noexcept { return last_; }
  std::uint64_t measurements() const noexcept { return measurements_; }

 private:
  nan_inf_scan_options opts_;
  Backend backend_;
  at::Tensor loss_;
  std::optional<nan_inf_scan_report> last_;
  std::uint64_t measurements_ = 0;
};

}  // namespace v0
}  // namespace simic
