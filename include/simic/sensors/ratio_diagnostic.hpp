// DEBUG-level ratio diagnostic from one PPO batch: how many samples have an
// importance ratio above `upper`, below `lower`, or NaN (outliers all), and
// the `top_k` of them furthest from 1 by |log ratio| (NaN and 0 first, as
// infinitely far), with their index, ratio and action; and the mean and max
// |new - old| log-probability difference. Everything is reduced on the
// batch's device (a stable sort of the scores, counts, sums); only the top k
// and seven figures come back, in one transfer of O(top_k) doubles, whatever
// the batch size. Ties keep batch order. Actions go through float64: exact
// for |action| <= 2^53; beyond, the nearest float64, and the largest int64
// values (which round up to 2^63) read back as INT64_MAX.
//
// In a session (sensors/sensor.hpp) it runs after each check while the level
// is DEBUG, on the batch the trainer hands in:
//   session::step(s, simic::ratio_batch{ratio, old_log_prob, new_log_prob, actions}).
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "simic/core/error.hpp"
#include "simic/core/thresholds.hpp"
#include "simic/emit/field_writer.hpp"
#include "simic/sensors/sensor.hpp"

namespace simic {
inline namespace v0 {

struct ratio_diagnostic_options {
  double upper = defaults::ratio_explosion;  // ratio strictly above: outlier
  double lower = defaults::ratio_collapse;   // ratio strictly below: outlier
  std::uint32_t top_k = 32;                  // outliers reported one by one (all are counted)
  bool enabled = true;                       // in a session: run while the level is DEBUG

  void validate() const {
    detail::require(lower >= 0.0 && std::isfinite(lower), "simic::ratio_diagnostic_options", "lower", lower,
                    "[0, upper)");
    detail::require(upper > lower && !std::isnan(upper), "simic::ratio_diagnostic_options", "upper", upper,
                    "(lower, inf]");
  }
};

// One PPO sample whose importance ratio is outside the bounds.
struct ratio_outlier {
  std::int64_t index = 0;
  double ratio = 0.0;
  std::int64_t action = 0;
  friend bool operator==(const ratio_outlier&, const ratio_outlier&) = default;
};

struct ratio_diagnostic_report {
  std::vector<ratio_outlier> outliers;  // the top_k furthest from 1 by |log ratio|, furthest first
  std::uint64_t above = 0;              // ratios > upper
  std::uint64_t below = 0;              // ratios < lower
  std::uint64_t nan = 0;                // NaN ratios
  double mean_abs_logprob_diff = 0.0;   // mean |new - old| log-prob
  double max_abs_logprob_diff = 0.0;
  std::uint64_t batch_size = 0;
  double upper = 0.0;  // the bounds used
  double lower = 0.0;
  std::uint64_t outlier_count() const noexcept { return above + below + nan; }
};

// The ratio_diagnostic event.
struct ratio_diagnostic_event {
  static constexpr std::string_view name = "ratio_diagnostic";
  ratio_diagnostic_report report{};
  void describe(field_writer& w) const {
    w.begin_array("outliers");
    for (const ratio_outlier& o : report.outliers) {
      w.begin_object();
      w.integer("index", o.index);
      w.real("ratio", o.ratio);
      w.integer("action", o.action);
      w.end();
    }
    w.end();
    w.count("outlier_count", report.outlier_count());
    if (w.scalars()) w.scalar("ratio_diagnostic/outliers", static_cast<double>(report.outlier_count()));
    w.count("above", report.above);
    w.count("below", report.below);
    w.count("nan", report.nan);
    w.real("mean_abs_logprob_diff", report.mean_abs_logprob_diff);
    w.real("max_abs_logprob_diff", report.max_abs_logprob_diff, "ratio_diagnostic");
    w.count("batch_size", report.batch_size);
    w.real("upper", report.upper);
    w.real("lower", report.lower);
  }
};

namespace detail {
// The int64 of an action that passed through float64: truncated toward zero
// and saturated to [INT64_MIN, INT64_MAX] (an int64 near INT64_MAX rounds to
// 2^63, one past the range; casting that is undefined). An action comes from
// an integral tensor, so it is never NaN; a NaN here is an error, not a value.
inline std::int64_t action_from_double(double a) {
  constexpr double two_63 = 9223372036854775808.0;  // 2^63, exact in float64
  require(!std::isnan(a), "simic::diagnose_ratio_explosion", "action", a, "an integer (from an integral tensor)");
  if (a >= two_63) return std::numeric_limits<std::int64_t>::max();
  if (a < -two_63) return std::numeric_limits<std::int64_t>::min();
  return static_cast<std::int64_t>(a);
}
}  // namespace detail

// ratio, old_log_probs, new_log_probs: floating point; actions: integral;
// all with the same number of elements (read flattened) on one device. An
// empty batch is valid and gives an empty report.
inline ratio_diagnostic_report diagnose_ratio_explosion(const at::Tensor& ratio, const at::Tensor& old_log_probs,
                                                        const at::Tensor& new_log_probs, const at::Tensor& actions,
                                                        const ratio_diagnostic_options& options = {}) {
  static constexpr const char* where = "simic::diagnose_ratio_explosion";
  options.validate();
  const char* names[4] = {"ratio", "old_log_probs", "new_log_probs", "actions"};
  const at::Tensor* ins[4] = {&ratio, &old_log_probs, &new_log_probs, &actions};
  for (int i = 0; i < 4; ++i) detail::require(ins[i]->defined(), where, names[i], "undefined", "a defined tensor");
  for (int i = 0; i < 3; ++i)
    detail::require(at::isFloatingType(ins[i]->scalar_type()), where, std::string(names[i]) + ".dtype",
                    ins[i]->scalar_type(), "a floating-point type");
  detail::require(at::isIntegralType(actions.scalar_type(), /*includeBool=*/false), where, "actions.dtype",
                  actions.scalar_type(), "an integral type");
  const std::int64_t b = ratio.numel();
  for (int i = 1; i < 4; ++i) {
    detail::require(ins[i]->numel() == b, where, std::string(names[i]) + ".numel()", ins[i]->numel(),
                    "ratio.numel() = " + std::to_string(b));
    detail::require(ins[i]->device() == ratio.device(), where, std::string(names[i]) + ".device",
                    ins[i]->device(), "the device of ratio (" + ratio.device().str() + ")");
  }

  ratio_diagnostic_report r;
  r.batch_size = static_cast<std::uint64_t>(b);
  r.upper = options.upper;
  r.lower = options.lower;
  if (b == 0) return r;

  at::NoGradGuard no_grad;
  const at::Tensor x = ratio.reshape({-1}).to(at::kDouble);
  const at::Tensor diff = (new_log_probs.reshape({-1}).to(at::kDouble) - old_log_probs.reshape({-1}).to(at::kDouble)).abs();
  const at::Tensor nan = at::isnan(x);
  const at::Tensor above = x > options.upper;
  const at::Tensor below = x < options.lower;
  // Distance from 1 by |log ratio|: NaN, 0 and negative ratios are infinitely
  // far; a sample within the bounds scores -1 and is never taken.
  constexpr double inf = std::numeric_limits<double>::infinity();
  const at::Tensor far = at::nan_to_num(x.log().abs(), inf, inf, inf);
  const at::Tensor score = at::where(nan.logical_or(above).logical_or(below), far, at::full_like(far, -1.0));
  const std::int64_t k = std::min<std::int64_t>(options.top_k, b);
  const std::tuple<at::Tensor, at::Tensor> sorted = at::sort(score, /*stable=*/true, 0, /*descending=*/true);
  const at::Tensor top = std::get<1>(sorted).slice(0, 0, k);
  const at::Tensor figures = at::stack({above.sum().to(at::kDouble), below.sum().to(at::kDouble),
                                        nan.sum().to(at::kDouble), diff.sum(), diff.max()});
  const at::Tensor packed =
      at::cat({std::get<0>(sorted).slice(0, 0, k), top.to(at::kDouble), x.index_select(0, top),
               actions.reshape({-1}).index_select(0, top).to(at::kDouble), figures});
  const at::Tensor host = packed.to(at::kCPU).contiguous();  // the one transfer
  const double* p = host.data_ptr<double>();
  for (std::int64_t i = 0; i < k && p[i] >= 0.0; ++i)
    r.outliers.push_back(ratio_outlier{static_cast<std::int64_t>(p[k + i]), p[2 * k + i],
                                       detail::action_from_double(p[3 * k + i])});
  const double* f = p + 4 * k;
  r.above = static_cast<std::uint64_t>(f[0]);
  r.below = static_cast<std::uint64_t>(f[1]);
  r.nan = static_cast<std::uint64_t>(f[2]);
  r.mean_abs_logprob_diff = f[3] / static_cast<double>(b);
  r.max_abs_logprob_diff = f[4];
  return r;
}

// The batch the ratio diagnostic reads, handed in by the trainer:
// session::step(s, simic::ratio_batch{ratio, old_log_prob, new_log_prob, actions}).
struct ratio_batch {
  at::Tensor ratio, old_log_prob, new_log_prob, actions;
};

class ratio_diagnostic_sensor {
 public:
  using options_type = ratio_diagnostic_options;
  using category = cat::debug;
  static constexpr std::string_view name = "ratio_diagnostic";

  explicit ratio_diagnostic_sensor(const ratio_diagnostic_options& o = {}) : opts_(o) { opts_.validate(); }

  const ratio_diagnostic_options& options() const noexcept { return opts_; }

  // ---- in a session (sensors/sensor.hpp) ----------------------------------
  template <class M>
  void feed(const sensor_context<M>&, const ratio_batch& x) {
    batch_ = x;
  }
  // While the effective level is DEBUG (the check that escalated included).
  template <class M>
  void diagnose(const sensor_context<M>& ctx, const check_result&) {
    last_.reset();
    const ratio_batch x = std::exchange(batch_, ratio_batch{});  // this step's, used or not
    if (!opts_.enabled || !x.ratio.defined() || !ctx.template collects<category>()) return;
    last_ = diagnose_ratio_explosion(x.ratio.detach(), detached(x.old_log_prob), detached(x.new_log_prob), x.actions,
                                     opts_);
    ++measurements_;
    if (ctx.emitting()) ctx.emit(ratio_diagnostic_event{.report = *last_});
  }
  const std::optional<ratio_diagnostic_report>& last() const noexcept { return last_; }
  std::uint64_t measurements() const noexcept { return measurements_; }

 private:
  static at::Tensor detached(const at::Tensor& t) { return t.defined() ? t.detach() : t; }
  ratio_diagnostic_options opts_;
  ratio_batch batch_{};
  std::optional<ratio_diagnostic_report> last_;
  std::uint64_t measurements_ = 0;
};

}  // namespace v0
}  // namespace simic
