// LSTM state health from (h, c): L2 norms, max |x| (over non-NaN elements),
// NaN / Inf flags; one read of each, one device->host transfer. healthy()
// applies the reference preset's norm bounds through its detector itself
// (simic::reference::lstm_bounds), so sensor and detector cannot disagree;
// simic's default judges signal() with lstm_rms_bounds (docs/detection.md).
//
//   signals.lstm = simic::lstm_health_sensor<>{}.measure(h, c).signal();
//
// In a session (sensors/sensor.hpp) the trainer hands it each rollout's
// states, session::feed(simic::lstm_state{h, c}) (as [envs, hidden] rows, or
// one state), at MINIMAL and up: the least healthy row by the monitor's LSTM
// detector, else the largest, is held for the next check (`lstm`, when the
// check has none), and its figures go to the lstm_health event.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <optional>
#include <string_view>
#include <type_traits>
#include <vector>

#include "simic/archive/archive_error.hpp"
#include "simic/core/error.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"
#include "simic/detect/reference/lstm_bounds.hpp"
#include "simic/emit/events.hpp"
#include "simic/emit/field_writer.hpp"
#include "simic/reduce/auto_backend.hpp"
#include "simic/reduce/backend.hpp"
#include "simic/sensors/sensor.hpp"

namespace simic {
inline namespace v0 {

struct lstm_health_report {
  double h_norm = 0.0;
  double c_norm = 0.0;
  double h_max_abs = 0.0;
  double c_max_abs = 0.0;
  std::uint64_t h_nan = 0, c_nan = 0, h_inf = 0, c_inf = 0;
  std::uint64_t elements = 0;  // of h (c has as many)

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
    s.elements = elements;
    return s;
  }
  // No NaN/Inf and norm_min < norm(h), norm(c) < norm_max.
  bool healthy(double norm_min = defaults::lstm_norm_min, double norm_max = defaults::lstm_norm_max) const {
    return reference::lstm_bounds({.norm_min = norm_min, .norm_max = norm_max}).healthy(signal());
  }
};

// The lstm_health event: the held state's figures (lstm_members in
// core/signals.hpp) and whether the monitor judged it healthy.
struct lstm_health_event {
  static constexpr std::string_view name = "lstm_health";
  lstm_signal lstm{};
  bool healthy = true;
  void describe(field_writer& w) const {
    detail::write_members(w, lstm_members, lstm, "lstm");
    w.flag("healthy", healthy, "lstm");
  }
};

// An LSTM state handed to the session: session::feed(simic::lstm_state{h, c}).
struct lstm_state {
  at::Tensor h, c;
};

struct lstm_health_options {};

template <reduction_backend Backend = auto_backend>
class lstm_health_sensor {
 public:
  using options_type = lstm_health_options;
  using category = cat::critical;
  static constexpr std::string_view name = "lstm_health";

  explicit lstm_health_sensor(Backend backend = {}) : backend_(std::move(backend)) {}
  explicit lstm_health_sensor(const lstm_health_options&, Backend backend = {}) : backend_(std::move(backend)) {}

  pending_report<lstm_health_report> measure_async(const at::Tensor& h, const at::Tensor& c) const {
    validate(h, c, "simic::lstm_health_sensor::measure");
    at::NoGradGuard no_grad;
    const std::vector<at::Tensor> both{h, c};
    return pending_report<lstm_health_report>(backend_.reduce(reduce_request{both, stat_set::basic}),
                                              [](const stats_table& t) { return row_pair(t, 0); });
  }
  lstm_health_report measure(const at::Tensor& h, const at::Tensor& c) const {
    return measure_async(h, c).materialize();
  }

  // Per row of the first dimension (one sequence or environment each, as the
  // bounds are on one state vector): (h[i], c[i]) for every i, all read in one
  // reduction and brought to the host in one transfer.
  pending_report<std::vector<lstm_health_report>> measure_rows_async(const at::Tensor& h, const at::Tensor& c) const {
    static constexpr const char* where = "simic::lstm_health_sensor::measure_rows";
    validate(h, c, where);
    detail::require(h.dim() >= 1, where, "h.dim()", h.dim(), ">= 1 (rows along the first dimension)");
    detail::require(c.sizes() == h.sizes(), where, "c.sizes()", c.sizes(), "the sizes of h");
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> pairs;
    pairs.reserve(2 * static_cast<std::size_t>(h.size(0)));
    for (std::int64_t i = 0; i < h.size(0); ++i) {
      pairs.push_back(h[i]);
      pairs.push_back(c[i]);
    }
    return pending_report<std::vector<lstm_health_report>>(
        backend_.reduce(reduce_request{pairs, stat_set::basic}), [](const stats_table& t) {
          std::vector<lstm_health_report> rows(t.size() / 2);
          for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = row_pair(t, 2 * i);
          return rows;
        });
  }
  std::vector<lstm_health_report> measure_rows(const at::Tensor& h, const at::Tensor& c) const {
    return measure_rows_async(h, c).materialize();
  }

