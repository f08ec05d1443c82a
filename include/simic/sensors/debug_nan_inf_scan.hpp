// DEBUG-level NaN/Inf scan of weights and gradients: names every parameter
// whose weight or gradient holds NaN or Inf, with max |weight|, max |grad|
// (over non-NaN elements) and, when given, whether the loss is finite.
// Weights, gradients and the loss are read in one pass and come back in one
// device->host transfer, whatever the parameter count (the reference synced
// four times per parameter).
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "simic/core/diagnostics.hpp"
#include "simic/core/detail/error.hpp"
#include "simic/reduce/auto_backend.hpp"
#include "simic/reduce/backend.hpp"
#include "simic/sensors/param_filter.hpp"
#include "simic/sensors/parameters.hpp"

namespace simic {
inline namespace v0 {

template <reduction_backend Backend = auto_backend>
class nan_inf_scanner {
 public:
  explicit nan_inf_scanner(param_filter filter = {}, Backend backend = {})
      : filter_(std::move(filter)), backend_(std::move(backend)) {}

  // `loss`: an optional loss tensor (any shape; all elements must be finite).
  template <named_parameter_source P>
  pending_report<nan_inf_scan_report> scan_async(const P& source, const at::Tensor& loss = {}) const {
    static constexpr const char* where = "simic::nan_inf_scanner::scan";
    at::NoGradGuard no_grad;
    watched_parameters w = watch(source, filter_);
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

 private:
  param_filter filter_;
  Backend backend_;
};

}  // namespace v0
}  // namespace simic
