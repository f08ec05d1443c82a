// What telemetry costs the training thread: hub.emit (the caller's side
// only: the copy into the queue), with a sink that keeps up and with a full
// queue (drop path); the JSON line a JSONL sink formats per event (on the
// hub's thread); and one phase-timer scope, enabled and disabled.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>
#include <string>

#include "simic/emit/hub.hpp"
#include "simic/emit/json.hpp"
#include "simic/emit/sink_callback.hpp"
#include "simic/profile/phase_timer.hpp"

using namespace simic;

namespace {

update_metrics typical_update(std::uint64_t u) {
  return update_metrics{.policy_loss = -0.01 * static_cast<double>(u % 7),
                        .value_loss = 0.5,
                        .entropy = 0.8,
                        .approx_kl = 0.01,
                        .clip_fraction = 0.1,
                        .ratio_max = 1.3,
                        .ratio_min = 0.7,
                        .explained_variance = 0.4,
                        .learning_rate = 3e-4};
}

// emit() into a hub whose sink drops the event at once (the queue rarely fills).
void BM_hub_emit_update(benchmark::State& state) {
  hub h({.capacity = 1 << 16});
  h.add_sink(std::make_shared<callback_sink>([](const event& e) { benchmark::DoNotOptimize(e.update()); }));
  std::uint64_t u = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(h.emit(u, 0, typical_update(u)));
    ++u;
  }
  h.close();
  state.counters["dropped"] = static_cast<double>(h.counts().dropped);
}
BENCHMARK(BM_hub_emit_update);

// emit() into a full queue: the drop path (count and return).
void BM_hub_emit_full_queue(benchmark::State& state) {
  hub h({.capacity = 1});
  std::mutex gate;
  gate.lock();
  h.add_sink(std::make_shared<callback_sink>([&](const event&) { std::lock_guard l(gate); }));
  h.emit(0, 0, update_metrics{});  // the worker blocks on it
  h.emit(1, 0, update_metrics{});  // fills the queue
  std::uint64_t u = 2;
  for (auto _ : state) {
    benchmark::DoNotOptimize(h.emit(u, 0, typical_update(u)));
    ++u;
  }
  gate.unlock();
  h.close();
}
BENCHMARK(BM_hub_emit_full_queue);

// The JSON line of one update event (work done on the hub's thread).
void BM_json_line_update(benchmark::State& state) {
  const event e(42, 3, typical_update(42));
  for (auto _ : state) benchmark::DoNotOptimize(to_json_line(e));
}
BENCHMARK(BM_json_line_update);

void BM_phase_scope(benchmark::State& state) {
  phase_timers t(state.range(0) != 0);
  for (auto _ : state) {
    auto s = t.time("update");
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_phase_scope)->Arg(1)->Arg(0)->ArgName("enabled");

}  // namespace

BENCHMARK_MAIN();
