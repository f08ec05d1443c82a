// LSTM state health from (h, c): L2 norms, max |x| (over non-NaN elements),
// NaN / Inf flags; one read of each, one device->host transfer. healthy()
// applies DESIGN.md's bounds through the detector itself (lstm_bounds), so
// sensor and detector cannot disagree.
//
//   signals.lstm = simic::lstm_health_sensor<>{}.measure(h, c).signal();
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cstdint>
#include <vector>

#include "simic/core/error.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"
#include "simic/detect/lstm_health.hpp"
#include "simic/sensors/auto_backend.hpp"
#include "simic/sensors/backend.hpp"

namespace simic {
inline namespace v0 {

struct lstm_health_report {
  double h_norm = 0.0;
  double c_norm = 0.0;
  double h_max_abs = 0.0;
  double c_max_abs = 0.0;
  std::uint64_t h_nan = 0, c_nan = 0, h_inf = 0, c_inf = 0;

  bool has_nan() const noexcept { return h_nan + c_nan > 0; }
  bool has_inf() const noexcept { return h_inf + c_inf > 0; }
  lstm_signal signal() const noexcept {
    lstm_signal s;
    s.h_norm = h_norm;
    s.c_norm = c_norm;
    s.h_max_abs = h_max_abs;
    s.c_max_abs = c_max_abs;
    s.has_nan = has_nan();
    s.has_inf = has_inf();
    return s;
  }
  // No NaN/Inf and norm_min < norm(h), norm(c) < norm_max.
  bool healthy(double norm_min = defaults::lstm_norm_min, double norm_max = defaults::lstm_norm_max) const {
    return lstm_bounds(norm_min, norm_max).healthy(signal());
  }
};

template <reduction_backend Backend = auto_backend>
class lstm_health_sensor {
 public:
  explicit lstm_health_sensor(Backend backend = {}) : backend_(std::move(backend)) {}

  pending_report<lstm_health_report> measure_async(const at::Tensor& h, const at::Tensor& c) const {
    static constexpr const char* where = "simic::lstm_health_sensor::measure";
    detail::require(h.defined(), where, "h", "undefined", "a defined floating-point tensor");
    detail::require(c.defined(), where, "c", "undefined", "a defined floating-point tensor");
    detail::require(at::isFloatingType(h.scalar_type()), where, "h.dtype", h.scalar_type(), "a floating-point type");
    detail::require(at::isFloatingType(c.scalar_type()), where, "c.dtype", c.scalar_type(), "a floating-point type");
    detail::require(c.device() == h.device(), where, "c.device", c.device(), "the device of h (" + h.device().str() + ")");
    at::NoGradGuard no_grad;
    const std::vector<at::Tensor> both{h, c};
    return pending_report<lstm_health_report>(backend_.reduce(reduce_request{both, stat_set::basic}),
                                              [](const stats_table& t) {
                                                lstm_health_report r;
                                                r.h_norm = t[0].norm();
                                                r.c_norm = t[1].norm();
                                                r.h_max_abs = t[0].max_abs();
                                                r.c_max_abs = t[1].max_abs();
                                                r.h_nan = t[0].nans();
                                                r.c_nan = t[1].nans();
                                                r.h_inf = t[0].infs();
                                                r.c_inf = t[1].infs();
                                                return r;
                                              });
  }
  lstm_health_report measure(const at::Tensor& h, const at::Tensor& c) const {
    return measure_async(h, c).materialize();
  }

 private:
  Backend backend_;
};

}  // namespace v0
}  // namespace simic
