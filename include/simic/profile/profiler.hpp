// Opt-in profiling over LibTorch's profiler with a wait / warmup / active /
// repeat schedule (the shape of torch.profiler.schedule), writing one
// Chrome-trace JSON file (chrome://tracing, Perfetto) per active window.
//
//   simic::profiler prof({.enabled = true, .dir = "runs/a/profile",
//                         .schedule = {.wait = 5, .warmup = 1, .active = 3, .repeat = 2}});
//   for (...) {
//     train_one_update();
//     if (auto trace = prof.step()) hub.emit(update, epoch, *trace);  // a file was written
//   }
//
// Back ends (chosen in sensors/torch_compat.hpp): Kineto on LibTorch 2.x (CPU
// and, where present, CUDA activity); the legacy profiler on Debian's 1.13,
// which has no Kineto (CPU operators only). Disabled, the profiler does
// nothing: no directory, no file, no LibTorch call. See docs/profiling.md.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <ATen/ATen.h>

#include "simic/core/error.hpp"
#include "simic/emit/field_writer.hpp"
#include "simic/sensors/torch_compat.hpp"  // SIMIC_TORCH_KINETO

#if SIMIC_TORCH_KINETO
#include <torch/csrc/autograd/profiler_kineto.h>
#else
#include <torch/csrc/autograd/profiler_legacy.h>
#endif

