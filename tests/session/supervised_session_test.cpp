// The supervised preset as a session (presets/supervised_session.hpp) on a
// small regression loop: what it reads and writes, against references
// computed here.
#include "support/torch_doctest.hpp"

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "simic/emit/sink_memory.hpp"
#include "simic/presets/supervised_session.hpp"

using namespace simic;

namespace {

template <class P>
std::vector<P> payloads(const std::vector<event>& es) {
  std::vector<P> out;
  for (const auto& e : es)
    if (const P* p = e.get_if<P>()) out.push_back(*p);
  return out;
}

struct regression {
  torch::nn::Sequential net{torch::nn::Linear(4, 16), torch::nn::Tanh(), torch::nn::Linear(16, 1)};
  std::unique_ptr<torch::optim::SGD> opt;
  at::Tensor x, y;
  regression() {
    torch::manual_seed(11);
    net = torch::nn::Sequential(torch::nn::Linear(4, 16), torch::nn::Tanh(), torch::nn::Linear(16, 1));
    opt = std::make_unique<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.05));
    x = torch::randn({256, 4});
    y = x.sum(1, true).sin();
  }
  // One minibatch's loss, gradients set.
  double backward(std::int64_t step) {
    const auto idx = torch::arange(32 * (step % 8), 32 * (step % 8 + 1), torch::kLong);
    opt->zero_grad();
    const auto loss = torch::mse_loss(net->forward(x.index_select(0, idx)), y.index_select(0, idx));
    loss.backward();
    return loss.item<double>();
  }
};

}  // namespace

TEST_CASE("supervised session: a healthy loop raises nothing, no signal is missing or unread; the record") {
  static_assert(!supervised_monitor::reads.contains(signal_set::approx_kl));
  static_assert(supervised_monitor::reads.contains(signal_set::loss) &&
                supervised_monitor::reads.contains(signal_set::gradients) &&
                supervised_monitor::reads.contains(signal_set::update_ratio) &&
                supervised_monitor::reads.contains(signal_set::performance));
  regression m;
  auto sink = std::make_shared<memory_sink>();
  session_options o;
  o.config.missing_signal_checks = 50;  // a detector starved for 50 checks would say so
  supervised_session<> tel(o, *m.net, {sink});
  const std::int64_t steps = 400;
  std::vector<double> ratios;  // the update ratio by hand: ||w_after - w_before|| / ||w_after||
  std::vector<at::Tensor> before;
  for (std::int64_t i = 1; i <= steps; ++i) {
    simic::signals s;
    s.loss = m.backward(i);
    s.progress = training_progress(static_cast<std::uint64_t>(i), steps);
    std::vector<at::Tensor> now;
    for (const auto& p : m.net->parameters()) now.push_back(p.detach().clone().to(at::kDouble));
    if (!before.empty()) {
      double d = 0.0, w = 0.0;
      for (std::size_t k = 0; k < now.size(); ++k) {
        d += (now[k] - before[k]).pow(2).sum().item<double>();
        w += now[k].pow(2).sum().item<double>();
      }
      ratios.push_back(std::sqrt(d) / std::sqrt(w));
    }
    before = now;
    const check_result& r = tel.step(s);
    INFO("step " << i);
    CHECK_MESSAGE(r.report.empty(), (r.report.empty() ? std::string() : r.report[0].detail));
    REQUIRE(r.resp.act == action::proceed);
    m.opt->step();
    if (i % 100 == 0) tel.end_epoch(-s.loss.value());
  }
  CHECK(tel.unread_signals().empty());
  tel.close();
  const auto ev = sink->events();
  CHECK(payloads<anomaly_event>(ev).empty());
  CHECK(payloads<unread_signals_event>(ev).empty());
  const auto records = payloads<update_metrics>(ev);
  REQUIRE(records.size() == static_cast<std::size_t>(steps));
  CHECK_FALSE(records[0].update_ratio.has_value());  // the first step has no previous one
  for (std::size_t k = 1; k < records.size(); ++k) {
    INFO("record " << k);
    REQUIRE(records[k].update_ratio.has_value());
    CHECK(*records[k].update_ratio == doctest::Approx(ratios[k - 1]).epsilon(1e-5));
    CHECK(records[k].extra.size() <= 1);  // performance where the check carried it; no constant step
    for (const auto& e : records[k].extra) CHECK(e.name == "performance");
  }
  // memory every 50 updates from the first: 1, 51, ..., 351
  CHECK(payloads<memory_event>(ev).size() == 8);
}

