// A sensor of a user's, written outside simic: the L2 norm of the watched
// weights every few updates, as an event of its own. One header: its
// options, when it reads, what it measures, its payload and how that is
// written (docs/guide.md, "Writing a sensor", quotes it).
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <string_view>

#include "simic/core/error.hpp"
#include "simic/sensors/sensor.hpp"

struct weight_norm_event {                        // its event: a name and describe()
  static constexpr std::string_view name = "weight_norm";
  double norm = 0.0;
  void describe(simic::field_writer& w) const {
    w.real("norm", norm, "weights");              // JSON "norm"; TensorBoard "weights/norm"
  }
};

struct weight_norm_options {
  std::uint32_t every = 10;                       // in updates 1, 1 + every, ...
};

class weight_norm_sensor {
 public:
  using options_type = weight_norm_options;
  using category = simic::cat::ops_normal;         // reads at NORMAL and up
  static constexpr std::string_view name = "weight_norm";
  explicit weight_norm_sensor(const weight_norm_options& o = {}) : o_(o) {
    simic::require_argument(o.every >= 1, "weight_norm_options", "every", o.every, ">= 1");
  }
  template <class M>                              // after the check, before the step record
  void record(const simic::sensor_context<M>& ctx, const simic::signals&) {
    if (!ctx.template collects<category>() || !simic::due_every(ctx.update(), o_.every) ||
        ctx.step_in_update() != 0)
      return;
    double sq = 0.0;
    for (const at::Tensor& w : ctx.weights()) sq += w.detach().to(at::kDouble).square().sum().item<double>();
    ++n_;
    if (ctx.emitting()) ctx.emit(weight_norm_event{.norm = std::sqrt(sq)});
  }
  std::uint64_t measurements() const noexcept { return n_; }

 private:
  weight_norm_options o_;
  std::uint64_t n_ = 0;
};
