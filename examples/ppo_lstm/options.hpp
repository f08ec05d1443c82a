// Options of the PPO+LSTM trainer and the command line that sets them.
// No LibTorch here: the command line is parsed (and its errors tested)
// without it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../common/recovery_options.hpp"
#include "simic/core/level.hpp"

namespace ppo_lstm {

// The faults the trainer can inject, and the anomaly each one is meant to cause.
enum class fault : unsigned char {
  nan_grad,          // numerical_instability (a NaN in one gradient; the step is skipped)
  grad_explode,      // gradient_exploding (gradients x1e3 before clipping)
  grad_vanish,       // gradient_vanishing (gradients x1e-9)
  grad_drift,        // gradient_norm_drift (gradients scaled x2, x4, x8, x8, ... step by step)
  lr_spike,          // kl_spike / kl_extreme, ratio_explosion / ratio_collapse (learning rate x20: run_options::lr_spike_factor)
  entropy_collapse,  // entropy_collapse (greedy logit +10: a near-deterministic policy)
  value_collapse,    // value_collapse (the critic's rollout estimates swamped by noise)
  lstm_explode,      // lstm_unhealthy (the LSTM cell state c <- 1e3 (c + 1) at the rollout's first step)
  reward_drop,       // performance_degradation (the environment pays no reward)
  core_vanish,       // host_ratio_drift (the LSTM core's gradients x1e-6: its learning signal dies, the rest learns)
  // slow faults: degradation that builds up over tens of updates
  lr_ramp,           // the learning rate grows 5% per update while the fault lasts (x2.65 after 20)
  reward_decay,      // the reward shrinks 1% per update while the fault lasts (-18% after 20)
  // abrupt, listed last (added for bench/recovery)
  loss_scale,        // loss_extreme, gradient_exploding (the loss x1e6 at the update's first optimizer step)
};

inline constexpr std::array<std::string_view, 13> fault_names{
    "nan-grad", "grad-explode", "grad-vanish", "grad-drift", "lr-spike", "entropy-collapse",
    "value-collapse", "lstm-explode", "reward-drop", "core-vanish", "lr-ramp", "reward-decay", "loss-scale"};

constexpr std::string_view to_string(fault f) noexcept { return fault_names[static_cast<unsigned>(f)]; }

// `kind` is active on updates first..last (1-based, inclusive).
struct injection {
  fault kind;
  std::uint64_t first;
  std::uint64_t last;
  bool covers(std::uint64_t update) const noexcept { return update >= first && update <= last; }
};

inline constexpr std::uint64_t until_end = ~std::uint64_t{0};

// lr-spike's factor on the learning rate unless run_options::lr_spike_factor says otherwise.
inline constexpr double default_lr_spike_factor = 20.0;

// Parses KIND@U (update U only), KIND@U-V (U through V) or KIND@U- (U to the end).
injection parse_injection(std::string_view spec);

// Which detector configuration the trainer's monitor runs.
enum class detector_preset : unsigned char {
  simic,      // simic::ppo_host_monitor: noise-grounded detectors, onset and clear, critical escalates
  reference,  // simic::make_reference_monitor(): the reference telemetry's thresholds and behaviour
};
inline constexpr std::array<std::string_view, 2> detector_preset_names{"simic", "reference"};

// Where a data-parallel job's events go (--events-ranks): every rank its own
// files (PATH.rank<R>.EXT), or rank 0 alone (PATH: the job's anomalies).
enum class events_ranks : unsigned char { every, rank0 };
inline constexpr std::array<std::string_view, 2> events_ranks_names{"every", "rank0"};

// A data-parallel job: `ranks` processes on 127.0.0.1 (docs/trainer.md).
inline constexpr int max_ranks = 64;
struct data_parallel_options {
  int ranks = 1;                    // 1: not data-parallel
  int rank = 0;                     // this process's rank
  std::uint16_t master_port = 0;    // rank 0's TCPStore; 0 with ranks > 1: this process launches the job
  int fault_rank = -1;              // --inject applies on this rank only (-1: every rank)
  events_ranks events = events_ranks::every;
  std::uint32_t timeout_s = 20;     // a rank that stops answering fails the others after this
  bool launcher() const noexcept { return ranks > 1 && master_port == 0; }
  bool member() const noexcept { return ranks > 1 && master_port != 0; }
};

// The memory a run may plan for unless told otherwise (--max-memory-gib).
inline constexpr std::uint64_t gib = std::uint64_t{1} << 30;
inline constexpr std::uint64_t default_memory_budget = 8 * gib;

struct run_options {
  // training
  std::uint64_t updates = 200;       // PPO updates (rollout + optimisation)
  std::uint64_t planned_updates = 0; // length of the schedule progress is measured against; 0: updates
                                     // (a larger value runs the first `updates` of a longer schedule)
  int envs = 8;                      // parallel CartPole environments
  int rollout = 128;                 // steps per environment per update
  int seq_len = 16;                  // truncated-BPTT sequence length
  int ppo_epochs = 4;                // passes over the rollout per update
  int minibatches = 2;               // minibatches per pass
  double lr = 1e-3;                  // Adam learning rate
  int hidden = 64;                   // LSTM width
  std::uint64_t seed = 1;
  int threads = 1;                   // at::set_num_threads
  // telemetry
  detector_preset detectors = detector_preset::simic;
  simic::level level = simic::level::normal;
  std::uint32_t epoch_updates = 1;   // updates per epoch (monitor.tick() at each epoch end)
  std::uint32_t escalation_epochs = 5;
  std::uint32_t max_skips = 0;       // consecutive skipped steps before stopping; 0: two updates' worth
  std::string events_path;           // JSONL events ("" : none)
  std::string profile_dir;           // profiler output ("" : none)
  std::string tensorboard_dir;       // TensorBoard event file's directory ("" : none)
  std::vector<injection> injections;
  double lr_spike_factor = default_lr_spike_factor;  // lr-spike: the learning rate times this (> 0)
  int lr_spike_steps = 0;            // lr-spike: on the first N optimizer steps of each of its updates (0: all)
  data_parallel_options parallel;
  // recovery and resume (docs/trainer.md): --recover, --recover-every,
  // --recover-keep, --recover-dir, --checkpoint-every (updates), --checkpoint,
  // --resume; not with --ranks
  examples_common::recovery_settings recovery;
  // output
  bool progress_lines = true;        // one line per update on stdout
  bool record_signals = false;       // keep every check's signals in the summary (tests)
  int eval_episodes = 0;             // greedy episodes the final policy plays (evaluate.hpp); 0: none
  // resources
  std::uint64_t memory_budget = default_memory_budget;  // bytes the estimate may reach (--max-memory-gib)

