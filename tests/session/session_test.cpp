// simic::session: every sensor read, every event, every config interval,
// against references computed here (float64 loops over the same tensors, or
// the process's own /proc/self/status).
#include "support/torch_doctest.hpp"

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "simic/emit/sink_memory.hpp"
#include "simic/presets/ppo_session.hpp"

using namespace simic;

namespace {

// The PPO preset's session and its sensors, by the names the tests read them with.
using tel_t = ppo_session<>;
using grads_t = gradient_health_sensor<>;
using layers_t = layer_gradient_sensor<>;
using scan_t = nan_inf_scanner<>;
using lstm_t = lstm_health_sensor<>;

// Two "host" layers and one "module" layer with gradients set by hand.
struct net {
  std::vector<std::pair<std::string, at::Tensor>> params;
  net() {
    torch::manual_seed(3);
    for (const char* name : {"host.w", "host.b", "seed.w"}) {
      at::Tensor p = torch::randn({std::string(name) == "host.b" ? 4 : 12}).set_requires_grad(true);
      p.mutable_grad() = torch::randn_like(p) * 0.1;
      params.emplace_back(name, p);
    }
  }
  at::Tensor& grad(std::size_t i) { return params[i].second.mutable_grad(); }
};

double norm64(const at::Tensor& t) {
  const at::Tensor d = t.to(at::kDouble).contiguous();
  double s = 0.0;
  for (std::int64_t i = 0; i < d.numel(); ++i) s += d.data_ptr<double>()[i] * d.data_ptr<double>()[i];
  return std::sqrt(s);
}

std::map<std::string, int> names(const std::vector<event>& es) {
  std::map<std::string, int> n;
  for (const auto& e : es) ++n[std::string(e.name())];
  return n;
}

// The events holding a P, copied (the sink hands out copies).
template <class P>
std::vector<std::shared_ptr<const event>> all(const std::vector<event>& es) {
  std::vector<std::shared_ptr<const event>> out;
  for (const auto& e : es)
    if (e.is<P>()) out.push_back(std::make_shared<const event>(e));
  return out;
}

struct fixture {
  std::shared_ptr<memory_sink> sink = std::make_shared<memory_sink>();
  net n;
};

}  // namespace

TEST_CASE("session: gradient health, update ratio and the host/module ratio against float64 references") {
  fixture f;
  session_options o;
  tel_t tel(o, f.n.params, {f.sink}, gradient_health_options{.host = param_filter().include("host.*")});
  signals s;
  const check_result& r = tel.step(s);
  CHECK(r.resp.act == action::proceed);
  const gradient_signal g = *tel.last_signals().gradients;
  const double total = std::sqrt(std::pow(norm64(f.n.grad(0)), 2) + std::pow(norm64(f.n.grad(1)), 2) +
                                 std::pow(norm64(f.n.grad(2)), 2));
  CHECK(g.total_norm == doctest::Approx(total).epsilon(1e-12));
  CHECK(g.parameters == 3);
  CHECK_FALSE(tel.last_signals().update_ratio.has_value());  // the first step only takes a copy
  // (module norm / sqrt(12)) / (host norm / sqrt(16))
  const double host = std::sqrt(std::pow(norm64(f.n.grad(0)), 2) + std::pow(norm64(f.n.grad(1)), 2));
  const double want = (norm64(f.n.grad(2)) / std::sqrt(12.0)) / (host / std::sqrt(16.0));
  REQUIRE(tel.sensor<grads_t>().last_host_module_ratio().has_value());
  CHECK(*tel.sensor<grads_t>().last_host_module_ratio() == doctest::Approx(want).epsilon(1e-12));

  // the optimizer moves one weight: the next step reads ||delta|| / ||theta||
  std::vector<at::Tensor> before;
  for (auto& [_, p] : f.n.params) before.push_back(p.detach().clone());
  {
    torch::NoGradGuard ng;
    f.n.params[2].second.add_(0.01);
  }
  tel.step(s);
  double change = 0.0, size = 0.0;
  for (std::size_t i = 0; i < 3; ++i) {
    change += std::pow(norm64(f.n.params[i].second.detach() - before[i]), 2);
    size += std::pow(norm64(f.n.params[i].second.detach()), 2);
  }
  REQUIRE(tel.last_signals().update_ratio.has_value());
  CHECK(*tel.last_signals().update_ratio == doctest::Approx(std::sqrt(change / size)).epsilon(1e-6));
  tel.close();
  const auto ev = f.sink->events();
  const auto gh = all<gradient_health_event>(ev);
  REQUIRE(gh.size() == 2);
  CHECK(gh[0]->get_if<gradient_health_event>()->gradients.total_norm == doctest::Approx(total).epsilon(1e-12));
  CHECK(*gh[0]->get_if<gradient_health_event>()->host_module_ratio == doctest::Approx(want).epsilon(1e-12));
  CHECK(names(ev)["update"] == 2);
  CHECK(tel.sensor<grads_t>().measurements() == 2);
  CHECK(tel.sensor<parameter_update_sensor>().measurements() == 2);
  CHECK(tel.sensor<grads_t>().host_module_ratios() == 2);
}

