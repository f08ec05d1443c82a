// Relative update size judged against its own noise: update_ratio_drift holds
// while the two-sided CUSUM of the standardised log update ratio
// (signals::update_ratio, ||delta theta|| / ||theta||; core/log_shift.hpp)
// is above its bound (a step, up or down), or while the ratio's recent level
// (25 checks) is more than 1.5x its running level (200 checks): a ramp.
//
// The update ratio follows the learning rate step by step: with Adam a 20x
// learning rate is a 20x step at once, and a rate that grows 5 % per update
// leaves the ratio's running level behind. Neither need show in the KL (PPO's
// clipping bounds it) or the gradient norm (the gradients do not change).
// A falling ratio (updates that stop moving the weights) holds it too.
#pragma once

#include <string_view>

#include "simic/core/anomaly.hpp"
#include "simic/core/log_shift.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"
#include "simic/detect/detail/scalar_shift.hpp"

namespace simic {
inline namespace v0 {

struct update_shift_options {
  log_shift_options shift{.momentum = defaults::update_shift_momentum,
                          .slack = defaults::update_shift_slack,
                          .floor = defaults::update_shift_floor,
                          .rise = defaults::update_shift_rise};
  reporting how{};
};

namespace detail {
struct update_shift_spec {
  using options = update_shift_options;
  static constexpr std::string_view name = "update_shift";
  static constexpr const char* where = "simic::update_shift";
  static constexpr const char* label = "update ratio";
  static constexpr signal_set::field field = signal_set::update_ratio;
  static constexpr auto member = &signals::update_ratio;
  static constexpr anomaly_kind kind = anomaly_kind::update_ratio_drift;
};
}  // namespace detail

using update_shift = detail::scalar_shift<detail::update_shift_spec>;

}  // namespace v0
}  // namespace simic
