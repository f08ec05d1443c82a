// Phase timers: RAII scopes on a steady clock, aggregated per phase (count,
// total, min, max), reported as a phase_timings event. Cheap enough to leave
// on (two clock reads and a short locked update per scope); a disabled set
// reads no clock at all. No LibTorch.
//
//   simic::phase_timers timers;
//   { auto t = timers.time("rollout"); collect(); }
//   { auto t = timers.time("update");  ppo_update(); }
//   hub.emit(update, epoch, timers.take());  // totals since the last take()
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "simic/core/error.hpp"
#include "simic/emit/field_writer.hpp"
#include "simic/emit/names.hpp"

namespace simic {
inline namespace v0 {

// Wall-clock totals of one phase (rollout, update, telemetry, ...).
struct phase_timing {
  std::string phase{};
  std::uint64_t count = 0;  // timed scopes
  double total_s = 0.0;
  double min_s = 0.0;
  double max_s = 0.0;
  double mean_s() const noexcept { return count ? total_s / static_cast<double>(count) : 0.0; }
  friend bool operator==(const phase_timing&, const phase_timing&) = default;
};

// The phase_timings event: every phase's totals; TensorBoard gets each
// phase's total and mean. Phases are named as unique_metric_names names
// them (emit/names.hpp): two names equal after the UTF-8 replacement stay
// apart ("#2"), alike in JSONL and TensorBoard.
struct phase_timings_event {
  static constexpr std::string_view name = "phase_timings";
  std::vector<phase_timing> phases{};  // in order of first use
  void describe(field_writer& w) const {
    std::vector<std::string_view> raw;
    raw.reserve(phases.size());
    for (const phase_timing& ph : phases) raw.push_back(ph.phase);
    const std::vector<std::string> names = unique_metric_names(raw);
    w.begin_object("phases");
    for (std::size_t i = 0; i < phases.size(); ++i) {
      const phase_timing& ph = phases[i];
      const std::string& phase = names[i];
      w.begin_object(phase);
      w.count("count", ph.count);
      w.real("total_s", ph.total_s);
      w.real("mean_s", ph.mean_s());
      w.real("min_s", ph.min_s);
      w.real("max_s", ph.max_s);
      w.end();
      if (w.scalars()) {
        w.scalar("phases/" + phase + "/total_s", ph.total_s);
        w.scalar("phases/" + phase + "/mean_s", ph.mean_s());
      }
    }
    w.end();
  }
};

template <class Clock>
class basic_phase_timers {
 public:
  using clock = Clock;
  using duration = typename Clock::duration;

  // Times one phase from construction to destruction (or stop()).
  class [[nodiscard]] scope {
   public:
    scope(scope&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)), phase_(std::move(other.phase_)), start_(other.start_) {}
    scope& operator=(scope&&) = delete;
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;
    ~scope() { stop(); }

    // Records now; later calls (and the destructor) do nothing.
    void stop() noexcept {
      if (!owner_) return;
      const auto end = Clock::now();
      owner_->add(phase_, end - start_);
      owner_ = nullptr;
    }

   private:
    friend class basic_phase_timers;
    scope() = default;  // disabled: times nothing
    scope(basic_phase_timers* owner, std::string_view phase)
        : owner_(owner), phase_(phase), start_(Clock::now()) {}

    basic_phase_timers* owner_ = nullptr;
    std::string phase_;
    typename Clock::time_point start_{};
  };

  explicit basic_phase_timers(bool enabled = true) : enabled_(enabled) {}

  // A scope timing `phase` (non-empty). Disabled: a scope that does nothing.
  scope time(std::string_view phase) {
    if (!enabled_) return scope();
    detail::require(!phase.empty(), "simic::phase_timers::time", "phase", "\"\"", "a non-empty name");
    return scope(this, phase);
  }

  // Adds one measured duration (>= 0) to `phase`, as a scope would.
  void record(std::string_view phase, duration d) {
    if (!enabled_) return;
    detail::require(!phase.empty(), "simic::phase_timers::record", "phase", "\"\"", "a non-empty name");
    detail::require(d >= duration::zero(), "simic::phase_timers::record", "d (seconds)",
                    std::chrono::duration<double>(d).count(), ">= 0");
    add(phase, d);
  }

  bool enabled() const noexcept { return enabled_; }
  // Samples that could not be stored (out of memory); 0 in practice.
  std::uint64_t lost() const {
    std::lock_guard lock(mutex_);
    return lost_;
  }

  // The totals so far, phases in order of first use.
  phase_timings_event snapshot() const {
    std::lock_guard lock(mutex_);
    return phase_timings_event{.phases = phases_};
  }
  // The totals so far, then starts over (for per-epoch reports).
  phase_timings_event take() {
    std::lock_guard lock(mutex_);
    return phase_timings_event{.phases = std::exchange(phases_, {})};
  }
  void reset() {
    std::lock_guard lock(mutex_);
    phases_.clear();
  }

 private:
  void add(std::string_view phase, duration d) noexcept {
    const double s = std::chrono::duration<double>(d).count();
    std::lock_guard lock(mutex_);
    auto it = std::find_if(phases_.begin(), phases_.end(), [&](const phase_timing& p) { return p.phase == phase; });
    if (it == phases_.end()) {
      try {
        phases_.push_back(phase_timing{.phase = std::string(phase), .count = 1, .total_s = s, .min_s = s, .max_s = s});
      } catch (...) {
        ++lost_;  // out of memory in a destructor: count the sample rather than terminate
      }
      return;
    }
    ++it->count;
    it->total_s += s;
    it->min_s = std::min(it->min_s, s);
    it->max_s = std::max(it->max_s, s);
  }

  bool enabled_;
  mutable std::mutex mutex_;
  std::vector<phase_timing> phases_;
  std::uint64_t lost_ = 0;
};

using phase_timers = basic_phase_timers<std::chrono::steady_clock>;

}  // namespace v0
}  // namespace simic