TEST_CASE("supervised session: a PPO figure is named unread once; the last epoch's figure is checked at close") {
  regression m;
  auto sink = std::make_shared<memory_sink>();
  supervised_session<> tel({}, *m.net, {sink});
  simic::signals s;
  s.loss = m.backward(1);
  s.progress = training_progress(1, 10);
  s.approx_kl = 0.01;  // read by no supervised detector
  tel.step(s);
  tel.step(s);
  CHECK(tel.unread_signals() == signal_set{signal_set::approx_kl});
  s.approx_kl.reset();
  s.ratio_max = 1.2;  // a second field: named in its own event
  tel.step(s);
  CHECK(tel.unread_signals() == signal_set{signal_set::approx_kl, signal_set::ratio_max});

  // performance per epoch: 0.5 up to 0.9, then at chance in the last epoch, which no step follows
  s.ratio_max.reset();
  for (std::uint64_t e = 1; e <= 6; ++e) {
    s.progress = training_progress(e + 3, 10);
    tel.step(s);
    tel.end_epoch(e < 6 ? 0.5 + 0.1 * static_cast<double>(std::min<std::uint64_t>(e, 4)) : 0.1);
  }
  const std::uint64_t before = tel.checks();
  tel.close();
  CHECK(tel.checks() == before + 1);  // one check of its own, with no step record
  const auto ev = sink->events();
  const auto unread = payloads<unread_signals_event>(ev);
  REQUIRE(unread.size() == 2);
  CHECK(unread[0].signals == "approx_kl");
  CHECK(unread[0].reads.find("loss") != std::string::npos);
  CHECK(unread[0].reads.find("approx_kl") == std::string::npos);
  CHECK(unread[1].signals == "ratio_max");
  REQUIRE(payloads<update_metrics>(ev).size() == 9);
  for (const auto& a : payloads<anomaly_event>(ev)) CHECK(a.kind == anomaly_kind::learning_stall);
  const auto anomalies = payloads<anomaly_event>(ev);
  REQUIRE(anomalies.size() == 1);
  CHECK(anomalies[0].kind == anomaly_kind::learning_stall);
  CHECK(anomalies[0].detail.find("performance") != std::string::npos);
  CHECK(payloads<update_metrics>(ev).size() == 3 + 6);
  tel.close();  // idempotent: nothing checked twice
  CHECK(tel.checks() == before + 1);
}

TEST_CASE("supervised session: one NaN batch escalates for escalation_checks checks, then an escalation_end") {
  regression m;
  auto sink = std::make_shared<memory_sink>();
  session_options o;
  o.config.escalation_checks = 5;
  supervised_session<> tel(o, *m.net, {sink});
  simic::signals s;
  s.progress = training_progress(1, 100);
  for (int i = 1; i <= 20; ++i) {
    s.loss = m.backward(i);
    if (i == 3) s.loss = std::nan("");
    const check_result& r = tel.step(s);
    INFO("step " << i);
    CHECK(tel.level() == (i >= 3 && i <= 7 ? level::debug : level::normal));  // 3, then 5 more checks
    CHECK(r.escalation_ended == (i == 8));
  }
  tel.close();
  const auto ev = sink->events();
  CHECK(payloads<escalation_start_event>(ev).size() == 1);
  CHECK(payloads<escalation_start_event>(ev)[0].checks == 5);
  const auto ends = payloads<escalation_end_event>(ev);
  REQUIRE(ends.size() == 1);
  CHECK(ends[0].from == level::debug);
  CHECK(ends[0].to == level::normal);
}
