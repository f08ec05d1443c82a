// The fused CUDA back end on a GPU (built when simic finds LibTorch's CUDA
// libraries; run by bench/gpu/run.sh). Every check draws fresh random inputs
// (the seed is printed), poisons the result rows with NaN before the kernels
// run, and compares against float64 references computed on the CPU by plain
// loops, and against simic's CPU back end. NaN never passes where the
// reference is a number. Skips, with a message, when no GPU is visible.
#include "support/torch_doctest.hpp"

#include <c10/cuda/CUDAFunctions.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "support/reduction_reference.hpp"
#include "simic/reduce/cuda/fused_backend.hpp"
#include "simic/sensors/cuda_memory.hpp"
#include "simic/reduce/cpu_fused_backend.hpp"
#include "simic/sensors/layer_gradient.hpp"
#include "simic/sensors/nan_inf_scanner.hpp"
#include "simic/sensors/gradient_health.hpp"
#include "simic/sensors/lstm_health.hpp"
#include "simic/sensors/memory.hpp"

#if !SIMIC_CUDA
#error "device_test.cpp needs SIMIC_CUDA=1 (Meson builds it only when torch_cuda is found)"
#endif

namespace {

bool have_gpu() {
  if (c10::cuda::device_count() > 0 && simic::cuda::fused_backend::unavailable_reason().empty()) return true;
  MESSAGE("skipped: no CUDA device, or the fused path is unavailable: "
          << simic::cuda::fused_backend::unavailable_reason());
  return false;
}

std::uint64_t fresh_seed() {
  static const std::uint64_t base = std::random_device{}() ^ static_cast<std::uint64_t>(
      std::chrono::steady_clock::now().time_since_epoch().count());
  static std::uint64_t n = 0;
  return base + 7919 * n++;
}

// N(0, scale) with zeros, small and large values, and (optionally) NaN / Inf
// at random places, on the CPU; the caller moves it.
at::Tensor draw(std::vector<std::int64_t> shape, std::uint64_t seed, bool specials, double scale = 1e-2) {
  auto gen = at::detail::createCPUGenerator(seed);
  at::Tensor t = at::randn(shape, gen) * scale;
  t.masked_fill_(at::rand(shape, gen) < 0.05, 0.0);
  t.masked_fill_(at::rand(shape, gen) < 0.01, 11.0);
  t.masked_fill_(at::rand(shape, gen) < 0.01, -3e-7);
  if (specials) {
    t.masked_fill_(at::rand(shape, gen) < 0.002, std::numeric_limits<float>::quiet_NaN());
    t.masked_fill_(at::rand(shape, gen) < 0.002, std::numeric_limits<float>::infinity());
  }
  return t;
}

// A list of every kind the kernels meet: sizes around their vector and block
// widths, an empty tensor, a transposed one, one starting off the 16-byte
// boundary, and one large enough to span many blocks.
std::vector<at::Tensor> kinds(at::ScalarType dt, bool specials, std::uint64_t seed) {
  const at::Device cuda(at::kCUDA, 0);
  std::vector<at::Tensor> ts;
  for (std::int64_t n : {1, 3, 4, 5, 8, 9, 31, 33, 1023, 1025, 65537})
    ts.push_back(draw({n}, seed + static_cast<std::uint64_t>(n), specials).to(dt).to(cuda));
  ts.push_back(at::empty({0}, at::TensorOptions().dtype(dt).device(cuda)));
  ts.push_back(draw({300, 70}, seed + 1, specials).to(dt).to(cuda).t());  // non-contiguous
  ts.push_back(draw({1, 4099}, seed + 2, specials).to(dt).to(cuda).narrow(1, 1, 4097));  // unaligned start
  ts.push_back(draw({3'000'001}, seed + 3, specials).to(dt).to(cuda));
  return ts;
}

}  // namespace

