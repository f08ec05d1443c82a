// Relative update size: how far the optimizer moved the parameters since the
// previous measurement, against their size,
//
//   update_ratio = ||theta_now - theta_then|| / ||theta_now||   (over all watched parameters)
//
// the update-to-weight ratio. It follows the learning rate directly (Adam's
// step is about lr per element, whatever the gradient's scale), so a learning
// rate that jumps or grows shows here at the first step, where the KL or the
// return show it late or not at all (docs/detection.md).
//
// Call measure() once per optimizer step, before the step: it reports the
// previous step (0 after a skipped one) and keeps a copy of the parameters
// for the next call. The first call, and a call whose parameters differ in
// number, shape, dtype or device from the copy, only take the copy (absent
// ratio). Cost per call: dense float32 CPU tensors in one fused pass (the
// weights and the copy read, the copy written); others through ATen
// operations, with one device-to-host transfer; memory: one copy of the
// watched parameters.
//
// In a session (sensors/sensor.hpp) it measures the watched weights in every
// step at NORMAL and up and gives the check `update_ratio`; no event of its own.
// With a deferred check the device totals travel to the host behind the
// step (defer/collect); the copy of the weights is taken at the step as always.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "simic/archive/archive_error.hpp"
#include "simic/reduce/host_copy.hpp"
#include "simic/sensors/param_filter.hpp"
#include "simic/sensors/parameters.hpp"
#include "simic/sensors/sensor.hpp"