TEST_CASE("session: without host parameters no ratio; a filter narrows what is read") {
  fixture f;
  session_options o;
  o.watch = param_filter().exclude("seed.*");
  tel_t tel(o, f.n.params, {f.sink});
  tel.step({});
  CHECK(tel.watched().size() == 2);
  CHECK(tel.last_signals().gradients->parameters == 2);
  CHECK_FALSE(tel.sensor<grads_t>().last_host_module_ratio().has_value());
  CHECK(tel.sensor<grads_t>().host_module_ratios() == 0);
}

TEST_CASE("session: gradient_interval: gradients are read in updates 1, 1 + N, ... (below, at, above N)") {
  for (std::uint32_t every : {1u, 2u, 3u}) {
    INFO("gradient_interval " << every);
    fixture f;
    session_options o;
    tel_t tel(o, f.n.params, {f.sink}, gradient_health_options{.every = every});
    std::vector<std::uint64_t> read;
    for (int u = 1; u <= 7; ++u) {
      tel.begin_update();
      for (int k = 0; k < 2; ++k) {
        tel.step({});
        if (tel.last_signals().gradients) read.push_back(tel.update());
      }
    }
    std::vector<std::uint64_t> want;
    for (std::uint64_t u = 1; u <= 7; ++u)
      if ((u - 1) % every == 0) want.insert(want.end(), {u, u});
    CHECK(read == want);
    tel.close();
    CHECK(all<gradient_health_event>(f.sink->events()).size() == want.size());
  }
}

TEST_CASE("session: memory_interval: RSS in updates 1, 1 + N, ...; none below NORMAL") {
  fixture f;
  session_options o;
  tel_t tel(o, f.n.params, {f.sink}, memory_sensor_options{.every = 3});
  for (int u = 1; u <= 7; ++u) {
    tel.begin_update();
    tel.step({});
  }
  tel.monitor().cfg().set_level(level::minimal);  // cat::memory is collected from NORMAL
  tel.begin_update();
  tel.step({});
  tel.close();
  const auto ev = f.sink->events();
  const auto mem = all<memory_event>(ev);
  REQUIRE(mem.size() == 3);
  CHECK(mem[0]->update() == 1);
  CHECK(mem[1]->update() == 4);
  CHECK(mem[2]->update() == 7);
  CHECK(tel.sensor<memory_sensor>().measurements() == 3);
  // The resident set against the kernel's own VmRSS line (kB), read now.
  std::ifstream status("/proc/self/status");
  double vm_rss = 0.0;
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) vm_rss = std::stod(line.substr(6)) * 1024.0;
  REQUIRE(vm_rss > 0.0);
  const auto& m = mem[2]->get_if<memory_event>()->memory;
  REQUIRE(m.rss_bytes.has_value());
  CHECK(static_cast<double>(*m.rss_bytes) == doctest::Approx(vm_rss).epsilon(0.25));
  CHECK_FALSE(m.device.has_value());  // CPU parameters: no device figures
}

TEST_CASE("session: memory_sensor asks the device reader only for a device") {
  int asked = 0;
  memory_sensor mem({.device_reader = [&](std::int64_t i) -> std::optional<device_memory> {
    ++asked;
    return device_memory{.device = i, .allocated = 10, .reserved = 20, .peak_allocated = 15};
  }});
  CHECK_FALSE(mem.measure().device.has_value());
  const memory_stats m = mem.measure(at::Device(at::kCUDA, 1));
  CHECK(asked == 1);
  REQUIRE(m.device.has_value());
  CHECK(*m.device == device_memory{.device = 1, .allocated = 10, .reserved = 20, .peak_allocated = 15});
}

