// The reduction back-end interface every sensor reads its tensors through.
//
// In:  a reduce_request, a description of a tensor list (all on one device,
//      floating point, any shapes and strides) and which statistics to take.
// Out: one packed [tensors, stat::count] float64 tensor on the tensors' device,
//      one row of raw accumulators per tensor (layout: reduce/stat_layout.hpp).
//
// A back end is any type with `at::Tensor reduce(const reduce_request&) const`
// (concept reduction_backend). simic ships cpu_fused_backend (a single
// vectorised pass of its own over CPU tensors), torch_ops_backend (LibTorch
// operations, any device) and auto_backend (the first for CPU tensors, the
// second otherwise); a fused CUDA kernel plugs in behind the same interface.
// Sensors only ever read rows through tensor_stats (below), which turns raw
// accumulators into the documented figures, so every back end agrees on
// edge cases (empty tensors, all-NaN tensors) by construction.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "simic/core/error.hpp"
#include "simic/reduce/host_copy.hpp"
#include "simic/reduce/stat_layout.hpp"
#include "simic/core/thresholds.hpp"

namespace simic {
inline namespace v0 {

// The columns of a packed row, stat::sumsq .. stat::count, are defined in
// reduce/stat_layout.hpp (shared with the CUDA kernels).

enum class stat_set : std::uint8_t {
  basic,      // norms, max |x|, zero / NaN / Inf counts: what gradient health needs
  full,       // basic plus sum, min, max, spread, small / large counts: per-layer debug
  nonfinite,  // max |x|, NaN / Inf counts, numel: what the NaN/Inf scan needs. A back end
              // may take basic instead (a superset); the other columns are then unspecified.
};

struct reduce_request {
  std::span<const at::Tensor> tensors;  // defined, floating point, one device
  stat_set set = stat_set::basic;
  double small = defaults::layer_small;  // for stat::small (full)
  double large = defaults::layer_large;  // for stat::large (full)
};

template <class B>
concept reduction_backend = requires(const B& b, const reduce_request& r) {
  { b.reduce(r) } -> std::same_as<at::Tensor>;
};

namespace detail {

// Checks a request before any back end reads it; names the offending tensor.
// It runs on every sensor call, so the passing path builds no strings (they
// cost ~270 ns per tensor, 108 us for 400 tensors: docs/performance.md).
inline void validate_request(const reduce_request& r, const char* where) {
  // An undefined tensors[0] fails below, at i = 0, before `device` is used.
  const at::Device device =
      !r.tensors.empty() && r.tensors[0].defined() ? r.tensors[0].device() : at::Device(at::kCPU);
  for (std::size_t i = 0; i < r.tensors.size(); ++i) {
    const at::Tensor& t = r.tensors[i];
    if (t.defined() && at::isFloatingType(t.scalar_type()) && t.device() == device) continue;
    const std::string arg = "tensors[" + std::to_string(i) + "]";
    require(t.defined(), where, arg, "undefined", "a defined tensor");
    require(at::isFloatingType(t.scalar_type()), where, arg + ".dtype", t.scalar_type(),
            "float32, float64, float16 or bfloat16");
    require(false, where, arg + ".device", t.device(), "the device of tensors[0] (" + device.str() + ")");
  }
  require(r.small >= 0.0 && std::isfinite(r.small), where, "small", r.small, "[0, inf)");
  require(r.large >= 0.0 && !std::isnan(r.large), where, "large", r.large, "[0, inf]");
}

// The float32 bound b' such that, for every float x, (x < b') == (x < b) in
// exact arithmetic: float comparisons then count exactly what a float64
// comparison against the user's bound would (half and bfloat16 values are
// exact in float32 too).
inline float float_bound_for_less(double b) noexcept {
  float f = static_cast<float>(b);
  if (static_cast<double>(f) < b) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}
// Likewise for (x > b') == (x > b).
inline float float_bound_for_greater(double b) noexcept {
  float f = static_cast<float>(b);
  if (static_cast<double>(f) > b) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  return f;
}

inline at::Tensor empty_stats(const at::Device& device = at::kCPU) {
  return at::zeros({0, stat::count}, at::TensorOptions().dtype(at::kDouble).device(device));
}

}  // namespace detail

// One row of a materialized stats buffer, read as the documented figures.
class tensor_stats {
 public:
  explicit tensor_stats(const double* row) noexcept : r_(row) {}

  std::uint64_t numel() const noexcept { return count(stat::numel); }
  std::uint64_t zeros() const noexcept { return count(stat::zeros); }
  std::uint64_t nans() const noexcept { return count(stat::nans); }
  std::uint64_t infs() const noexcept { return count(stat::infs); }
  std::uint64_t small() const noexcept { return count(stat::small); }
  std::uint64_t large() const noexcept { return count(stat::large); }
  double sum_of_squares() const noexcept { return r_[stat::sumsq]; }
  double norm() const noexcept { return std::sqrt(r_[stat::sumsq]); }
  double max_abs() const noexcept { return r_[stat::max_abs]; }
  double sum() const noexcept { return r_[stat::sum]; }
  // Empty tensor: 0. Otherwise NaN when any element is NaN.
  double mean() const noexcept { return numel() == 0 ? 0.0 : r_[stat::sum] / static_cast<double>(numel()); }
  // Empty tensor: 0. NaN when any element is NaN or +-Inf (the spread is
  // undefined), never 0. A variance a rounding error below 0 reads as 0.
  double population_std() const noexcept {
    if (numel() == 0) return 0.0;
    if (nans() + infs() != 0) return std::numeric_limits<double>::quiet_NaN();
    const double variance = r_[stat::m2] / static_cast<double>(numel());
    return std::sqrt(variance < 0.0 ? 0.0 : variance);  // not std::max: a NaN m2 stays NaN
  }
  // Over non-NaN elements. Empty tensor: 0; all elements NaN: NaN.
  double min() const noexcept { return extreme(r_[stat::min]); }
  double max() const noexcept { return extreme(r_[stat::max]); }
  double fraction(std::uint64_t n) const noexcept {
    return numel() == 0 ? 0.0 : static_cast<double>(n) / static_cast<double>(numel());
  }
  // The raw accumulators (stat layout), for code shared with the device.
  const double* row() const noexcept { return r_; }

 private:
  std::uint64_t count(std::int64_t col) const noexcept { return static_cast<std::uint64_t>(r_[col]); }
  double extreme(double v) const noexcept {
    if (numel() == 0) return 0.0;
    return nans() == numel() ? std::numeric_limits<double>::quiet_NaN() : v;
  }
  const double* r_;
};

// A host copy of a packed stats buffer.
class stats_table {
 public:
  explicit stats_table(at::Tensor host) : host_(std::move(host)) {}
  std::size_t size() const noexcept { return static_cast<std::size_t>(host_.size(0)); }
  tensor_stats operator[](std::size_t i) const noexcept {
    return tensor_stats(host_.data_ptr<double>() + static_cast<std::int64_t>(i) * stat::count);
  }

 private:
  at::Tensor host_;
};

// What an async sensor call returns: the packed stats still on the device
// (the work is enqueued, nothing waited for) and how to turn them into a
// report. materialize() makes the one device->host transfer; call it after
// the stream is synchronised (or an event recorded after the call has
// completed) to avoid waiting, or start the transfer early with
// copy_to_host() (reduce/host_copy.hpp: materialize() then waits only if it
// is still running; a deferred check does this). The sync sensor calls are
// measure_async(...).materialize(), so both give identical numbers by
// construction.
template <class Report>
class pending_report {
 public:
  using finisher = std::function<Report(const stats_table&)>;
  pending_report(at::Tensor device_stats, finisher finish)
      : stats_(std::move(device_stats)), finish_(std::move(finish)) {}

  // Starts the one device->host transfer now, without waiting for it.
  void copy_to_host() {
    if (!copy_) copy_ = std::make_shared<const host_copy>(stats_.scalar_type() == at::kDouble ? stats_
                                                                                             : stats_.to(at::kDouble));
  }
  // Whether the transfer was started and materialize() would not wait.
  bool ready() const { return copy_ && copy_->ready(); }
  Report materialize() const {
    if (copy_) return finish_(stats_table(copy_->wait().contiguous()));
    // The single device->host copy (a no-op view for CPU tensors).
    at::Tensor host = stats_.to(at::kCPU, at::kDouble).contiguous();
    return finish_(stats_table(std::move(host)));
  }
  const at::Tensor& device_stats() const noexcept { return stats_; }
  // The host half alone, for a table already copied (used to compose sensors).
  Report finish(const stats_table& host) const { return finish_(host); }

 private:
  at::Tensor stats_;
  finisher finish_;
  std::shared_ptr<const host_copy> copy_;  // shared: a pending report is copyable
};

}  // namespace v0
}  // namespace simic
