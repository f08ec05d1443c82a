// bench/detection: the language-model example trainer (examples/char_lm) as a
// trainer of the detection benchmark (matrix.hpp).
#pragma once

#include "matrix.hpp"

namespace detection {

// The LM trainer records no signals for a replay, so each case trains once per
// preset (run_options::preset simic, then reference), each run obeying its own
// monitor. The unit is the optimizer step; false alarms are counted per 10,000
// steps; the task metric is the training loss (slow faults: detected before
// its mean over the last 50 steps rose 20 % above its best such mean before
// the injection).
trainer char_lm_trainer();

// Run length of the quick matrix (optimizer steps); the full matrix runs the
// trainer's default (run_options::steps, 3000).
inline constexpr std::uint64_t char_lm_quick_steps = 1500;

}  // namespace detection