TEST_CASE("session: DEBUG diagnostics at DEBUG only, each behind its switch") {
  fixture f;
  at::Tensor ratio = torch::tensor({1.0, 7.0, 0.05}), old_lp = torch::zeros({3}), new_lp = ratio.log(),
             actions = torch::tensor({0, 1, 2});
  const step_loss loss{torch::tensor(0.5)};
  const ratio_batch batch{.ratio = ratio, .old_log_prob = old_lp, .new_log_prob = new_lp, .actions = actions};
  SUBCASE("NORMAL: none") {
    tel_t tel({}, f.n.params, {f.sink});
    tel.step({}, loss, batch);
    CHECK_FALSE(tel.sensor<layers_t>().last().has_value());
    CHECK_FALSE(tel.sensor<scan_t>().last().has_value());
    CHECK_FALSE(tel.sensor<ratio_diagnostic_sensor>().last().has_value());
  }
  SUBCASE("DEBUG: all three, matching the sensors read directly") {
    session_options o;
    o.config.configured = level::debug;
    tel_t tel(o, f.n.params, {f.sink});
    tel.step({}, loss, batch);
    const auto& layers = tel.sensor<layers_t>().last();
    REQUIRE(layers.has_value());
    REQUIRE(layers->layers.size() == 3);
    CHECK(layers->layers[2].norm == doctest::Approx(norm64(f.n.grad(2))).epsilon(1e-12));
    const auto& scan = tel.sensor<scan_t>().last();
    REQUIRE(scan.has_value());
    CHECK(scan->clean());
    CHECK(scan->loss_finite == std::optional<bool>(true));
    const auto& ratio_report = tel.sensor<ratio_diagnostic_sensor>().last();
    REQUIRE(ratio_report.has_value());
    CHECK(ratio_report->outliers.size() == 2);  // 7 > 5 and 0.05 < 0.1
    CHECK(ratio_report->above == 1);
    CHECK(ratio_report->below == 1);
    tel.close();
    auto n = names(f.sink->events());
    CHECK(n["layer_gradients"] == 1);
    CHECK(n["nan_inf_scan"] == 1);
    CHECK(n["ratio_diagnostic"] == 1);
  }
  SUBCASE("DEBUG with the switches off") {
    session_options o;
    o.config.configured = level::debug;
    tel_t tel(o, f.n.params, {f.sink}, layer_gradient_options{.enabled = false},
              ratio_diagnostic_options{.enabled = false});
    tel.step({}, loss, batch);
    CHECK_FALSE(tel.sensor<layers_t>().last().has_value());
    CHECK(tel.sensor<scan_t>().last().has_value());
    CHECK_FALSE(tel.sensor<ratio_diagnostic_sensor>().last().has_value());
  }
}

TEST_CASE("session: a NaN gradient: skip, escalation start, DEBUG for escalation_epochs epochs, end, summary") {
  fixture f;
  session_options o;
  o.config.escalation_epochs = 2;
  tel_t tel(o, f.n.params, {f.sink});
  signals s;
  s.progress = training_progress(1, 100);
  f.n.grad(0)[0] = std::nan("");
  tel.begin_update();
  const check_result& r = tel.step(s);
  CHECK(r.resp.act == action::skip_step);
  CHECK(tel.level() == level::debug);
  CHECK(tel.sensor<scan_t>().last().has_value());  // the escalating check's own diagnostics
  f.n.grad(0)[0] = 0.0;
  tel.end_epoch(1.0);  // one tick left
  CHECK(tel.level() == level::debug);
  tel.begin_update();
  tel.step(s);
  CHECK(tel.last_signals().performance == std::optional<double>(1.0));
  tel.end_epoch();
  CHECK(tel.level() == level::normal);
  tel.close();
  const auto ev = f.sink->events();
  auto n = names(ev);
  CHECK(n["response"] == 1);
  CHECK(n["escalation_start"] == 1);
  CHECK(n["escalation_end"] == 1);
  CHECK(n["anomaly"] >= 1);
  const auto resp = all<response_event>(ev);
  CHECK(resp[0]->get_if<response_event>()->reason.find("non-finite gradients") != std::string::npos);
  const auto start = all<escalation_start_event>(ev);
  CHECK(start[0]->get_if<escalation_start_event>()->reason.find("numerical_instability") != std::string::npos);
  const auto sums = all<epoch_summary>(ev);
  REQUIRE(sums.size() == 2);
  CHECK(sums[0]->get_if<epoch_summary>()->performance == std::optional<double>(1.0));
  CHECK(sums[0]->get_if<epoch_summary>()->updates == 1);
  CHECK(sums[0]->get_if<epoch_summary>()->anomalies >= 1);
  CHECK(sums[0]->get_if<epoch_summary>()->level_after == level::debug);
  CHECK(sums[1]->get_if<epoch_summary>()->level_after == level::normal);
  CHECK(sums[1]->epoch() == 2);
}