  // ---- in a session (sensors/sensor.hpp) ----------------------------------
  template <class M>
  void feed(const sensor_context<M>& ctx, const lstm_state& x) {
    if (!ctx.template collects<category>()) return;
    for (const lstm_health_report& row : measure_rows(x.h, x.c)) {
      const lstm_signal l = row.signal();
      ++measurements_;
      if (!held_ || (healthy(ctx.monitor(), *held_) && (!healthy(ctx.monitor(), l) || l.c_norm > held_->c_norm)))
        held_ = l;
    }
  }
  void held(signals& s) const {
    if (!s.lstm) s.lstm = held_;
  }
  // The held state is consumed by the step (held() gave it to the check's
  // signals), and written as an event when the check took it: from the
  // checked signals, so that a deferred check writes the state its step
  // took, whatever was fed since.
  template <class M>
  void sense(const sensor_context<M>&, signals&) {
    held_.reset();
  }
  template <class M>
  void record(const sensor_context<M>& ctx, const signals& given, const signals& checked) {
    if (checked.lstm && !given.lstm && ctx.emitting())
      ctx.emit(lstm_health_event{.lstm = *checked.lstm, .healthy = healthy(ctx.monitor(), *checked.lstm)});
  }
  std::uint64_t measurements() const noexcept { return measurements_; }
  // The held state and the count, for a resumed run or a rollback (session_state.hpp).
  template <class Out>
  void save(Out& ar, const std::string& prefix) const {
    const lstm_signal l = held_.value_or(lstm_signal{});
    ar.write(prefix + ".held", at::tensor({static_cast<double>(held_.has_value()), l.h_norm, l.c_norm, l.h_max_abs,
                                           l.c_max_abs, static_cast<double>(l.has_nan), static_cast<double>(l.has_inf),
                                           static_cast<double>(l.elements), static_cast<double>(measurements_)},
                                          at::kDouble));
  }
  template <class In>
  std::function<void()> stage(In& ar, const std::string& prefix) {
    at::Tensor t;
    constexpr std::int64_t fields = 9;
    if (!ar.try_read(prefix + ".held", t) || !t.defined() || t.scalar_type() != at::kDouble || t.dim() != 1 ||
        t.numel() != fields || t.storage().nbytes() < fields * sizeof(double))
      throw archive_error("simic::lstm_health_sensor: archive lacks '" + prefix + ".held' (9 float64 values)");
    const at::Tensor c = t.contiguous();
    const double* v = c.data_ptr<double>();
    std::optional<lstm_signal> held;
    if (v[0] != 0.0)
      held = lstm_signal{.h_norm = v[1], .c_norm = v[2], .h_max_abs = v[3], .c_max_abs = v[4], .has_nan = v[5] != 0.0,
                         .has_inf = v[6] != 0.0, .elements = static_cast<std::uint64_t>(v[7])};
    const auto count = static_cast<std::uint64_t>(v[8]);
    return [this, held, count] {
      held_ = held;
      measurements_ = count;
    };
  }

  // By the first of the monitor's detectors that judges an LSTM state; true without one.
  template <class Monitor>
  static bool healthy(const Monitor& m, const lstm_signal& l) {
    std::optional<bool> ok;
    m.for_each_detector([&](const auto& d) {
      if constexpr (judges_lstm<std::decay_t<decltype(d)>>)
        if (!ok) ok = d.healthy(l);
    });
    return ok.value_or(true);
  }

 private:
  template <class D>
  static constexpr bool judges_lstm = requires(const D& d, const lstm_signal& l) {
    { d.healthy(l) } -> std::convertible_to<bool>;
  };

  static void validate(const at::Tensor& h, const at::Tensor& c, const char* where) {
    detail::require(h.defined(), where, "h", "undefined", "a defined floating-point tensor");
    detail::require(c.defined(), where, "c", "undefined", "a defined floating-point tensor");
    detail::require(at::isFloatingType(h.scalar_type()), where, "h.dtype", h.scalar_type(), "a floating-point type");
    detail::require(at::isFloatingType(c.scalar_type()), where, "c.dtype", c.scalar_type(), "a floating-point type");
    detail::require(c.device() == h.device(), where, "c.device", c.device(), "the device of h (" + h.device().str() + ")");
  }
  // Rows i (h) and i + 1 (c) of the stats table.
  static lstm_health_report row_pair(const stats_table& t, std::size_t i) {
    lstm_health_report r;
    r.h_norm = t[i].norm();
    r.c_norm = t[i + 1].norm();
    r.h_max_abs = t[i].max_abs();
    r.c_max_abs = t[i + 1].max_abs();
    r.h_nan = t[i].nans();
    r.c_nan = t[i + 1].nans();
    r.h_inf = t[i].infs();
    r.c_inf = t[i + 1].infs();
    r.elements = t[i].numel() == t[i + 1].numel() ? t[i].numel() : 0;  // one count for both, or unknown
    return r;
  }

  Backend backend_;
  std::optional<lstm_signal> held_;
  std::uint64_t measurements_ = 0;
};

}  // namespace v0
}  // namespace simic
