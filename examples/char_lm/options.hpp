// Options of the character-level (byte-level) language-model trainer and the
// command line that sets them. No LibTorch here: the command line and the
// learning-rate schedule are parsed, computed and tested without it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../common/recovery_options.hpp"
#include "simic/core/level.hpp"

namespace char_lm {

// The faults the trainer can inject (docs/lm_trainer.md). "From" faults act
// from their step to the end of the run; the others at their step only;
// KIND@STEP-LAST makes any of them act at steps STEP..LAST.
enum class fault : unsigned char {
  lr_spike,       // from: the learning rate x20 (run_options::lr_spike_factor)
  lr_ramp,        // from: the learning rate x1.02 per step, compounding (x1.02 at the fault's first step)
  bad_batch,      // one step: a batch of uniformly random bytes (inputs and targets)
  nan_batch,      // one step: the embedding output times NaN, so the loss and gradients are NaN
  loss_scale,     // one step: the loss x1e6 (its gradients too)
  dead_layer,     // one step: the first block's MLP weights and biases zeroed (once; training may revive them)
  lr_collapse,    // from: the learning rate set to 1e-8
  label_shuffle,  // from: each sequence's targets replaced by another sequence's of the batch
};

inline constexpr std::array<std::string_view, 8> fault_names{
    "lr-spike", "lr-ramp", "bad-batch", "nan-batch", "loss-scale", "dead-layer", "lr-collapse", "label-shuffle"};

constexpr std::string_view to_string(fault f) noexcept { return fault_names[static_cast<unsigned>(f)]; }

// Whether a fault lasts from its step to the end of the run (else: its step only).
constexpr bool lasts(fault f) noexcept {
  return f == fault::lr_spike || f == fault::lr_ramp || f == fault::lr_collapse || f == fault::label_shuffle;
}

// `kind` injected at optimizer step `at` (1-based; 0: --inject-at, else half
// way) through step `last` (0: the kind's own extent, lasts()).
struct injection {
  fault kind;
  std::uint64_t at = 0;
  std::uint64_t last = 0;
};

// Parses KIND, KIND@STEP or KIND@STEP-LAST (steps STEP..LAST, any kind).
// Throws std::invalid_argument naming the valid kinds.
injection parse_injection(std::string_view spec);

// lr-spike's factor on the learning rate unless run_options::lr_spike_factor says otherwise.
inline constexpr double default_lr_spike_factor = 20.0;

// Which detector configuration the trainer's monitor runs.
enum class detector_preset : unsigned char {
  simic,      // simic::supervised_monitor (simic/presets/supervised.hpp)
  reference,  // simic::make_reference_monitor(): the reference telemetry's thresholds and behaviour
};
inline constexpr std::array<std::string_view, 2> detector_preset_names{"simic", "reference"};

// Where the fortune files are (the Debian package `fortunes`).
inline constexpr const char* default_data_dir = "/usr/share/games/fortunes";
inline constexpr int vocab = 256;  // bytes

struct run_options {
  // model
  int layers = 2;       // transformer blocks (2..4)
  int d_model = 64;
  int heads = 4;
  int context = 64;     // tokens per sequence (the learned position table's size)
  // training
  std::uint64_t steps = 3000;   // optimizer steps
  int batch = 32;               // sequences per step
  double lr = 2e-3;             // peak learning rate (Adam)
  double min_lr_ratio = 0.1;    // the cosine decays to lr * this at the last step
  std::uint64_t warmup = 0;     // linear warm-up steps; 0: min(200, steps / 10)
  double clip = 1.0;            // gradient clipping (total norm)
  std::uint64_t eval_every = 250;  // steps per epoch: validation loss, end_epoch()
  int eval_batches = 8;            // validation batches (of `batch` windows) per evaluation
  std::uint64_t seed = 1;
  int threads = 1;              // at::set_num_threads
  std::string data_dir = default_data_dir;
  // telemetry
  detector_preset preset = detector_preset::simic;
  simic::level level = simic::level::normal;
  std::uint32_t escalation_epochs = 2;
  std::uint32_t max_skips = 10;  // consecutive skipped steps before stopping
  std::string events_path;       // JSONL events ("" : none)
  std::string tensorboard_dir;   // TensorBoard event file's directory ("" : none)
  std::vector<injection> injections;
  std::uint64_t inject_at = 0;   // default step of an injection; 0: steps / 2 (at least 1)
  double lr_spike_factor = default_lr_spike_factor;  // lr-spike: the learning rate times this (> 0)
  // recovery and resume (docs/trainer.md): --recover, --recover-every,
  // --recover-keep, --recover-dir, --checkpoint-every (steps), --checkpoint, --resume
  examples_common::recovery_settings recovery;
  // output
  bool progress_lines = true;    // a line per epoch and per step with anomalies on stdout

  std::uint64_t effective_warmup() const noexcept;
  std::uint64_t injection_step(const injection& i) const noexcept;
  // The last step an injection acts at: its `last`, else its step (one-step
  // kinds) or the run's last step (lasts()).
  std::uint64_t injection_last(const injection& i) const noexcept;
  // The options that define the run (a resumed run must have the same):
  // everything but the output, the thread count and the paths; the data by
  // its sizes (`train_bytes`, `valid_bytes`).
  examples_common::run_definition definition(std::uint64_t train_bytes, std::uint64_t valid_bytes) const;
  // Throws std::invalid_argument naming the first bad option and its valid range.
  void validate() const;
};

// The learning rate of optimizer step `step` (1-based, 1..steps) before any
// fault: linear warm-up to `lr` over the warm-up steps (lr * step / warmup),
// then cosine decay to lr * min_lr_ratio at the last step:
//   lr_min + (lr - lr_min) * (1 + cos(pi * (step - warmup) / (steps - warmup))) / 2.
double scheduled_lr(const run_options& o, std::uint64_t step) noexcept;

// The usage text printed by --help and after an error.
std::string usage(std::string_view program);

struct parsed_command_line {
  run_options options;
  bool help = false;
};

// Parses argv (without argv[0]). Throws std::invalid_argument with a message
// naming the option and the valid values.
parsed_command_line parse_command_line(const std::vector<std::string>& args);

}  // namespace char_lm
