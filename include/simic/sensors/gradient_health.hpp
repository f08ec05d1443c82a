// Gradient health of one update: per-parameter L2 norms, the total norm
// (sqrt of the sum of squares, as clip_grad_norm_ computes it), the
// reference's norm-per-tensor figure, smallest / largest per-parameter norm
// and their ratio, vanishing / exploding counts and the health score
// (simic::gradient_health in reduce/gradient_summary.hpp), zero fraction, NaN and Inf
// counts. One read of every gradient, one device->host transfer.
//
//   simic::gradient_health_sensor<> grads;
//   signals.gradients = grads.measure(*policy).signal();
//
// In a session (sensors/sensor.hpp) it reads the watched gradients at
// MINIMAL and up (the non-finite check needs them) in updates 1, 1 + every,
// ..., synchronously in step() or enqueued earlier by session::enqueue(), and
// gives the check `gradients`; with options().host it also gives the
// host/module gradient ratio from the same read (sensors/gradient_ratio.hpp).
// With a deferred check the read's rows travel to the host behind the step
// (defer/collect). step_stats() is the step's packed rows on their device,
// which simic::update_guard judges the step's update by (no second read).
// Its event: gradient_health (the gradient figures, gradient_members in
// core/signals.hpp, and the host/module ratio).
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "simic/core/error.hpp"
#include "simic/reduce/gradient_summary.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"
#include "simic/reduce/auto_backend.hpp"
#include "simic/reduce/backend.hpp"
#include "simic/emit/events.hpp"
#include "simic/emit/field_writer.hpp"
#include "simic/sensors/gradient_ratio.hpp"
#include "simic/sensors/param_filter.hpp"
#include "simic/sensors/parameters.hpp"
#include "simic/sensors/sensor.hpp"