  std::uint64_t schedule() const noexcept { return planned_updates != 0 ? planned_updates : updates; }
  int steps_per_update() const noexcept { return ppo_epochs * minibatches; }
  // This rank's --events file and --tensorboard directory ("" : none).
  std::string rank_events_path() const;
  std::string rank_tensorboard_dir() const;
  std::uint32_t effective_max_skips() const noexcept {
    return max_skips != 0 ? max_skips : static_cast<std::uint32_t>(2 * steps_per_update());
  }
  // Bytes the run's tensors need at their peak, estimated from the options
  // (docs/trainer.md): rollout buffers and their sequence copies, the LSTM
  // states at each sequence start, weights with gradients and Adam's moments,
  // and one minibatch's BPTT activations with their gradients.
  double estimated_memory_bytes() const noexcept;
  // The options that define the run (a resumed run must have the same):
  // everything but the output, the thread count, the paths and the memory limit.
  examples_common::run_definition definition() const;
  // Throws std::invalid_argument naming the first bad option and its valid
  // range, or the options whose estimated memory exceeds memory_budget.
  void validate() const;
};

// The usage text printed by --help and after an error.
std::string usage(std::string_view program);

struct parsed_command_line {
  run_options options;
  bool help = false;
};

// Parses argv (without argv[0]). Throws std::invalid_argument with a message
// naming the option and the valid values.
parsed_command_line parse_command_line(const std::vector<std::string>& args);

}  // namespace ppo_lstm
