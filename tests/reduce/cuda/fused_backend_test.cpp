// The fused CUDA back end's host side (simic/reduce/cuda/fused_backend.hpp) on a
// machine without a GPU: its kernels' logic, run through the host emulation
// of their control flow (emulate.hpp, built from the shared accumulation
// code), gives the rows of simic's CPU back end; the back end falls back to
// LibTorch operations where the fused path is not available; bad requests
// are refused as by every back end.
#include "support/torch_doctest.hpp"

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "reduce/cuda/emulate.hpp"
#include "simic/reduce/cuda/fused_backend.hpp"
#include "simic/reduce/cpu_fused_backend.hpp"
#include "simic/sensors/gradient_health.hpp"
#include "simic/reduce/torch_ops_backend.hpp"

namespace cd = simic::cuda::detail;

namespace {

at::Tensor spiky(std::vector<std::int64_t> shape, at::ScalarType dt, bool specials, std::uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor t = at::randn(shape, at::kFloat) * 1e-2;
  t.masked_fill_(at::rand(shape) < 0.1, 0.0);
  t.masked_fill_(at::rand(shape) < 0.01, 12.0);   // large
  t.masked_fill_(at::rand(shape) < 0.01, 5e-7);   // small, not zero
  if (specials && t.numel() > 4) {
    t.view(-1)[1] = std::numeric_limits<float>::quiet_NaN();
    t.view(-1)[3] = -std::numeric_limits<float>::infinity();
  }
  return t.to(dt);
}

// The plan the back end would build (contiguous copies where needed), and
// the tensors that must stay alive while it is read.
struct host_plan {
  std::vector<at::Tensor> keep;
  cd::launch_plan plan;
};
host_plan plan_for(const std::vector<at::Tensor>& ts, int max_blocks) {
  host_plan h;
  std::vector<cd::plan_input> in;
  for (const auto& t : ts) {
    const at::Tensor c = t.contiguous();
    h.keep.push_back(c);
    in.push_back({reinterpret_cast<std::uint64_t>(c.data_ptr()), c.numel(), cd::dtype_code(c.scalar_type())});
  }
  cd::plan_options o;
  o.max_blocks = max_blocks;
  o.min_block_bytes = 512;
  h.plan = cd::make_launch_plan(in, o);
  return h;
}

bool agree(double got, double want, double rel) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::fabs(got - want) <= rel * std::max(1e-300, std::fabs(want)) + 1e-12;
}

}  // namespace

TEST_CASE("the kernels compile the one stats row layout (reduce/stat_layout.hpp)") {
  CHECK(cd::kernel_source().find(simic::shared_code::stat_layout) != std::string::npos);
  CHECK(simic::stat::count == 12);
}

TEST_CASE("dtype codes and launch constants") {
  CHECK(cd::dtype_code(at::kFloat) == cd::dtype_f32);
  CHECK(cd::dtype_code(at::kHalf) == cd::dtype_f16);
  CHECK(cd::dtype_code(at::kBFloat16) == cd::dtype_bf16);
  CHECK(cd::dtype_code(at::kDouble) == cd::dtype_f64);
  CHECK(cd::dtype_code(at::kInt) == -1);
  std::vector<at::Tensor> none;
  simic::reduce_request r{none, simic::stat_set::full, 1e-6, 10.0};
  const cd::launch_params p = cd::make_params(r, 1e-7, 10.0);
  CHECK(p.full == 1);
  CHECK(p.small_f == simic::detail::float_bound_for_less(1e-6));
  CHECK(p.large_f == simic::detail::float_bound_for_greater(10.0));
  CHECK(p.small == 1e-6);
  CHECK(p.vanishing == 1e-7);
  CHECK(p.exploding == 10.0);
}