TEST_CASE("fused rows equal float64 references and the CPU back end, every dtype and set, poisoned outputs") {
  if (!have_gpu()) return;
  const simic::cuda::fused_backend fused{.fallback = {}, .poison_outputs = true};
  for (at::ScalarType dt : {at::kFloat, at::kHalf, at::kBFloat16, at::kDouble}) {
    for (simic::stat_set set : {simic::stat_set::basic, simic::stat_set::full}) {
      for (bool specials : {false, true}) {
        const std::uint64_t seed = fresh_seed();
        CAPTURE(seed);
        CAPTURE(dt);
        CAPTURE(static_cast<int>(set));
        CAPTURE(specials);
        const std::vector<at::Tensor> ts = kinds(dt, specials, seed);
        REQUIRE(simic::cuda::fused_backend::accepts(simic::reduce_request{ts, set}));
        const simic::stats_table got = simic_test::run(fused, ts, set);
        std::vector<at::Tensor> host;
        for (const auto& t : ts) host.push_back(t.cpu());
        const simic::stats_table cpu = simic_test::run(simic::cpu_fused_backend{}, host, set);
        const bool basic = set == simic::stat_set::basic;
        for (std::size_t i = 0; i < ts.size(); ++i) {
          CAPTURE(i);
          // With NaN / Inf present the spread is NaN in float64 but reads as 0
          // through tensor_stats::population_std: compare the full set on
          // finite inputs, and counts / extremes (below) always.
          simic_test::check_row(got[i], simic_test::reference(host[i]), basic || specials);
          // Counts and extremes exactly as the CPU back end's.
          CHECK(got[i].zeros() == cpu[i].zeros());
          CHECK(got[i].nans() == cpu[i].nans());
          CHECK(got[i].infs() == cpu[i].infs());
          CHECK(got[i].small() == cpu[i].small());
          CHECK(got[i].large() == cpu[i].large());
          CHECK(simic_test::close(got[i].max_abs(), cpu[i].max_abs(), 0.0, 0.0));
          CHECK(simic_test::close(got[i].sum_of_squares(), cpu[i].sum_of_squares(), 1e-5));
          if (!basic) {
            CHECK(simic_test::close(got[i].min(), cpu[i].min(), 0.0, 0.0));
            CHECK(simic_test::close(got[i].max(), cpu[i].max(), 0.0, 0.0));
          }
        }
      }
    }
  }
}

TEST_CASE("every row is written: no poison survives, and reruns are bitwise identical") {
  if (!have_gpu()) return;
  const simic::cuda::fused_backend fused{.fallback = {}, .poison_outputs = true};
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  const std::vector<at::Tensor> ts = kinds(at::kFloat, false, seed);
  const at::Tensor a = fused.reduce(simic::reduce_request{ts, simic::stat_set::full}).cpu();
  const at::Tensor b = fused.reduce(simic::reduce_request{ts, simic::stat_set::full}).cpu();
  CHECK(a.isnan().sum().item<std::int64_t>() == 0);  // no NaN input, so any NaN is an unwritten cell
  CHECK(at::equal(a, b));                          // deterministic: a race would move the sums
}

