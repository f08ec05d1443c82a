// bench/detection: the PPO example trainer (examples/ppo_lstm) as a trainer
// of the detection benchmark (matrix.hpp).
#pragma once

#include "matrix.hpp"

namespace detection {

// Each case trains once, with the trainer's own monitor (simic's defaults,
// simic::ppo_host_monitor) obeying its responses, and records every check's
// signals. Both presets are then scored on the same signals: each gets a fresh
// monitor, fed every check in order and ticked at every epoch end, exactly as
// the trainer does (the replay of simic's defaults must give the trainer's own
// anomalies, which is checked). The unit is the PPO update; the task metric
// the mean return (slow faults: detected before it fell 20 % below its value
// at the injection).
trainer ppo_trainer();

}  // namespace detection
