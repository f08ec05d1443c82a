// The supervised preset: simic's defaults for a trainer that minimises a loss
// on labelled (or next-token) data: a classifier, a regressor, a language
// model. Detectors for the signals such a trainer has: NaN/Inf, the
// gradients (their norm against its own noise, bounds relative to each run's
// own scale), the update ratio, the loss (its spikes and divergence:
// loss_shift) and the performance, and training
// that stopped learning. None reads a PPO figure, so a correct integration
// raises no signal_missing warning (docs/detection.md, "Presets"). A GAN's
// losses are no measure of learning: docs/guide.md has its recipe.
#pragma once

#include "simic/detect/relative_gradient_bounds.hpp"
#include "simic/detect/gradient_shift.hpp"
#include "simic/detect/learning_stall.hpp"
#include "simic/detect/loss_shift.hpp"
#include "simic/detect/numerical_stability.hpp"
#include "simic/detect/performance_drop.hpp"
#include "simic/detect/update_shift.hpp"
#include "simic/monitor.hpp"

namespace simic {
inline namespace v0 {

using supervised_monitor =
    monitor<numerical_stability, gradient_shift, update_shift, relative_gradient_bounds, performance_drop,
            learning_stall, loss_shift>;

}  // namespace v0
}  // namespace simic