TEST_CASE("one launch: the completion counters leave every plan clean, whatever its shape and set") {
  // The block that counts a tensor's last piece writes its row and the block
  // that finishes the last tensor writes the summary, by counters the kernel
  // must leave at 0: a counter left dirty would leave rows or the summary
  // unwritten (NaN, poisoned) on the next call with the same cached plan.
  if (!have_gpu()) return;
  const simic::cuda::fused_backend fused{.fallback = {}, .poison_outputs = true};
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  const at::Device cuda(at::kCUDA, 0);
  auto on_gpu = [&](std::int64_t n, std::uint64_t k) { return draw({n}, seed + k, false).to(cuda); };
  std::vector<std::vector<at::Tensor>> lists;
  lists.push_back({at::empty({0}, cuda), at::empty({0}, cuda)});  // no pieces: one block writes rows and summary
  lists.push_back({on_gpu(1, 1)});
  std::vector<at::Tensor> many;  // 300 small tensors: several per block, blocks that finish several tensors
  for (int i = 0; i < 300; ++i) many.push_back(on_gpu(1 + (97 * i) % 5000, 10 + static_cast<std::uint64_t>(i)));
  many.push_back(at::empty({0}, cuda));
  lists.push_back(many);
  lists.push_back({at::empty({0}, cuda), on_gpu(3'000'000, 2), on_gpu(77, 3)});  // one tensor over many blocks
  for (std::size_t l = 0; l < lists.size(); ++l) {
    const std::vector<at::Tensor>& ts = lists[l];
    std::vector<at::Tensor> host;
    for (const auto& t : ts) host.push_back(t.cpu());
    for (simic::stat_set set : {simic::stat_set::basic, simic::stat_set::full, simic::stat_set::basic}) {
      CAPTURE(l);
      CAPTURE(static_cast<int>(set));
      const simic::reduce_request r{ts, set};
      const simic::gradient_health_report want =
          simic::gradient_health_sensor<simic::cpu_fused_backend>{}.measure(host);
      at::Tensor first;
      for (int rep = 0; rep < 4; ++rep) {  // the same plan, cached, four times
        CAPTURE(rep);
        simic::cuda::pending_stats pending = fused.reduce_async(r);
        const simic::cuda::stats_summary s = pending.summary();
        const simic::stats_table rows = pending.table();
        for (std::size_t i = 0; i < ts.size(); ++i)
          simic_test::check_row(rows[i], simic_test::reference(host[i]), set == simic::stat_set::basic);
        CHECK(s.tensors == ts.size());
        CHECK(s.elements == want.elements);
        CHECK(s.zeros == want.zeros);
        CHECK(s.vanishing == want.vanishing);
        CHECK(s.exploding == want.exploding);
        CHECK(simic_test::close(std::sqrt(s.total_sumsq), want.total_norm, 1e-6));
        const at::Tensor now = fused.reduce(r).cpu();
        CHECK(now.isnan().sum().item<std::int64_t>() == 0);
        if (rep == 0) first = now; else CHECK(at::equal(first, now));
      }
    }
  }
}

TEST_CASE("async: enqueue makes no host sync; one event wait gives rows and the device-finished summary") {
  if (!have_gpu()) return;
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  std::vector<at::Tensor> grads;
  // Healthy: draw() plants 11.0 in 1% of the cells, which would make every
  // one of these exploding; clamped to |x| <= 0.02, the largest (116,000
  // elements) has a norm <= 0.02 * sqrt(116000) = 6.8, below the threshold 10.
  for (int i = 0; i < 24; ++i)
    grads.push_back(draw({1000 + 5000 * i}, seed + static_cast<std::uint64_t>(i), false).clamp(-0.02, 0.02).cuda());
  grads.push_back(at::zeros({100}, at::kCUDA));           // vanishing
  grads.push_back(at::full({100}, 50.0, at::kCUDA));      // exploding
  const simic::cuda::fused_backend fused{.fallback = {}, .poison_outputs = true};
  c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR);
  const std::uint64_t syncs0 = simic::cuda::host_syncs();
  simic::cuda::pending_stats pending = fused.reduce_async(simic::reduce_request{grads, simic::stat_set::basic});
  const simic::gradient_health_sensor<simic::cuda::fused_backend> sensor({}, fused);
  auto pinned = simic::cuda::pin(sensor.measure_async(grads));
  c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
  CHECK(simic::cuda::host_syncs() == syncs0);
  const simic::cuda::stats_summary s = pending.summary();
  const simic::gradient_health_report via_pin = pinned.materialize();
  CHECK(simic::cuda::host_syncs() == syncs0 + 2);  // one event wait each
  std::vector<at::Tensor> host;
  for (const auto& g : grads) host.push_back(g.cpu());
  const simic::gradient_health_report want = simic::gradient_health_sensor<simic::cpu_fused_backend>{}.measure(host);
  CHECK(s.tensors == want.parameters);
  CHECK(s.vanishing == want.vanishing);
  CHECK(s.exploding == want.exploding);
  CHECK(want.vanishing == 1);
  CHECK(want.exploding == 1);
  CHECK(s.elements == want.elements);
  CHECK(s.zeros == want.zeros);
  CHECK(simic_test::close(std::sqrt(s.total_sumsq), want.total_norm, 1e-6));
  CHECK(simic_test::close(s.max_norm, want.max_param_norm, 1e-6));
  CHECK(s.min_norm == 0.0);
  CHECK(s.health == doctest::Approx(want.health).epsilon(1e-12));
  CHECK(via_pin.parameters == want.parameters);
  CHECK(simic_test::close(via_pin.total_norm, want.total_norm, 1e-6));
  CHECK(via_pin.zeros == want.zeros);
  const simic::stats_table rows = pending.table();
  for (std::size_t i = 0; i < grads.size(); ++i) simic_test::check_row(rows[i], simic_test::reference(host[i]), true);
}

