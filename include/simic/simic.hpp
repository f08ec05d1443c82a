// Umbrella header: everything that needs no LibTorch. The tensor sensors
// (simic/sensors/...) and the torch archive adapter are included separately.
#pragma once

#include "simic/version.hpp"
#include "simic/core/anomaly.hpp"
#include "simic/core/config.hpp"
#include "simic/core/ema.hpp"
#include "simic/core/level.hpp"
#include "simic/core/response.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"
#include "simic/monitor.hpp"
#include "simic/presets/ppo.hpp"
#include "simic/presets/reference.hpp"
#include "simic/presets/supervised.hpp"
#include "simic/reduce/gradient_summary.hpp"
