// What the trainer should do with an update, besides reading the report:
// proceed, skip the optimizer step, or stop. The rules are a policy. The
// default, skip_then_stop, is a guard: it keeps out of the weights the
// update of a step on which the monitor reported a critical anomaly (a loss
// x1e6 is loss_extreme and gradient_exploding, both critical: that step is
// damaged), or non-finite gradients (numerical_instability at `act_on`
// severity or above); skip_rules names the kinds that pass anyway and those
// that skip at any severity ({loss_spike} skips a spiking batch as
// large-model trainers do, detect/loss_shift.hpp). After `max_consecutive`
// skips in a row it stops, naming the cause: a condition that skipping
// cannot undo (simic::recovery, recovery.hpp, rolls back instead).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "simic/core/anomaly.hpp"
#include "simic/core/detail/format.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"

namespace simic {
inline namespace v0 {

enum class action : unsigned char { proceed, skip_step, stop };

// "proceed", "skip_step", "stop"; "invalid" for a value outside them.
constexpr std::string_view to_string(action a) noexcept {
  constexpr std::array<std::string_view, 3> names{"proceed", "skip_step", "stop"};
  return detail::name_or_invalid(names, static_cast<unsigned>(a));
}

struct response {
  action act = action::proceed;
  std::string reason;  // empty for proceed
};

// Kept in the monitor's state, so skip counts survive save/load.
struct response_state {
  std::uint64_t consecutive_skips = 0;
  std::uint64_t total_skips = 0;
  friend bool operator==(const response_state&, const response_state&) = default;
  template <class V>
  void visit(V&& v) {
    v("consecutive_skips", consecutive_skips);
    v("total_skips", total_skips);
  }
};

template <class P>
concept ResponsePolicy = requires(P& p, const signals& s, const anomaly_report& r, response_state& st, response& out) {
  p.decide(s, r, st, out);
};

// Which anomalies keep a step's update out of the weights, besides
// non-finite gradients.
struct skip_rules {
  bool critical = true;                // a step with a critical anomaly is skipped ...
  std::vector<anomaly_kind> pass_on{};  // ... unless its kind is one of these
  std::vector<anomaly_kind> skip_on{};  // kinds that skip at any severity
  friend bool operator==(const skip_rules&, const skip_rules&) = default;
};

class skip_then_stop {
 public:
  explicit skip_then_stop(std::uint32_t max_consecutive = defaults::max_consecutive_skips, skip_rules rules = {},
                          severity act_on = severity::critical)
      : max_(max_consecutive), act_on_(act_on), rules_(std::move(rules)) {
    detail::require(max_consecutive >= 1, "simic::skip_then_stop", "max_consecutive", max_consecutive, ">= 1");
    detail::require(static_cast<unsigned>(act_on) <= 1u, "simic::skip_then_stop", "act_on",
                    static_cast<unsigned>(act_on), "warning or critical");
  }

  // Writes the decision into `out` (whose reason is empty on entry).
  void decide(const signals& s, const anomaly_report& r, response_state& st, response& out) const {
    const bool nonfinite = s.gradients && !s.gradients->finite() && reported(r);
    const anomaly* named = nonfinite ? nullptr : skipping(r);
    const anomaly_hold* held = nonfinite || named ? nullptr : skipping_hold(r);
    if (!nonfinite && named == nullptr && held == nullptr) {
      st.consecutive_skips = 0;
      out.act = action::proceed;
      return;
    }
    ++st.consecutive_skips;
    ++st.total_skips;
    const std::string cause = nonfinite ? nonfinite_cause(*s.gradients) : named ? named_cause(*named) : held_cause(*held);
    if (st.consecutive_skips >= max_) {
      out.act = action::stop;
      out.reason = detail::format("stopping: %llu consecutive updates skipped (limit %u); last cause: %s",
                                  static_cast<unsigned long long>(st.consecutive_skips), max_, cause.c_str());
    } else {
      out.act = action::skip_step;
      out.reason = "skipping the optimizer step: " + cause;
    }
  }

  std::uint32_t max_consecutive() const noexcept { return max_; }
  severity act_on() const noexcept { return act_on_; }
  const skip_rules& rules() const noexcept { return rules_; }

 private:
  static std::string nonfinite_cause(const gradient_signal& g) {
    return detail::format("non-finite gradients (%llu NaN, %llu Inf, total norm %g)",
                          static_cast<unsigned long long>(g.nan_count), static_cast<unsigned long long>(g.inf_count),
                          g.total_norm);
  }
  static std::string named_cause(const anomaly& a) {
    const std::string_view kind = to_string(a.kind);
    return detail::format("%.*s (%s)", static_cast<int>(kind.size()), kind.data(), a.detail.c_str());
  }
  static std::string held_cause(const anomaly_hold& h) {
    const std::string_view kind = to_string(h.kind);
    return detail::format("%.*s (still holds since its onset)", static_cast<int>(kind.size()), kind.data());
  }
  static bool among(anomaly_kind k, const std::vector<anomaly_kind>& kinds) noexcept {
    for (const anomaly_kind x : kinds)
      if (x == k) return true;
    return false;
  }
  // The first anomaly the rules skip on (none on a quiet step: no allocation, no search).
  const anomaly* skipping(const anomaly_report& r) const noexcept {
    for (const anomaly& a : r)
      if (among(a.kind, rules_.skip_on) ||
          (rules_.critical && a.severity == severity::critical && !among(a.kind, rules_.pass_on)))
        return &a;
    return nullptr;
  }
  // A condition of an earlier onset that still holds skips as its onset did.
  const anomaly_hold* skipping_hold(const anomaly_report& r) const noexcept {
    for (const anomaly_hold& h : r.holds())
      if (among(h.kind, rules_.skip_on) ||
          (rules_.critical && h.severity == severity::critical && !among(h.kind, rules_.pass_on)))
        return &h;
    return nullptr;
  }
  bool reported(const anomaly_report& r) const noexcept {
    for (const anomaly& a : r)
      if (a.kind == anomaly_kind::numerical_instability && a.severity >= act_on_) return true;
    return false;
  }
  std::uint32_t max_;
  severity act_on_;
  skip_rules rules_;
};

// The policy before the guard (the reference pipeline's): only non-finite
// gradients skip (and the kinds in `skip_on`), whatever else is critical.
inline skip_then_stop skip_nonfinite_then_stop(std::uint32_t max_consecutive = defaults::max_consecutive_skips,
                                               severity act_on = severity::critical,
                                               std::vector<anomaly_kind> skip_on = {}) {
  return skip_then_stop(max_consecutive, skip_rules{.critical = false, .pass_on = {}, .skip_on = std::move(skip_on)},
                        act_on);
}

}  // namespace v0
}  // namespace simic