namespace simic {
inline namespace v0 {

// The profiler_trace event: one Chrome-trace file written.
struct profiler_trace_event {
  static constexpr std::string_view name = "profiler_trace";
  std::string path{};           // the Chrome-trace JSON file written
  std::uint64_t first_step = 0;  // profiler step of the first active step
  std::uint64_t steps = 0;       // active steps in the trace
  std::uint32_t cycle = 0;       // 0-based repeat index
  void describe(field_writer& w) const {
    w.text("path", path);
    w.count("first_step", first_step);
    w.count("steps", steps);
    w.count("cycle", cycle);
  }
};

struct profiler_schedule {
  std::uint32_t wait = 1;    // steps not profiled at the start of each cycle
  std::uint32_t warmup = 1;  // steps profiled and thrown away (the profiler settles)
  std::uint32_t active = 3;  // steps recorded into the cycle's trace file, >= 1
  std::uint32_t repeat = 1;  // cycles; 0: repeat until the profiler is closed

  std::uint64_t cycle_length() const noexcept { return std::uint64_t{wait} + warmup + active; }
};

struct profiler_options {
  bool enabled = false;
  std::filesystem::path dir = "profile";  // created when enabled
  profiler_schedule schedule{};
  std::string prefix = "trace";           // file names: <prefix>_cycle<c>_steps<a>-<b>.json
  bool cuda = true;                       // record CUDA activity when CUDA is there (Kineto only)
  bool record_shapes = false;             // input shapes (Kineto only)
  bool profile_memory = false;            // allocations (Kineto only)
};

enum class profiler_phase : unsigned char { idle, wait, warmup, active, done };

class profiler {
 public:
  explicit profiler(profiler_options opts = {}) : opts_(std::move(opts)) {
    constexpr auto where = "simic::profiler";
    detail::require(opts_.schedule.active >= 1, where, "schedule.active", opts_.schedule.active, ">= 1");
    if (!opts_.enabled) return;
    detail::require(!opts_.dir.empty(), where, "dir", "\"\"", "a directory path");
    detail::require(!opts_.prefix.empty(), where, "prefix", "\"\"", "a non-empty file name prefix");
    std::error_code ec;
    std::filesystem::create_directories(opts_.dir, ec);
    if (ec) throw std::system_error(ec, std::string(where) + ": cannot create directory " + opts_.dir.string());
    enter(0);
  }
  profiler(const profiler&) = delete;
  profiler& operator=(const profiler&) = delete;
  // Closes: an active window cut short is still written (errors go to stderr).
  ~profiler() {
    try {
      close();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "simic::profiler: could not write the last trace: %s\n", e.what());
    }
  }

  // Call once at the end of every training step, on the thread that runs it.
  // Returns the trace written when this step ended an active window.
  std::optional<profiler_trace_event> step() {
    if (!opts_.enabled || phase_of(step_) == profiler_phase::done) return std::nullopt;
    std::optional<profiler_trace_event> written;
    const std::uint64_t next = step_ + 1;
    const bool window_ends = phase_of(step_) == profiler_phase::active &&
                             (phase_of(next) != profiler_phase::active || cycle_of(next) != cycle_of(step_));
    step_ = next;
    if (window_ends) written = stop_and_write(step_ - 1);
    enter(step_);
    return written;
  }

  // Stops profiling. A window cut short is written (its trace returned) if
  // at least one of its steps ended with step(). Later step() calls do nothing.
  std::optional<profiler_trace_event> close() {
    if (!opts_.enabled || closed_) return std::nullopt;
    closed_ = true;
    std::optional<profiler_trace_event> written;
    if (recording_ && step_ > first_active_) {
      written = stop_and_write(step_ - 1);  // the steps that ended with step()
    } else if (recording_) {
      discard_recording();  // the window had only just begun: nothing recorded
    } else if (warming_) {
      abandon_warmup();
    }
    return written;
  }

  bool enabled() const noexcept { return opts_.enabled; }
  // The phase of the step now running (idle when disabled; done after the last cycle or close()).
  profiler_phase phase() const noexcept {
    if (!opts_.enabled) return profiler_phase::idle;
    return closed_ ? profiler_phase::done : phase_of(step_);
  }
  std::uint64_t steps() const noexcept { return step_; }
  std::uint32_t traces_written() const noexcept { return traces_; }
  static constexpr bool uses_kineto() noexcept { return detail::profiler_has_kineto; }
  const profiler_options& options() const noexcept { return opts_; }

  // The phase of step `s` (0-based) under `schedule`.
  static profiler_phase phase_at(const profiler_schedule& schedule, std::uint64_t s) noexcept {
    const std::uint64_t len = schedule.cycle_length();
    if (schedule.repeat != 0 && s / len >= schedule.repeat) return profiler_phase::done;
    const std::uint64_t p = s % len;
    if (p < schedule.wait) return profiler_phase::wait;
    if (p < std::uint64_t{schedule.wait} + schedule.warmup) return profiler_phase::warmup;
    return profiler_phase::active;
  }

 private:
  profiler_phase phase_of(std::uint64_t s) const noexcept {
    return closed_ ? profiler_phase::done : phase_at(opts_.schedule, s);
  }
  std::uint64_t cycle_of(std::uint64_t s) const noexcept { return s / opts_.schedule.cycle_length(); }

  // Starts what step `s` needs.
  void enter(std::uint64_t s) {
    switch (phase_of(s)) {
      case profiler_phase::warmup:
        if (!warming_) start_warmup();
        break;
      case profiler_phase::active:
        if (!recording_) start_recording(s);
        break;
      default:
        break;
    }
  }

#if SIMIC_TORCH_KINETO
  std::set<torch::profiler::impl::ActivityType> activities() const {
    std::set<torch::profiler::impl::ActivityType> a{torch::profiler::impl::ActivityType::CPU};
    if (opts_.cuda && at::hasCUDA()) a.insert(torch::profiler::impl::ActivityType::CUDA);
    return a;
  }
  torch::profiler::impl::ProfilerConfig kineto_config() const {
    return torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::KINETO, opts_.record_shapes,
                                                 opts_.profile_memory);
  }
#endif