TEST_CASE("session: consecutive skips up to the limit, then stop with its cause") {
  fixture f;
  session_options o;
  o.max_consecutive_skips = 2;
  tel_t tel(o, f.n.params, {f.sink});
  f.n.grad(1)[0] = std::numeric_limits<double>::infinity();
  CHECK(tel.step({}).resp.act == action::skip_step);
  const check_result& r = tel.step({});
  CHECK(r.resp.act == action::stop);
  CHECK(r.resp.reason.find("2 consecutive") != std::string::npos);
  tel.close();
  const auto resp = all<response_event>(f.sink->events());
  REQUIRE(resp.size() == 2);
  CHECK(resp[1]->get_if<response_event>()->act == action::stop);
  CHECK(resp[1]->get_if<response_event>()->consecutive_skips == 2);
}

TEST_CASE("session: the rollout's LSTM state: the least healthy row reaches the next check, once") {
  fixture f;
  tel_t tel({}, f.n.params, {f.sink});
  at::Tensor h = torch::full({3, 4}, 0.5), c = torch::full({3, 4}, 0.5);
  c[1].fill_(1e3);  // RMS 1000 > 100: unhealthy
  tel.feed(lstm_state{h, c});
  CHECK(tel.sensor<lstm_t>().measurements() == 3);
  const check_result& r = tel.step({});
  CHECK(r.report.has(anomaly_kind::lstm_unhealthy));
  REQUIRE(tel.last_signals().lstm.has_value());
  CHECK(tel.last_signals().lstm->c_norm == doctest::Approx(norm64(c[1])).epsilon(1e-12));
  tel.step({});
  CHECK_FALSE(tel.last_signals().lstm.has_value());  // consumed by the first check
  tel.close();
  const auto l = all<lstm_health_event>(f.sink->events());
  REQUIRE(l.size() == 1);
  CHECK_FALSE(l[0]->get_if<lstm_health_event>()->healthy);
}

TEST_CASE("session: rollout figures and an epoch's performance reach the next check; the caller's win") {
  fixture f;
  tel_t tel({}, f.n.params, {f.sink});
  const training_progress p(1, 10);
  tel.end_rollout({.reward_rate = 0.25, .explained_variance = 0.5});
  signals s;
  s.progress = p;
  tel.step(s);
  CHECK(tel.last_signals().reward_rate == std::optional<double>(0.25));
  CHECK(tel.last_signals().explained_variance == std::optional<double>(0.5));
  tel.step(s);
  CHECK_FALSE(tel.last_signals().reward_rate.has_value());
  tel.end_epoch(40.0);  // no check of this epoch carried one: the next check does
  tel.step(s);
  CHECK(tel.last_signals().performance == std::optional<double>(40.0));
  s.performance = 41.0;
  tel.step(s);
  tel.end_epoch(41.0);  // carried already: not again
  s.performance.reset();
  tel.step(s);
  CHECK_FALSE(tel.last_signals().performance.has_value());
  tel.end_rollout({.reward_rate = 0.3});
  s.reward_rate = 0.9;
  tel.step(s);
  CHECK(tel.last_signals().reward_rate == std::optional<double>(0.9));
}