TEST_CASE("the default back end picks the fused kernels for CUDA tensors; sensors agree with the CPU") {
  if (!have_gpu()) return;
  REQUIRE(simic::cuda::use_with_auto_backend());  // explicit: including the header installs nothing
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  // Named parameters with gradients, one weight holding a NaN, one gradient an Inf.
  std::vector<std::pair<std::string, at::Tensor>> named, named_cpu;
  for (int i = 0; i < 40; ++i) {
    at::Tensor w = draw({200 + 31 * i}, seed + 100 + static_cast<std::uint64_t>(i), false, 0.1);
    at::Tensor g = draw({200 + 31 * i}, seed + 200 + static_cast<std::uint64_t>(i), false);
    if (i == 7) w[3] = std::numeric_limits<float>::quiet_NaN();
    if (i == 21) g[5] = -std::numeric_limits<float>::infinity();
    at::Tensor wc = w.clone().set_requires_grad(true);
    wc.mutable_grad() = g.clone();
    at::Tensor wd = w.cuda().set_requires_grad(true);
    wd.mutable_grad() = g.cuda();
    named_cpu.emplace_back("p" + std::to_string(i), wc);
    named.emplace_back("p" + std::to_string(i), wd);
  }
  c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR);
  const std::uint64_t syncs0 = simic::cuda::host_syncs();
  auto scan_p = simic::cuda::pin(simic::nan_inf_scanner<>{}.scan_async(named));
  auto layers_p = simic::cuda::pin(simic::layer_gradient_sensor<>{}.measure_async(named));
  c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
  const simic::nan_inf_scan_report scan = scan_p.materialize();
  const simic::layer_gradient_report layers = layers_p.materialize();
  CHECK(simic::cuda::host_syncs() - syncs0 == 2);  // constant, whatever the parameter count
  const simic::nan_inf_scan_report scan_cpu = simic::nan_inf_scanner<>{}.scan(named_cpu);
  REQUIRE(scan.offenders.size() == 2);
  CHECK(scan.offenders[0].name == "p7");
  CHECK(scan.offenders[0].weight_nan);
  CHECK(scan.offenders[1].name == "p21");
  CHECK(scan.offenders[1].grad_inf);
  CHECK(scan.max_abs_weight == scan_cpu.max_abs_weight);
  CHECK(scan.max_abs_grad == scan_cpu.max_abs_grad);
  const simic::layer_gradient_report layers_cpu = simic::layer_gradient_sensor<>{}.measure(named_cpu);
  REQUIRE(layers.layers.size() == layers_cpu.layers.size());
  for (std::size_t i = 0; i < layers.layers.size(); ++i) {
    CAPTURE(i);
    CHECK(simic_test::close(layers.layers[i].norm, layers_cpu.layers[i].norm, 1e-6));
    CHECK(simic_test::close(layers.layers[i].std, layers_cpu.layers[i].std, 1e-4));
    CHECK(layers.layers[i].small_fraction == layers_cpu.layers[i].small_fraction);
    CHECK(layers.layers[i].large_fraction == layers_cpu.layers[i].large_fraction);
    CHECK(layers.layers[i].inf_count == layers_cpu.layers[i].inf_count);
  }
  // LSTM health through the same kernels.
  const at::Tensor h = draw({2, 64, 512}, seed + 300, false, 0.3), c = draw({2, 64, 512}, seed + 301, false, 1.0);
  const simic::lstm_health_report lg = simic::lstm_health_sensor<>{}.measure(h.cuda(), c.cuda());
  const simic::lstm_health_report lc = simic::lstm_health_sensor<>{}.measure(h, c);
  CHECK(simic_test::close(lg.h_norm, lc.h_norm, 1e-6));
  CHECK(simic_test::close(lg.c_norm, lc.c_norm, 1e-6));
  CHECK(lg.h_max_abs == lc.h_max_abs);
  CHECK(lg.c_nan == lc.c_nan);
}

