// The host/module gradient ratio judged against its own noise:
// host_ratio_drift holds while the two-sided CUSUM of the standardised log
// ratio (signals::host_module_ratio, the module's per-element gradient
// strength over the host's, sensors/gradient_ratio.hpp; core/log_shift.hpp)
// is above its bound, up or down.
//
// What it sees: a part of the network whose learning signal changes against
// the rest. The module's gradients dying (a saturated or dead recurrent core,
// a severed connection, a frozen adapter) or blowing up while the host's
// stay as they were moves the ratio by orders of magnitude. What it cannot
// see: a change that scales host and module alike (a learning-rate or loss
// scale fault, vanishing everywhere): the ratio stays; gradient_shift and
// update_shift judge those. It needs a host to be named
// (gradient_health_options::host); without one the signal never comes, which
// is why it is in ppo_host_monitor and not in ppo_monitor (presets/ppo.hpp).
#pragma once

#include <string_view>

#include "simic/core/anomaly.hpp"
#include "simic/core/log_shift.hpp"
#include "simic/core/signals.hpp"
#include "simic/detect/detail/scalar_shift.hpp"

namespace simic {
inline namespace v0 {

struct host_ratio_shift_options {
  // The gradient norm's model: the ratio of two gradient norms is as noisy as one.
  log_shift_options shift{};
  reporting how{};
};

namespace detail {
struct host_ratio_shift_spec {
  using options = host_ratio_shift_options;
  static constexpr std::string_view name = "host_ratio_shift";
  static constexpr const char* where = "simic::host_ratio_shift";
  static constexpr const char* label = "host/module gradient ratio";
  static constexpr signal_set::field field = signal_set::host_module_ratio;
  static constexpr auto member = &signals::host_module_ratio;
  static constexpr anomaly_kind kind = anomaly_kind::host_ratio_drift;
};
}  // namespace detail

using host_ratio_shift = detail::scalar_shift<detail::host_ratio_shift_spec>;

}  // namespace v0
}  // namespace simic