namespace simic {
inline namespace v0 {

// When a session reads the gradients: in step() (sync), or enqueued earlier
// by session::enqueue() and collected in step() (async: on CUDA the reduction
// runs while the host prepares the step's statistics).
enum class gradient_read : unsigned char { sync, async };

struct gradient_health_options {
  double vanishing = defaults::grad_vanishing;  // per-parameter norm strictly below: vanishing
  double exploding = defaults::grad_exploding;  // per-parameter norm strictly above: exploding
  param_filter filter{};                        // for named parameters and modules
  // In a session:
  std::uint32_t every = 1;           // read in updates 1, 1 + every, 1 + 2 every, ...
  gradient_read read = gradient_read::sync;
  // Names the host network's parameters: the rest of the watched ones are
  // the module, and the check gets the host/module gradient ratio.
  std::optional<param_filter> host{};

  void validate() const {
    detail::require(vanishing >= 0.0 && std::isfinite(vanishing), "simic::gradient_health_options", "vanishing",
                    vanishing, "[0, exploding)");
    detail::require(exploding > vanishing && std::isfinite(exploding), "simic::gradient_health_options",
                    "exploding", exploding, "(vanishing, inf)");
    detail::require(every >= 1, "simic::gradient_health_options", "every", every, ">= 1");
    detail::require(static_cast<unsigned>(read) <= 1u, "simic::gradient_health_options", "read",
                    static_cast<unsigned>(read), "sync or async");
  }
};

// The gradient_health event: the step's gradient figures and, when a host is
// named, the host/module gradient ratio.
struct gradient_health_event {
  static constexpr std::string_view name = "gradient_health";
  gradient_signal gradients{};
  std::optional<double> host_module_ratio{};
  void describe(field_writer& w) const {
    constexpr std::string_view g = "gradients";
    detail::write_members(w, gradient_members, gradients, g);
    detail::write_optional(w, signal_set::name(signal_set::host_module_ratio), host_module_ratio, g);
  }
};

struct gradient_health_report {
  std::vector<std::string> names;   // of the parameters with a gradient; empty for unnamed lists
  std::vector<double> param_norms;  // per parameter with a gradient, in order
  double total_norm = 0.0;          // sqrt(sum over all elements of g^2)
  // The reference telemetry's "gradient_norm": total_norm / number of
  // gradient tensors. Kept for comparison with its logs; not a norm.
  double norm_per_tensor = 0.0;
  double min_param_norm = 0.0;  // over non-NaN per-parameter norms; 0 without gradients
  double max_param_norm = 0.0;
  std::optional<double> max_min_ratio;  // max / min norm; absent without gradients or when min is 0
  std::uint64_t parameters = 0;         // parameters (tensors) with a gradient
  std::uint64_t skipped_without_grad = 0;
  std::uint64_t vanishing = 0;
  std::uint64_t exploding = 0;
  std::uint64_t elements = 0;
  std::uint64_t zeros = 0;
  double zero_fraction = 0.0;  // zeros / elements; 0 without elements
  std::uint64_t nan_count = 0;
  std::uint64_t inf_count = 0;
  double health = 1.0;  // gradient_health(vanishing, exploding, parameters)

  gradient_signal signal() const noexcept {
    gradient_signal s;
    s.total_norm = total_norm;
    s.health = health;
    s.min_param_norm = min_param_norm;
    s.max_param_norm = max_param_norm;
    s.parameters = parameters;
    s.vanishing = vanishing;
    s.exploding = exploding;
    s.nan_count = nan_count;
    s.inf_count = inf_count;
    return s;
  }
};

namespace detail {

// The report from per-tensor rows: the shared summary (reduce/gradient_summary.hpp,
// the same code the CUDA kernel finishes on the device) plus the per-tensor
// norms and the figures derived from the totals.
inline gradient_health_report finish_gradient_health(const stats_table& t, double vanishing, double exploding,
                                                     std::vector<std::string> names, std::uint64_t skipped) {
  gradient_health_report r;
  r.names = std::move(names);
  r.skipped_without_grad = skipped;
  r.param_norms.reserve(t.size());
  gradient_summary s;
  summary_init(s);
  for (std::size_t i = 0; i < t.size(); ++i) {
    r.param_norms.push_back(t[i].norm());
    summary_add_row(s, t[i].row(), vanishing, exploding);
  }
  summary_finish(s);
  r.parameters = s.tensors;
  r.total_norm = std::sqrt(s.total_sumsq);
  r.min_param_norm = s.min_norm;
  r.max_param_norm = s.max_norm;
  if (r.parameters > 0 && s.min_norm > 0.0) r.max_min_ratio = s.max_norm / s.min_norm;
  r.vanishing = s.vanishing;
  r.exploding = s.exploding;
  r.elements = s.elements;
  r.zeros = s.zeros;
  r.nan_count = s.nans;
  r.inf_count = s.infs;
  r.norm_per_tensor = r.parameters == 0 ? 0.0 : r.total_norm / static_cast<double>(r.parameters);
  r.zero_fraction = r.elements == 0 ? 0.0 : static_cast<double>(r.zeros) / static_cast<double>(r.elements);
  r.health = s.health;
  return r;
}

}  // namespace detail

template <reduction_backend Backend = auto_backend>
class gradient_health_sensor {
 public:
  using options_type = gradient_health_options;
  using category = cat::critical;  // MINIMAL and up: the non-finite check reads it
  static constexpr std::string_view name = "gradient_health";

  explicit gradient_health_sensor(gradient_health_options options = {}, Backend backend = {})
      : opts_(std::move(options)), backend_(std::move(backend)) {
    opts_.validate();
  }

  // Gradient tensors, or named parameters / a module (filtered by
  // options().filter; reads their .grad()). Undefined gradients (parameters
  // without one) are skipped and counted.
  template <parameter_source P = std::span<const at::Tensor>>
  pending_report<gradient_health_report> measure_async(const P& source) const {
    watched_tensors w = watch_tensors(source, opts_.filter, parameter_tensor::gradient);
    return start(w.tensors, std::move(w.names));
  }
  // Sync: the same, materialized (exactly one device->host transfer).
  template <parameter_source P = std::span<const at::Tensor>>
  gradient_health_report measure(const P& source) const {
    return measure_async(source).materialize();
  }

  const gradient_health_options& options() const noexcept { return opts_; }
  const Backend& backend() const noexcept { return backend_; }

  // ---- in a session (sensors/sensor.hpp) ----------------------------------
  void attach(std::span<const named_tensor> watched) {
    is_host_.clear();
    for (const named_tensor& p : watched) is_host_.push_back(opts_.host && (*opts_.host)(p.first));
  }
  template <class M>
  void enqueue(const sensor_context<M>& ctx) {
    if (opts_.read == gradient_read::async && !pending_ && due(ctx)) pending_.emplace(measure_async(ctx.watched()));
  }
  template <class M>
  void sense(const sensor_context<M>& ctx, signals& s) {
    last_.reset();
    host_ratio_.reset();
    step_stats_ = at::Tensor();
    if (reads(ctx, s)) {
      pending_report<gradient_health_report> p = pending_ ? std::move(*pending_) : measure_async(ctx.watched());
      step_stats_ = p.device_stats();
      ++measurements_;
      take(ctx, p.materialize(), s, !s.host_module_ratio);
    }
    pending_.reset();  // used, or not read this step (not due, OFF)
  }
  // A deferred check: the read starts (or the enqueued one is taken) and its
  // rows start for the host; collect() adds the figures at the check.
  template <class M>
  void defer(const sensor_context<M>& ctx, const signals& s) {
    deferred_.reset();
    step_stats_ = at::Tensor();
    if (reads(ctx, s)) {
      deferred_.emplace(pending_ ? std::move(*pending_) : measure_async(ctx.watched()), !s.host_module_ratio);
      deferred_->read.copy_to_host();
      step_stats_ = deferred_->read.device_stats();
      ++measurements_;
    }
    pending_.reset();
  }
  template <class M>
  void collect(const sensor_context<M>& ctx, signals& s) {
    last_.reset();
    host_ratio_.reset();
    if (!deferred_) return;
    take(ctx, deferred_->read.materialize(), s, deferred_->give_host_ratio);
    deferred_.reset();
  }
  template <class M>
  void record(const sensor_context<M>& ctx, const signals&) const {
    if (last_ && ctx.emitting()) ctx.emit(gradient_health_event{.gradients = last_->signal(), .host_module_ratio = host_ratio_});
  }
  // The latest read (absent before the first, and in a step that read none).
  const std::optional<gradient_health_report>& last() const noexcept { return last_; }
  // The packed rows (reduce/backend.hpp) of the gradients the latest step()
  // read, on their device; undefined when that step read none.
  const at::Tensor& step_stats() const noexcept { return step_stats_; }
  const std::optional<double>& last_host_module_ratio() const noexcept { return host_ratio_; }
  std::uint64_t measurements() const noexcept { return measurements_; }
  std::uint64_t host_module_ratios() const noexcept { return host_ratios_; }

 private:
  template <class M>
  bool due(const sensor_context<M>& ctx) const noexcept {
    return !ctx.watched().empty() && due_every(ctx.update(), opts_.every);
  }
  // Whether this step reads: the check lacks gradients, the level is not OFF, the update is due.
  template <class M>
  bool reads(const sensor_context<M>& ctx, const signals& s) const noexcept {
    return !s.gradients && ctx.level() != simic::level::off && due(ctx);
  }
  // The check's figures from a finished read; the host/module ratio where the check lacked one.
  template <class M>
  void take(const sensor_context<M>& ctx, gradient_health_report g, signals& s, bool give_host_ratio) {
    s.gradients = g.signal();
    if (opts_.host) {
      host_ratio_ = host_module_ratio(g, ctx);
      if (give_host_ratio) s.host_module_ratio = host_ratio_;
    }
    last_ = std::move(g);
  }
  // From the gradient read itself: the host's and the module's squared
  // norms and sizes, split by name (no second read).
  template <class M>
  std::optional<double> host_module_ratio(const gradient_health_report& g, const sensor_context<M>& ctx) {
    gradient_mass host, module;
    const auto watched = ctx.watched();
    std::size_t j = 0;
    for (std::size_t i = 0; i < watched.size() && j < g.names.size(); ++i) {
      if (g.names[j] != watched[i].first) continue;  // no gradient this step
      gradient_mass& side = is_host_[i] ? host : module;
      side.squared_norm += g.param_norms[j] * g.param_norms[j];
      side.parameters += static_cast<std::uint64_t>(watched[i].second.numel());
      ++side.tensors;
      ++j;
    }
    ++host_ratios_;
    return gradient_ratio(host, module);
  }

  pending_report<gradient_health_report> start(std::span<const at::Tensor> grads, std::vector<std::string> names) const {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> present;
    std::vector<std::string> present_names;
    present.reserve(grads.size());
    std::uint64_t skipped = 0;
    for (std::size_t i = 0; i < grads.size(); ++i) {
      if (!grads[i].defined()) {
        ++skipped;
        continue;
      }
      present.push_back(grads[i]);
      if (!names.empty()) present_names.push_back(std::move(names[i]));
    }
    at::Tensor stats = backend_.reduce(reduce_request{present, stat_set::basic});
    return pending_report<gradient_health_report>(
        std::move(stats), [v = opts_.vanishing, e = opts_.exploding, n = std::move(present_names), skipped](
                              const stats_table& t) { return detail::finish_gradient_health(t, v, e, n, skipped); });
  }

  gradient_health_options opts_;
  Backend backend_;
  std::vector<bool> is_host_;
  // A deferred check's read, on its way to the host, and whether the check lacked the host/module ratio.
  struct deferred_read {
    deferred_read(pending_report<gradient_health_report> r, bool h) : read(std::move(r)), give_host_ratio(h) {}
    pending_report<gradient_health_report> read;
    bool give_host_ratio;
  };

  std::optional<pending_report<gradient_health_report>> pending_;
  std::optional<deferred_read> deferred_;
  at::Tensor step_stats_;
  std::optional<gradient_health_report> last_;
  std::optional<double> host_ratio_;
  std::uint64_t measurements_ = 0;
  std::uint64_t host_ratios_ = 0;
};

}  // namespace v0
}  // namespace simic