TEST_CASE("the kernels' logic on CPU tensors gives the CPU back end's rows (all dtypes, strided, empty)") {
  for (bool full : {false, true}) {
    for (bool specials : {false, true}) {
      CAPTURE(full);
      CAPTURE(specials);
      std::vector<at::Tensor> ts{
          spiky({1000, 37}, at::kFloat, specials, 1),
          spiky({4099}, at::kHalf, specials, 2),
          spiky({333, 7}, at::kBFloat16, specials, 3),
          spiky({2501}, at::kDouble, specials, 4),
          spiky({64, 80}, at::kFloat, specials, 5).t(),  // non-contiguous
          at::empty({0}, at::kFloat),
          spiky({1}, at::kFloat, false, 6),
          spiky({1, 1000}, at::kFloat, specials, 7).narrow(1, 3, 990),  // unaligned start
      };
      simic::reduce_request req{ts, full ? simic::stat_set::full : simic::stat_set::basic, 1e-6, 10.0};
      const at::Tensor want = simic::cpu_fused_backend{}.reduce(req);
      for (int blocks : {1, 9, 200}) {
        CAPTURE(blocks);
        const host_plan h = plan_for(ts, blocks);
        const std::vector<double> rows = simic_test::emulate(h.plan, cd::make_params(req, 1e-7, 10.0), 128);
        for (std::size_t t = 0; t < ts.size(); ++t) {
          CAPTURE(t);
          const double* w = want.data_ptr<double>() + t * simic::stat::count;
          const double* g = rows.data() + t * simic::stat::count;
          for (int c : {simic::stat::zeros, simic::stat::nans, simic::stat::infs, simic::stat::numel, simic::stat::max_abs,
                        simic::stat::min, simic::stat::max, simic::stat::small, simic::stat::large}) {
            CAPTURE(c);
            CHECK(((std::isnan(g[c]) && std::isnan(w[c])) || g[c] == w[c]));
          }
          CHECK(agree(g[simic::stat::sumsq], w[simic::stat::sumsq], 1e-5));
          CHECK(agree(g[simic::stat::sum], w[simic::stat::sum], 1e-4));
          CHECK(agree(g[simic::stat::m2], w[simic::stat::m2], 1e-4));
        }
      }
    }
  }
}

TEST_CASE("the device-finished summary equals the gradient-health sensor's host figures") {
  std::vector<at::Tensor> ts;
  at::manual_seed(100);
  for (int i = 0; i < 30; ++i) ts.push_back((at::randn({100 + 37 * i}) * 0.05).to(i % 3 == 0 ? at::kBFloat16 : at::kFloat));
  ts.push_back(at::zeros({50}));             // vanishing
  ts.push_back(at::full({10}, 100.0f));      // exploding
  simic::reduce_request req{ts, simic::stat_set::basic};
  const host_plan h = plan_for(ts, 16);
  const std::vector<double> rows = simic_test::emulate(h.plan, cd::make_params(req, 1e-7, 10.0), 64);
  const double* s = rows.data() + ts.size() * simic::stat::count;
  const simic::gradient_health_report host = simic::gradient_health_sensor<simic::cpu_fused_backend>{}.measure(ts);
  CHECK(s[simic::detail::summary_col::tensors] == static_cast<double>(host.parameters));
  CHECK(s[simic::detail::summary_col::vanishing] == static_cast<double>(host.vanishing));
  CHECK(s[simic::detail::summary_col::exploding] == static_cast<double>(host.exploding));
  CHECK(host.vanishing == 1);
  CHECK(host.exploding == 1);
  CHECK(s[simic::detail::summary_col::elements] == static_cast<double>(host.elements));
  CHECK(s[simic::detail::summary_col::zeros] == static_cast<double>(host.zeros));
  CHECK(std::sqrt(s[simic::detail::summary_col::total_sumsq]) == doctest::Approx(host.total_norm).epsilon(1e-6));
  CHECK(s[simic::detail::summary_col::min_norm] == 0.0);
  CHECK(s[simic::detail::summary_col::max_norm] == doctest::Approx(host.max_param_norm).epsilon(1e-6));
  CHECK(s[simic::detail::summary_col::health] == doctest::Approx(host.health).epsilon(1e-12));
}

TEST_CASE("without the fused path, the back end is LibTorch operations, and says why") {
  std::vector<at::Tensor> ts{spiky({300}, at::kFloat, true, 9), spiky({20, 3}, at::kHalf, false, 10)};
  simic::reduce_request req{ts, simic::stat_set::full};
  CHECK_FALSE(simic::cuda::fused_backend::accepts(req));  // CPU tensors
  if (!simic::cuda::compiled_in) CHECK(!simic::cuda::fused_backend::unavailable_reason().empty());
  const at::Tensor got = simic::cuda::fused_backend{}.reduce(req);
  const at::Tensor want = simic::torch_ops_backend{}.reduce(req);
  CHECK(got.sizes() == want.sizes());
  CHECK(at::allclose(got, want, 1e-12, 0.0, /*equal_nan=*/true));
  CHECK_THROWS_WITH_AS(simic::cuda::fused_backend{}.reduce_async(req), doctest::Contains("tensors"),
                       std::invalid_argument);
  // Bad input is refused before any work, naming the tensor.
  std::vector<at::Tensor> bad{at::ones({3}), at::ones({3}, at::kInt)};
  CHECK_THROWS_WITH_AS(simic::cuda::fused_backend{}.reduce(simic::reduce_request{bad}), doctest::Contains("tensors[1]"),
                       std::invalid_argument);
}