TEST_CASE("the caching allocator's figures: a 64 MiB tensor is counted, allocated <= peak, allocated <= reserved") {
  if (!have_gpu()) return;
  const auto before = simic::cuda::caching_allocator_memory(0);
  REQUIRE(before.has_value());
  std::uint64_t grown = 0;
  {
    const at::Tensor t = at::empty({16 * 1024 * 1024}, at::TensorOptions().dtype(at::kFloat).device(at::kCUDA, 0));
    const auto during = simic::cuda::caching_allocator_memory(0);
    REQUIRE(during.has_value());
    grown = during->allocated - before->allocated;
    CHECK(during->device == 0);
    CHECK(during->allocated <= during->peak_allocated);
    CHECK(during->allocated <= during->reserved);
  }
  CHECK(grown == 64ull * 1024 * 1024);  // the allocator rounds to 2 MiB blocks above 1 MiB: exact here
  simic::memory_sensor mem({.device_reader = simic::cuda::caching_allocator_memory});
  const simic::memory_stats m = mem.measure(at::Device(at::kCUDA, 0));
  CHECK(m.device.has_value());
  CHECK(m.rss_bytes.has_value());
}

TEST_CASE("100M-element gradient health (400 tensors): float32 and bfloat16 against float64") {
  if (!have_gpu()) return;
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    CAPTURE(dt);
    const at::Tensor w = at::logspace(0, 3, 400);
    const at::Tensor sizes = (w / w.sum() * 100'000'000).to(at::kLong).clamp_min(1);
    std::vector<at::Tensor> grads;
    at::manual_seed(seed);
    for (std::int64_t i = 0; i < 400; ++i)
      grads.push_back((at::randn({sizes[i].item<std::int64_t>()}, at::TensorOptions().device(at::kCUDA)) * 1e-2).to(dt));
    const simic::cuda::fused_backend fused{.fallback = {}, .poison_outputs = true};
    const simic::stats_table got = simic_test::run(fused, grads, simic::stat_set::basic);
    for (std::size_t i = 0; i < grads.size(); i += 37) {
      CAPTURE(i);
      const at::Tensor d = grads[i].to(at::kDouble);
      const double sumsq = (d * d).sum().item<double>();  // float64 on the device: a different method
      CHECK(simic_test::close(got[i].sum_of_squares(), sumsq, 1e-6));
      CHECK(got[i].zeros() == static_cast<std::uint64_t>(grads[i].eq(0).sum().item<std::int64_t>()));
      CHECK(got[i].max_abs() == d.abs().max().item<double>());
    }
  }
}