namespace simic {
inline namespace v0 {

struct parameter_update_options {
  param_filter filter{};  // for named parameters and modules
};

class parameter_update_sensor {
 public:
  using options_type = parameter_update_options;
  using category = cat::ops_normal;
  static constexpr std::string_view name = "parameter_update";

  explicit parameter_update_sensor(const parameter_update_options& o = {}) : filter_(o.filter) {}

  // Parameter values, or named parameters / a module (filtered).
  template <parameter_source P = std::span<const at::Tensor>>
  std::optional<double> measure(const P& source) {
    const watched_tensors w = watch_tensors(source, filter_, parameter_tensor::value);
    return measure_values(w.tensors);
  }

  // Forgets the copy: the next measure() only takes one.
  void reset() noexcept { snapshot_.clear(); }
  std::size_t tensors() const noexcept { return snapshot_.size(); }

  // ---- in a session (sensors/sensor.hpp) ----------------------------------
  template <class M>
  void sense(const sensor_context<M>& ctx, signals& s) {
    if (!reads(ctx, s)) return;
    s.update_ratio = measure(ctx.weights());
    ++measurements_;
  }
  // A deferred check: the sums start now (the copy of the weights is updated
  // now), their device part starts for the host; collect() adds the ratio.
  template <class M>
  void defer(const sensor_context<M>& ctx, const signals& s) {
    deferred_.reset();
    if (!reads(ctx, s)) return;
    deferred_ = start(ctx.weights());
    ++measurements_;
  }
  template <class M>
  void collect(const sensor_context<M>&, signals& s) {
    if (!deferred_) return;
    s.update_ratio = deferred_->ratio();
    deferred_.reset();
  }
  std::uint64_t measurements() const noexcept { return measurements_; }
  // The copy and the count, for a resumed run or a rollback (session_state.hpp).
  // `weights`: the parameters the copy was taken of (the session's). Where a
  // copy still equals its parameter (a save right after a measure), the
  // parameter itself is written: an archive stores a storage once, so a
  // checkpoint or snapshot that also holds the model holds these weights once.
  template <class Out>
  void save(Out& ar, const std::string& prefix, std::span<const at::Tensor> weights = {}) const {
    ar.write(prefix + ".measurements", at::scalar_tensor(static_cast<std::int64_t>(measurements_), at::kLong));
    ar.write(prefix + ".copies", at::scalar_tensor(static_cast<std::int64_t>(snapshot_.size()), at::kLong));
    for (std::size_t i = 0; i < snapshot_.size(); ++i) {
      const at::Tensor& c = snapshot_[i];
      const bool live = i < weights.size() && weights[i].defined() && weights[i].sizes() == c.sizes() &&
                        weights[i].strides() == c.strides() && weights[i].scalar_type() == c.scalar_type() &&
                        weights[i].device() == c.device() && weights[i].equal(c);
      ar.write(prefix + ".copy." + std::to_string(i), live ? weights[i].detach() : c);
    }
  }
  template <class In>
  std::function<void()> stage(In& ar, const std::string& prefix) {
    const std::int64_t count = read_count(ar, prefix + ".measurements");
    const std::int64_t copies = read_count(ar, prefix + ".copies");
    std::vector<at::Tensor> copy;
    for (std::int64_t i = 0; i < copies; ++i) {
      at::Tensor t;
      if (!ar.try_read(prefix + ".copy." + std::to_string(i), t) || !t.defined())
        throw archive_error("simic::parameter_update_sensor: archive lacks '" + prefix + ".copy." + std::to_string(i) +
                            "' of its " + std::to_string(copies) + " copies");
      copy.push_back(t.clone());
    }
    return [this, count, copy = std::move(copy)]() mutable {
      measurements_ = static_cast<std::uint64_t>(count);
      snapshot_ = std::move(copy);
    };
  }

 private:
  template <class In>
  static std::int64_t read_count(In& ar, const std::string& key) {
    at::Tensor t;
    if (!ar.try_read(key, t) || !t.defined() || t.scalar_type() != at::kLong || t.dim() != 0 ||
        t.storage().nbytes() < sizeof(std::int64_t))
      throw archive_error("simic::parameter_update_sensor: archive lacks '" + key + "' (an int64 scalar)");
    const std::int64_t v = t.item<std::int64_t>();
    if (v < 0) throw archive_error("simic::parameter_update_sensor: '" + key + "' = " + std::to_string(v) + " < 0");
    return v;
  }
  template <class M>
  static bool reads(const sensor_context<M>& ctx, const signals& s) {
    return !s.update_ratio && !ctx.weights().empty() && ctx.template collects<category>();
  }

  // A measurement started: host sums so far, and device totals (change,
  // size) on their way to the host, one per device.
  struct started {
    bool copy_only = false;  // the first call, or a changed layout: no ratio
    double change = 0.0, size = 0.0;
    std::vector<host_copy> totals;
    std::optional<double> ratio() const {
      if (copy_only) return std::nullopt;
      double c = change, q = size;
      for (const host_copy& t : totals) {
        const at::Tensor& h = t.wait();
        c += h.data_ptr<double>()[0];
        q += h.data_ptr<double>()[1];
      }
      if (!(q > 0.0) || !std::isfinite(q) || !std::isfinite(c)) return std::nullopt;
      return std::sqrt(c / q);
    }
  };

  std::optional<double> measure_values(std::span<const at::Tensor> weights) { return start(weights).ratio(); }

  // Everything but the wait for the device totals: the copy is updated here.
  started start(std::span<const at::Tensor> weights) {
    at::NoGradGuard no_grad;
    for (std::size_t i = 0; i < weights.size(); ++i)
      if (!weights[i].defined())
        throw std::invalid_argument("simic::parameter_update_sensor::measure: weights[" + std::to_string(i) +
                                    "] is undefined; valid: defined tensors");
    started out;
    if (!matches(weights)) {
      snapshot_.clear();
      snapshot_.reserve(weights.size());
      for (const at::Tensor& w : weights) snapshot_.push_back(w.detach().clone());
      out.copy_only = true;
      return out;
    }
    // Dense float32 tensors on the CPU: one fused pass (read both, write the
    // copy, float64 sums). Others: ATen operations on their device, both
    // totals crossing to the host in one transfer per device.
    std::vector<at::Tensor> totals;  // per device, in order of first appearance
    for (std::size_t i = 0; i < weights.size(); ++i) {
      const at::Tensor& w = weights[i];  // read under NoGradGuard: no detach (a new TensorImpl per tensor) needed
      at::Tensor& copy = snapshot_[i];
      if (fusable(w, copy)) {
        fused_pass(w.data_ptr<float>(), copy.data_ptr<float>(), w.numel(), out.change, out.size);
        continue;
      }
      // half and bfloat16 are squared in float: their own rounding (1e-3) would show
      const bool narrow = w.scalar_type() == at::kHalf || w.scalar_type() == at::kBFloat16;
      const at::Tensor step = narrow ? (w - copy).to(at::kFloat) : w - copy;
      const at::Tensor value = narrow ? w.to(at::kFloat) : w;
      const at::Tensor pair = at::stack({step.square().sum(at::kDouble), value.square().sum(at::kDouble)});
      copy.copy_(w);
      auto same = std::find_if(totals.begin(), totals.end(), [&](const at::Tensor& t) { return t.device() == pair.device(); });
      if (same == totals.end())
        totals.push_back(pair);
      else
        *same = *same + pair;
    }
    for (const at::Tensor& t : totals) out.totals.emplace_back(t);
    return out;
  }
  bool matches(std::span<const at::Tensor> weights) const {
    if (weights.size() != snapshot_.size() || snapshot_.empty()) return false;
    for (std::size_t i = 0; i < weights.size(); ++i) {
      const at::Tensor& w = weights[i];
      const at::Tensor& s = snapshot_[i];
      if (w.sizes() != s.sizes() || w.scalar_type() != s.scalar_type() || w.device() != s.device())
        return false;
    }
    return true;
  }

  static bool fusable(const at::Tensor& w, const at::Tensor& copy) {
    return w.device().is_cpu() && w.scalar_type() == at::kFloat && w.is_contiguous() && copy.is_contiguous();
  }
  // Four independent float64 accumulators per sum keep the loop at about one
  // element per cycle (a single one waits on each add); strict floating
  // point, no vector code needed.
  static void fused_pass(const float* w, float* copy, std::int64_t n, double& change, double& size) noexcept {
    double c[4] = {0, 0, 0, 0}, q[4] = {0, 0, 0, 0};
    std::int64_t k = 0;
    for (; k + 4 <= n; k += 4)
#pragma GCC unroll 4  // at -O2 too: c and q then stay in registers
      for (int j = 0; j < 4; ++j) {
        const double x = w[k + j], d = x - copy[k + j];
        c[j] += d * d;
        q[j] += x * x;
        copy[k + j] = w[k + j];
      }
    for (; k < n; ++k) {
      const double x = w[k], d = x - copy[k];
      c[0] += d * d;
      q[0] += x * x;
      copy[k] = w[k];
    }
    change += (c[0] + c[1]) + (c[2] + c[3]);
    size += (q[0] + q[1]) + (q[2] + q[3]);
  }

  std::uint64_t measurements_ = 0;
  param_filter filter_;
  std::vector<at::Tensor> snapshot_;
  std::optional<started> deferred_;  // a deferred check's measurement
};

}  // namespace v0
}  // namespace simic
