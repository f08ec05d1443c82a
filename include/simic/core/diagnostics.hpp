// Host-side results of the DEBUG-level diagnostics: plain structs, no
// LibTorch, so that events and sinks can carry them without including the
// sensors. The sensors (simic/sensors/debug_*.hpp) fill them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace simic {
inline namespace v0 {

// Per-layer (per named parameter) gradient statistics.
struct layer_gradient_stats {
  std::string name;
  std::uint64_t numel = 0;
  double norm = 0.0;             // L2
  double mean = 0.0;
  double std = 0.0;              // population standard deviation
  double min = 0.0;
  double max = 0.0;
  double zero_fraction = 0.0;    // exact zeros
  double small_fraction = 0.0;   // |g| < small bound (default 1e-6)
  double large_fraction = 0.0;   // |g| > large bound (default 10)
  std::uint64_t nan_count = 0;
  std::uint64_t inf_count = 0;
  double health = 1.0;           // per-layer health score in [0, 1]
  bool dead = false;             // zero_fraction > dead bound (default 0.9)
  bool exploding = false;        // large_fraction > exploding bound (default 0.1)
};

struct layer_gradient_report {
  std::vector<layer_gradient_stats> layers;
  std::vector<std::string> dead_layers;
  std::vector<std::string> exploding_layers;
  std::uint64_t skipped_without_grad = 0;
};

// One parameter holding NaN or Inf in its weight or its gradient.
struct nonfinite_parameter {
  std::string name;
  bool weight_nan = false;
  bool weight_inf = false;
  bool grad_nan = false;
  bool grad_inf = false;
};

struct nan_inf_scan_report {
  std::vector<nonfinite_parameter> offenders;  // in parameter order
  double max_abs_weight = 0.0;
  double max_abs_grad = 0.0;
  std::optional<bool> loss_finite;             // absent when no loss was given
  std::uint64_t parameters_scanned = 0;
  bool clean() const noexcept { return offenders.empty() && loss_finite.value_or(true); }
};

// One PPO sample whose importance ratio is outside the bounds.
struct ratio_outlier {
  std::int64_t index = 0;
  double ratio = 0.0;
  std::int64_t action = 0;
};

struct ratio_diagnostic_report {
  std::vector<ratio_outlier> outliers;      // in batch order
  double mean_abs_logprob_diff = 0.0;       // mean |new - old| log-prob
  double max_abs_logprob_diff = 0.0;
  std::uint64_t batch_size = 0;
  double upper = 0.0;                       // the bounds used
  double lower = 0.0;
};

// Memory at one moment: the process's resident set and, for a device that
// has an allocator reader (simic/sensors/cuda_memory.hpp for CUDA), its allocator's
// figures. Absent: not known on this platform / device.
struct device_memory {
  std::int64_t device = 0;             // device index
  std::uint64_t allocated = 0;         // bytes in live tensors
  std::uint64_t reserved = 0;          // bytes the caching allocator holds
  std::uint64_t peak_allocated = 0;    // largest `allocated` since the process began (or the last reset)
  friend bool operator==(const device_memory&, const device_memory&) = default;
};

struct memory_stats {
  std::optional<std::uint64_t> rss_bytes{};  // resident set size of the process
  std::optional<device_memory> device{};
  friend bool operator==(const memory_stats&, const memory_stats&) = default;
};

}  // namespace v0
}  // namespace simic