TEST_CASE("cuda::pin of a CPU result is the plain materialize") {
  std::vector<at::Tensor> ts{spiky({500}, at::kFloat, false, 11)};
  const simic::gradient_health_sensor<> sensor;
  const auto direct = sensor.measure(ts);
  const auto pinned = simic::cuda::pin(sensor.measure_async(ts));
  CHECK(pinned.ready());
  const auto r = pinned.materialize();
  CHECK(r.total_norm == direct.total_norm);
  CHECK(r.parameters == direct.parameters);
}

TEST_CASE("registration is explicit: including the header installs nothing; use_with_auto_backend() does") {
  // No test case before this one calls it.
  CHECK((simic::detail::device_reducer_slot().load() == nullptr));
  CHECK(simic::cuda::use_with_auto_backend() == simic::cuda::compiled_in);
  CHECK(simic::cuda::use_with_auto_backend() == simic::cuda::compiled_in);  // idempotent
  const simic::detail::device_reducer want = simic::cuda::compiled_in ? &simic::cuda::detail::auto_device_reduce : nullptr;
  CHECK((simic::detail::device_reducer_slot().load() == want));
  // CPU tensors still take the CPU back end's path, with identical rows.
  std::vector<at::Tensor> ts{spiky({300}, at::kFloat, true, 12)};
  const simic::reduce_request req{ts, simic::stat_set::full};
  CHECK(at::allclose(simic::auto_backend{}.reduce(req), simic::cpu_fused_backend{}.reduce(req), 0.0, 0.0, /*equal_nan=*/true));
  simic::detail::install_device_reducer(nullptr);
}

TEST_CASE("plan cache: the most recent plans per device, found by exact key, least recently used dropped") {
  auto plan_for = [](std::uint64_t address, int blocks, std::uint64_t stream) {
    auto p = std::make_shared<cd::cached_plan>();
    p->key = cd::plan_key{{{address, 100, cd::dtype_f32}}, blocks, stream};
    return std::shared_ptr<const cd::cached_plan>(std::move(p));
  };
  auto in = [](std::uint64_t address) { return std::vector<cd::plan_input>{{address, 100, cd::dtype_f32}}; };
  cd::plan_cache cache(3);
  CHECK(cache.capacity() == 3);
  CHECK(cache.find(in(1), 792, 7) == nullptr);  // empty
  const auto a = plan_for(1, 792, 7), b = plan_for(2, 792, 7), c = plan_for(3, 528, 7);
  cache.store(a);
  cache.store(b);
  cache.store(c);
  CHECK(cache.size() == 3);
  CHECK(cache.find(in(1), 792, 7) == a);        // hit, now the most recent
  CHECK(cache.find(in(3), 792, 7) == nullptr);  // same tensors, other block limit (the other set)
  CHECK(cache.find(in(3), 528, 7) == c);
  CHECK(cache.find(in(2), 792, 8) == nullptr);  // other stream
  const auto d = plan_for(4, 792, 7);
  cache.store(d);  // over capacity: b, the least recently used, goes
  CHECK(cache.size() == 3);
  CHECK(cache.find(in(2), 792, 7) == nullptr);
  CHECK(cache.find(in(1), 792, 7) == a);
  CHECK(cache.find(in(3), 528, 7) == c);
  CHECK(cache.find(in(4), 792, 7) == d);
  // Alternating shapes (gradients, then the LSTM state, then gradients ...) all stay cached.
  cd::plan_cache alternating;
  CHECK(alternating.capacity() == cd::plan_cache::default_capacity);
  for (std::uint64_t k = 0; k < 4; ++k) alternating.store(plan_for(10 + k, 792, 7));
  for (int round = 0; round < 3; ++round)
    for (std::uint64_t k = 0; k < 4; ++k) CHECK(alternating.find(in(10 + k), 792, 7) != nullptr);
  CHECK(cd::plan_cache(0).capacity() == 1);  // at least one plan
}
