// Onset and clear: a condition that persists is reported once when it starts
// and once when it ends (with its duration), not on every check.
//
// A detector keeps one condition_latch per condition it watches and calls
// update() each time it observes the condition's signal. In the reference
// telemetry's mode (every_check) the latch reports every observation on which
// the condition holds, and never clears.
#pragma once

#include <cstdint>

#include "simic/core/anomaly.hpp"
#include "simic/core/error.hpp"

namespace simic {
inline namespace v0 {

enum class report_mode : unsigned char {
  every_check,      // every observation on which the condition holds (the reference's behaviour)
  onset_and_clear,  // once at its onset; a clear after `clear_after` quiet observations
};

// How a detector reports its conditions.
struct reporting {
  report_mode mode = report_mode::onset_and_clear;
  // Quiet observations in a row that end a condition: 1 clears on the first
  // quiet one; more keeps a condition that flickers around its bound as one.
  std::uint32_t clear_after = 3;

  static constexpr reporting every_check() noexcept { return {report_mode::every_check, 1}; }
  void validate(const char* where) const {
    detail::require(static_cast<unsigned>(mode) <= 1u, where, "reporting.mode", static_cast<unsigned>(mode),
                    "every_check or onset_and_clear");
    detail::require(clear_after >= 1, where, "reporting.clear_after", clear_after, ">= 1");
  }
  friend bool operator==(const reporting&, const reporting&) = default;
};

// Plain state: saved and loaded with the detector that holds it.
struct condition_state {
  std::uint64_t active = 0;  // 1 while a reported condition lasts
  std::uint64_t span = 0;    // observations from the onset to the last on which it held
  std::uint64_t quiet = 0;   // quiet observations since then
  friend bool operator==(const condition_state&, const condition_state&) = default;
  template <class V>
  void visit(V&& v) {
    v("active", active);
    v("span", span);
    v("quiet", quiet);
  }
};

class condition_latch {
 public:
  // Returns true when the condition is to be reported now. An observation
  // on which an active condition holds again is added to `r` as a hold (no
  // report: the response policy still skips its step). When an active
  // condition has been quiet for `how.clear_after` observations, appends its
  // clear to `r` (with `value`, the figure that ended it).
  bool update(bool holds, const reporting& how, anomaly_kind kind, double value, anomaly_report& r) {
    if (how.mode == report_mode::every_check) return holds;
    if (holds) {
      const bool onset = s_.active == 0;
      s_.span = onset ? 1 : s_.span + s_.quiet + 1;
      s_.active = 1;
      s_.quiet = 0;
      if (!onset) r.add_hold(kind);
      return onset;
    }
    if (s_.active != 0 && ++s_.quiet >= how.clear_after) {
      r.add_clear(kind, s_.span, value);
      s_ = {};
    }
    return false;
  }

  bool active() const noexcept { return s_.active != 0; }
  const condition_state& state() const noexcept { return s_; }
  void load(const condition_state& s) {
    constexpr auto where = "simic::condition_latch::load";
    detail::require(s.active <= 1, where, "active", s.active, "0 or 1");
    detail::require(s.active == 1 || (s.span == 0 && s.quiet == 0), where, "span", s.span,
                    "0 when the condition is not active");
    detail::require(s.active == 0 || s.span >= 1, where, "span", s.span, ">= 1 when active");
    s_ = s;
  }

 private:
  condition_state s_{};
};

}  // namespace v0
}  // namespace simic
