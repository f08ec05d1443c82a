// A shift of a positive, multiplicative signal (core/log_shift.hpp) judged as
// a condition: the model, its onset-and-clear latch, and the anomaly it
// reports. The detectors that watch such a signal (gradient_shift on the
// gradient norm, update_shift on the update ratio) hold one each.
//
// Zero, negative and non-finite values are not absorbed: they say nothing
// about the signal's level (a skipped step moves no weight; numerical
// stability reports the non-finite). Nor are values from early training
// (log_shift_options::early), when the check carries its progress.
#pragma once

#include <cmath>
#include <optional>
#include <string>
#include <string_view>

#include "simic/core/anomaly.hpp"
#include "simic/core/condition.hpp"
#include "simic/core/detail/format.hpp"
#include "simic/core/log_shift.hpp"
#include "simic/core/signals.hpp"

namespace simic {
inline namespace v0 {

class shift_condition {
 public:
  // `signal` names the figure in the anomaly's text ("gradient norm").
  shift_condition(const log_shift_options& o, anomaly_kind kind, std::string_view signal)
      : shift_(o), kind_(kind), signal_(signal) {}

  void observe(double value, const std::optional<training_progress>& progress, const reporting& how,
               anomaly_report& r) {
    if (!(value > 0.0) || !std::isfinite(value) || early(progress)) return;
    const log_shift::step st = shift_.add(value);
    if (!st.judged) return;
    const bool holds = shift_.up_shift() || shift_.down_shift() || shift_.rising();
    if (latch_.update(holds, how, kind_, value, r)) report(value, st, r);
  }

  const log_shift& model() const noexcept { return shift_; }
  // Whether a check at `progress` is in early training, unseen by the model.
  bool early(const std::optional<training_progress>& progress) const noexcept {
    return in_early_training(progress, shift_.options().early);
  }

  log_shift_state model_state() const { return shift_.state(); }
  condition_state latch_state() const { return latch_.state(); }
  // Loads both or neither.
  void load(const log_shift_state& model, const condition_state& latch) {
    log_shift s = shift_;
    condition_latch l;
    s.load(model);
    l.load(latch);
    shift_ = s;
    latch_ = l;
  }

 private:
  // The anomaly's figures are the ones its text compares: the rise rule's
  // recent level against its bound (baseline: the running level), the
  // CUSUM's shift score against its bound (the value that moved it is in
  // the text).
  SIMIC_COLD void report(double value, const log_shift::step& st, anomaly_report& r) const {
    if (!shift_.up_shift() && !shift_.down_shift()) {  // the rise rule alone
      const double fast = std::exp(shift_.fast().mean()), level = std::exp(shift_.log_value().mean());
      const double factor = std::exp(shift_.options().rise);
      r.add(kind_,
            detail::format("%s: recent level %.6g > %.6g (%.3gx its running level %.6g)", signal_.c_str(), fast,
                           level * factor, factor, level),
            {fast, level * factor, level});
      return;
    }
    const bool rising = shift_.up() >= shift_.down();
    const double score = rising ? shift_.up() : shift_.down();
    r.add(kind_,
          detail::format("%s shift score %.6g > %.6g: %.6g %s its running level %.6g (log spread %.3g)",
                         signal_.c_str(), score, shift_.options().bound, value, rising ? "above" : "below",
                         std::exp(st.mean), st.spread),
          {score, shift_.options().bound});
  }

  log_shift shift_;
  anomaly_kind kind_;
  std::string signal_;
  condition_latch latch_;
};

}  // namespace v0
}  // namespace simic