TEST_CASE("session: bad input throws before anything is read or consumed") {
  fixture f;
  tel_t tel({}, f.n.params, {f.sink});
  tel.end_rollout({.reward_rate = 0.25});  // a reward rate needs progress
  at::Tensor h = torch::ones({1, 4}), c = torch::ones({1, 4});
  tel.feed(lstm_state{h, c});
  CHECK_THROWS_WITH_AS(tel.step({}), doctest::Contains("progress is required"), std::invalid_argument);
  CHECK(tel.checks() == 0);
  CHECK(tel.sensor<grads_t>().measurements() == 0);
  CHECK(tel.sensor<parameter_update_sensor>().measurements() == 0);
  CHECK(tel.update() == 0);
  signals s;
  s.progress = training_progress(1, 2);
  tel.step(s);  // the held figures are still there
  CHECK(tel.last_signals().reward_rate == std::optional<double>(0.25));
  CHECK(tel.last_signals().lstm.has_value());
  CHECK_FALSE(tel.last_signals().update_ratio.has_value());  // the sensor's first read
  CHECK_THROWS_WITH_AS(tel_t({}, f.n.params, std::shared_ptr<hub>()), doctest::Contains("hub"),
                       std::invalid_argument);
  std::vector<std::pair<std::string, at::Tensor>> undefined{{"w", at::Tensor()}};
  CHECK_THROWS_WITH_AS(tel_t({}, undefined), doctest::Contains("parameter w"), std::invalid_argument);
}

TEST_CASE("session: OFF reads nothing; no sinks builds no events; a shared hub stays open") {
  fixture f;
  SUBCASE("OFF") {
    session_options o;
    o.config.configured = level::off;
    tel_t tel(o, f.n.params, {f.sink});
    tel.monitor().cfg().set_level(level::normal);
    tel.step({});
    CHECK(tel.sensor<grads_t>().last().has_value());
    tel.monitor().cfg().set_level(level::off);  // no figures of the earlier step stay
    tel.feed(lstm_state{torch::ones({1, 2}), torch::ones({1, 2})});
    tel.step({});
    CHECK_FALSE(tel.sensor<grads_t>().last().has_value());
    CHECK_FALSE(tel.last_signals().gradients.has_value());
    CHECK(tel.sensor<grads_t>().measurements() == 1);
    CHECK(tel.sensor<lstm_t>().measurements() == 0);
    CHECK(tel.sensor<parameter_update_sensor>().measurements() == 1);
    CHECK(tel.checks() == 2);
  }
  SUBCASE("no sinks") {
    tel_t tel({}, f.n.params);
    tel.step({});
    CHECK(tel.sensor<grads_t>().measurements() == 1);
    CHECK(tel.close().emitted == 0);
  }
  SUBCASE("shared hub") {
    auto h = std::make_shared<hub>();
    h->add_sink(f.sink);
    {
      tel_t tel({}, f.n.params, h);
      tel.step({});
      tel.close();
      CHECK(f.sink->size() >= 2);  // flushed: gradient health, update
    }
    CHECK(h->emit(0, 0, epoch_summary{}));  // still open after the session
  }
}

TEST_CASE("session: async gradient reads give the sync figures") {
  fixture f;
  const gradient_health_options async{.read = gradient_read::async};
  tel_t a({}, f.n.params, {}, async);
  tel_t b({}, f.n.params);
  a.enqueue();
  a.step({});
  b.step({});
  CHECK(a.last_signals().gradients->total_norm == b.last_signals().gradients->total_norm);
  CHECK(a.sensor<grads_t>().measurements() == 1);
  a.step({});  // not enqueued: read in step()
  CHECK(a.sensor<grads_t>().measurements() == 2);
  // every second update: an enqueue before an update without a read enqueues nothing
  gradient_health_options every2 = async;
  every2.every = 2;
  tel_t c({}, f.n.params, {}, every2);
  for (int k = 1; k <= 4; ++k) {
    c.enqueue();
    c.step({});
    CHECK(c.last_signals().gradients.has_value() == (k % 2 == 1));
  }
  CHECK(c.sensor<grads_t>().measurements() == 2);
}

TEST_CASE("session: a monitor holding lstm_bounds fed no LSTM state says so") {
  fixture f;
  session_options o;
  o.config.missing_signal_checks = 3;
  using lstm_only = monitor<reference::lstm_bounds>;
  session<lstm_only> tel(lstm_only(config(o.config)), o, f.n.params, {f.sink});
  tel.step({});
  tel.step({});
  CHECK_FALSE(tel.step({}).report.empty());
  CHECK(tel.monitor().last().report.has(anomaly_kind::signal_missing));
  CHECK(tel.monitor().last().report[0].detail.find("lstm") != std::string::npos);
}