  void start_warmup() {
#if SIMIC_TORCH_KINETO
    // Kineto's warm-up: prepare (CUPTI and buffers) without recording.
    torch::autograd::profiler::prepareProfiler(kineto_config(), activities());
#else
    // The legacy profiler cannot prepare: record into a stream that is thrown away.
    discard_.str({});
    legacy_ = std::make_unique<torch::autograd::profiler::RecordProfile>(discard_);
#endif
    warming_ = true;
  }
  // Ends the warm-up as the recording starts (Kineto records what it prepared).
  void stop_warmup() {
    warming_ = false;
#if !SIMIC_TORCH_KINETO
    legacy_.reset();
    discard_.str({});
#endif
  }
  // Ends a warm-up that no recording follows (closed during it). Kineto has no
  // call to drop a prepared trace: it is started and stopped, its result
  // discarded, as torch.profiler does, so that no trace is left prepared (its
  // CUPTI buffers on a GPU) when the process ends.
  void abandon_warmup() {
    stop_warmup();
#if SIMIC_TORCH_KINETO
    torch::autograd::profiler::enableProfiler(kineto_config(), activities());
    torch::autograd::profiler::disableProfiler();
#endif
  }

  void start_recording(std::uint64_t s) {
    if (warming_) stop_warmup();
    first_active_ = s;
    tmp_path_ = opts_.dir / (opts_.prefix + ".writing.json");
#if SIMIC_TORCH_KINETO
    if (opts_.schedule.warmup == 0) torch::autograd::profiler::prepareProfiler(kineto_config(), activities());
    torch::autograd::profiler::enableProfiler(kineto_config(), activities());
#else
    legacy_ = std::make_unique<torch::autograd::profiler::RecordProfile>(tmp_path_.string());
#endif
    recording_ = true;
  }

  void discard_recording() {
    recording_ = false;
#if SIMIC_TORCH_KINETO
    torch::autograd::profiler::disableProfiler();
#else
    legacy_.reset();
#endif
    std::error_code ec;
    std::filesystem::remove(tmp_path_, ec);
  }

  // Stops recording after step `last` and writes the trace file.
  profiler_trace_event stop_and_write(std::uint64_t last) {
    recording_ = false;
#if SIMIC_TORCH_KINETO
    auto result = torch::autograd::profiler::disableProfiler();
    if (!result) throw std::runtime_error("simic::profiler: LibTorch returned no profiler result");
    result->save(tmp_path_.string());
#else
    legacy_.reset();  // RecordProfile writes its file when destroyed
#endif
    const std::uint64_t cycle = cycle_of(first_active_);
    const std::filesystem::path final_path =
        opts_.dir / (opts_.prefix + "_cycle" + std::to_string(cycle) + "_steps" + std::to_string(first_active_) +
                     "-" + std::to_string(last) + ".json");
    std::error_code ec;
    if (!std::filesystem::exists(tmp_path_, ec) || std::filesystem::file_size(tmp_path_, ec) == 0)
      throw std::runtime_error("simic::profiler: LibTorch wrote no trace to " + tmp_path_.string());
    // Written under a temporary name and renamed: a viewer never opens half a file.
    std::filesystem::rename(tmp_path_, final_path, ec);
    if (ec) throw std::system_error(ec, "simic::profiler: cannot rename the trace to " + final_path.string());
    ++traces_;
    return profiler_trace_event{.path = final_path.string(),
                                .first_step = first_active_,
                                .steps = last - first_active_ + 1,
                                .cycle = static_cast<std::uint32_t>(cycle)};
  }

  profiler_options opts_;
  std::uint64_t step_ = 0;  // the step now running, 0-based
  std::uint64_t first_active_ = 0;
  std::uint32_t traces_ = 0;
  bool warming_ = false;
  bool recording_ = false;
  bool closed_ = false;
  std::filesystem::path tmp_path_;
#if !SIMIC_TORCH_KINETO
  std::ostringstream discard_;
  std::unique_ptr<torch::autograd::profiler::RecordProfile> legacy_;
#endif
};

}  // namespace v0
}  // namespace simic
