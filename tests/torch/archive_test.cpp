#include "support/torch_doctest.hpp"

#include <cmath>
#include <limits>
#include <sstream>

#include "simic/monitor.hpp"
#include "simic/torch_archive.hpp"

using namespace simic;

namespace {
signals update(std::uint64_t u) {
  signals s;
  gradient_signal g;
  g.total_norm = 1.0 + 0.3 * std::sin(static_cast<double>(u)) + (u > 60 ? 0.05 * static_cast<double>(u - 60) : 0.0);
  g.health = 1.0 - 0.01 * static_cast<double>(u % 3);
  g.min_param_norm = 1e-3;
  g.max_param_norm = 0.9;
  g.parameters = 8;
  if (u == 25) g.nan_count = 2;
  s.gradients = g;
  s.approx_kl = u == 15 ? 0.2 : 0.01;
  s.performance = 100.0 + std::cos(static_cast<double>(u)) - (u == 90 ? 40.0 : 0.0);
  s.progress = training_progress(u + 1, 200);
  return s;
}
template <class Monitor>
std::string saved(const Monitor& m) {
  torch::serialize::OutputArchive out;
  save(out, m);
  std::ostringstream os;
  out.save_to(os);
  return os.str();
}
template <class Monitor>
void restore(const std::string& bytes, Monitor& m) {
  std::istringstream is(bytes);
  torch::serialize::InputArchive in;
  in.load_from(is);
  load(in, m);
}
}  // namespace

namespace {
template <class Monitor>
void check_resumes(Monitor a, Monitor b) {
  for (std::uint64_t u = 0; u < 40; ++u) {
    a.check(update(u));
    if (u % 8 == 7) a.tick();
  }
  const std::string bytes = saved(a);
  restore(bytes, b);
  CHECK(b.state() == a.state());
  std::size_t reported = 0;
  for (std::uint64_t u = 40; u < 120; ++u) {
    const auto ra = a.check(update(u));
    const auto rb = b.check(update(u));
    CHECK(ra.report == rb.report);
    reported += ra.report.size();
    CHECK(ra.resp.act == rb.resp.act);
    if (u % 8 == 7) CHECK(a.tick() == b.tick());
  }
  CHECK(reported > 0);  // the resumed half has anomalies to agree on
  CHECK(a.state() == b.state());
}
}  // namespace

TEST_CASE("a monitor saved through a torch archive resumes bit for bit (both presets)") {
  SUBCASE("simic defaults: running moments, CUSUM, figure ring, condition latches") {
    check_resumes(default_monitor{}, default_monitor{});
  }
  SUBCASE("reference preset") { check_resumes(make_reference_monitor(), make_reference_monitor()); }
}

TEST_CASE("saved values are exact doubles and full 64-bit counters") {
  gradient_drift::state_type st;
  st.norm.raw = 0.1 + 1e-17;
  st.norm.momentum_pow = std::nextafter(0.5, 1.0);
  st.norm.steps = std::numeric_limits<std::uint64_t>::max();
  torch::serialize::OutputArchive out;
  save_state(out, st, "d");
  std::ostringstream os;
  out.save_to(os);
  std::istringstream is(os.str());
  torch::serialize::InputArchive in;
  in.load_from(is);
  gradient_drift::state_type back;
  load_state(in, back, "d");
  CHECK(back == st);
}

TEST_CASE("a missing or malformed entry is a clear error and loads nothing") {
  default_monitor a;
  a.check(update(0));
  torch::serialize::OutputArchive out;
  save(out, a, "other_prefix");
  std::ostringstream os;
  out.save_to(os);
  default_monitor b;
  const auto keep = b.state();
  {
    std::istringstream is(os.str());
    torch::serialize::InputArchive in;
    in.load_from(is);
    CHECK_THROWS_WITH_AS(load(in, b), doctest::Contains("archive lacks 'simic."), std::invalid_argument);
  }
  CHECK(b.state() == keep);
  // a float32 where a float64 belongs
  torch::serialize::OutputArchive bad;
  save(bad, a);
  bad.write("simic.config.escalation_left", at::zeros({}, at::kFloat));
  std::ostringstream os2;
  bad.save_to(os2);
  std::istringstream is2(os2.str());
  torch::serialize::InputArchive in2;
  in2.load_from(is2);
  CHECK_THROWS_WITH_AS(load(in2, b), doctest::Contains("escalation_left' has dtype Float"), std::invalid_argument);
  CHECK(b.state() == keep);
}
