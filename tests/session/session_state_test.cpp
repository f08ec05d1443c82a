// The whole session's state (session.hpp state()/load(), session_state.hpp):
// what a save holds, a load into a fresh session that goes on exactly as the
// saved one, the judgement-only load of a rollback, and bad input that
// changes nothing.
#include "support/torch_doctest.hpp"

#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "simic/detect/lstm_rms_bounds.hpp"
#include "simic/detect/numerical_stability.hpp"
#include "simic/detect/update_shift.hpp"
#include "simic/emit/json.hpp"
#include "simic/emit/sink_memory.hpp"
#include "simic/sensors/lstm_health.hpp"
#include "simic/sensors/parameter_update.hpp"
#include "simic/session_state.hpp"

using namespace simic;

namespace {

using stateful_session = session<monitor<numerical_stability, update_shift, lstm_rms_bounds>, parameter_update_sensor,
                                 lstm_health_sensor<>>;

std::vector<std::string> lines(const std::vector<event>& es) {
  std::vector<std::string> out;
  for (const auto& e : es) {
    auto j = to_json(e);
    j.erase("time");
    out.push_back(j.dump());
  }
  return out;
}

struct loop {
  torch::nn::Linear net{nullptr};
  explicit loop(std::uint64_t seed = 3) {
    torch::manual_seed(seed);
    net = torch::nn::Linear(6, 3);
  }
  // One step: moves the weights by a known amount, feeds an LSTM state, checks.
  void step(stateful_session& tel, std::uint64_t i) {
    {
      torch::NoGradGuard ng;
      net->weight.add_(0.01 * std::sin(static_cast<double>(i)));
    }
    tel.feed(lstm_state{torch::full({2, 4}, 0.5 + 0.01 * static_cast<double>(i)), torch::full({2, 4}, 1.0)});
    signals s;
    s.progress = training_progress(i, 200);
    tel.step(s);
    if (i % 10 == 0) tel.end_rollout({.reward_rate = 0.1 * static_cast<double>(i), .explained_variance = 0.5});
    if (i % 25 == 0) tel.end_epoch(static_cast<double>(i));
  }
};

std::string saved(const stateful_session& tel) {
  torch::serialize::OutputArchive ar;
  save_session(ar, tel);
  std::ostringstream out;
  ar.save_to(out);
  return out.str();
}
torch::serialize::InputArchive opened(const std::string& bytes) {
  torch::serialize::InputArchive ar;
  std::istringstream in(bytes);
  ar.load_from(in);
  return ar;
}

}  // namespace

TEST_CASE("session state: a save at step k loaded into a fresh session goes on exactly as the saved one") {
  for (const std::uint64_t k : {std::uint64_t{10}, std::uint64_t{25}, std::uint64_t{37}}) {
    CAPTURE(k);
    loop a;
    auto sink_a = std::make_shared<memory_sink>();
    stateful_session tel_a(session_options{}, a.net->named_parameters(), {sink_a});
    for (std::uint64_t i = 1; i <= 60; ++i) a.step(tel_a, i);

    loop b;
    auto sink_b = std::make_shared<memory_sink>();
    std::string bytes;
    std::vector<at::Tensor> weights;
    {
      stateful_session tel_b(session_options{}, b.net->named_parameters(), {sink_b});
      for (std::uint64_t i = 1; i <= k; ++i) b.step(tel_b, i);
      bytes = saved(tel_b);
      // the plain state holds what was counted and held
      const auto st = tel_b.state();
      CHECK(st.update == k);
      CHECK(st.checks == k);
      CHECK(st.epochs == k / 25);
      CHECK(st.has_reward_rate == (k % 10 == 0));
      CHECK(st.has_epoch_performance == (k % 25 == 0));
      CHECK(st.has_progress == 1);
      CHECK(st.progress_episode == k);
      CHECK(st.progress_total == 200);
      tel_b.close();
    }
    loop c;  // its weights must be the saved run's: the model's own checkpoint
    {
      torch::NoGradGuard ng;
      for (std::size_t i = 0; i < c.net->parameters().size(); ++i) c.net->parameters()[i].copy_(b.net->parameters()[i]);
    }
    auto sink_c = std::make_shared<memory_sink>();
    stateful_session tel_c(session_options{}, c.net->named_parameters(), {sink_c});
    auto ar = opened(bytes);
    load_session(ar, tel_c);
    CHECK(tel_c.update() == k);
    for (std::uint64_t i = k + 1; i <= 60; ++i) c.step(tel_c, i);
    CHECK(tel_c.state() == tel_a.state());
    CHECK(tel_c.monitor().state() == tel_a.monitor().state());
    tel_a.close();  // every event delivered (the hub writes on its own thread)
    tel_c.close();
    std::vector<std::string> joined = lines(sink_b->events());
    const auto rest = lines(sink_c->events());
    joined.insert(joined.end(), rest.begin(), rest.end());
    CHECK(joined == lines(sink_a->events()));
  }
}

TEST_CASE("session state: without the sensors' state a resumed run differs (the update ratio's copy)") {
  loop a;
  stateful_session tel_a(session_options{}, a.net->named_parameters());
  for (std::uint64_t i = 1; i <= 20; ++i) a.step(tel_a, i);
  const std::string bytes = saved(tel_a);
  // a fresh session given only the counters and the monitor: its first update ratio is absent
  loop c;
  stateful_session tel_c(session_options{}, c.net->named_parameters());
  auto st = tel_a.state();
  tel_c.load(st);
  tel_c.monitor().load(tel_a.monitor().state());
  CHECK(tel_c.sensor<parameter_update_sensor>().tensors() == 0);
  auto ar = opened(bytes);
  load_session(ar, tel_c);
  CHECK(tel_c.sensor<parameter_update_sensor>().tensors() == 2);  // weight and bias copies
  CHECK(tel_c.sensor<parameter_update_sensor>().measurements() == 20);
}

TEST_CASE("session state: a judgement-only load keeps the session's counters") {
  loop a;
  stateful_session tel(session_options{}, a.net->named_parameters());
  for (std::uint64_t i = 1; i <= 30; ++i) a.step(tel, i);
  const std::string at_30 = saved(tel);
  const auto monitor_30 = tel.monitor().state();
  for (std::uint64_t i = 31; i <= 40; ++i) a.step(tel, i);
  const auto counters_40 = tel.state();
  auto ar = opened(at_30);
  stage_session(ar, tel, session_parts::judgement)();
  CHECK(tel.state() == counters_40);
  CHECK(tel.monitor().state() == monitor_30);
}

TEST_CASE("session state: bad counters are refused by name and change nothing") {
  loop a;
  stateful_session tel(session_options{}, a.net->named_parameters());
  for (std::uint64_t i = 1; i <= 5; ++i) a.step(tel, i);
  const auto good = tel.state();
  struct bad_case {
    const char* name;
    void (*spoil)(stateful_session::state_type&);
  };
  const bad_case cases[] = {
      {"explicit_updates", [](stateful_session::state_type& s) { s.explicit_updates = 2; }},
      {"has_reward_rate", [](stateful_session::state_type& s) { s.has_reward_rate = 7; }},
      {"unread", [](stateful_session::state_type& s) { s.unread = std::uint64_t{1} << signal_set::field_count; }},
      {"epoch_first_update", [](stateful_session::state_type& s) { s.epoch_first_update = 0; }},
      {"epoch_first_update", [](stateful_session::state_type& s) { s.epoch_first_update = s.update + 2; }},
      {"step_in_update", [](stateful_session::state_type& s) { s.step_in_update = s.checks + 1; }},
      {"progress_episode", [](stateful_session::state_type& s) { s.progress_episode = s.progress_total + 1; }},
      {"progress_episode", [](stateful_session::state_type& s) { s.progress_episode = 0; }},
  };
  for (const bad_case& c : cases) {
    CAPTURE(c.name);
    auto st = good;
    c.spoil(st);
    CHECK_THROWS_WITH_AS(tel.load(st), doctest::Contains(c.name), std::invalid_argument);
    CHECK(tel.state() == good);
  }
  // at the bounds: accepted
  auto edge = good;
  edge.epoch_first_update = edge.update + 1;
  edge.step_in_update = edge.checks;
  edge.unread = (std::uint64_t{1} << signal_set::field_count) - 1;
  CHECK_NOTHROW(tel.load(edge));
  CHECK(tel.state() == edge);
}

TEST_CASE("session state: an archive of another monitor, a damaged one, or one without the session: nothing changes") {
  loop a;
  stateful_session tel(session_options{}, a.net->named_parameters());
  for (std::uint64_t i = 1; i <= 12; ++i) a.step(tel, i);
  const auto counters = tel.state();
  const auto judgement = tel.monitor().state();
  // another session type: its monitor has other detectors
  using other_session = session<monitor<numerical_stability>, parameter_update_sensor>;
  loop o;
  other_session other(session_options{}, o.net->named_parameters());
  torch::serialize::OutputArchive out;
  save_session(out, other);
  std::ostringstream os;
  out.save_to(os);
  auto ar = opened(os.str());
  CHECK_THROWS_AS(load_session(ar, tel), archive_error);
  CHECK(tel.state() == counters);
  CHECK(tel.monitor().state() == judgement);
  // an archive with no session in it
  torch::serialize::OutputArchive empty;
  empty.write("something", at::ones({2}));
  std::ostringstream es;
  empty.save_to(es);
  auto ear = opened(es.str());
  CHECK_THROWS_WITH_AS(load_session(ear, tel), doctest::Contains("simic.session.monitor"), archive_error);
  CHECK(tel.state() == counters);
  // the update ratio's copies announced but one missing: its sensor refuses the archive
  torch::serialize::OutputArchive partial;
  partial.write("p.measurements", at::scalar_tensor(std::int64_t{4}, at::kLong));
  partial.write("p.copies", at::scalar_tensor(std::int64_t{3}, at::kLong));
  partial.write("p.copy.0", at::ones({3, 6}));
  partial.write("p.copy.1", at::ones({3}));
  std::ostringstream ps;
  partial.save_to(ps);
  auto par = opened(ps.str());
  auto& sensor = tel.sensor<parameter_update_sensor>();
  const std::uint64_t measured = sensor.measurements();
  CHECK_THROWS_WITH_AS(sensor.stage(par, "p"), doctest::Contains("'p.copy.2' of its 3 copies"), archive_error);
  CHECK(sensor.measurements() == measured);
  CHECK(tel.state() == counters);
  CHECK(tel.monitor().state() == judgement);
}

TEST_CASE("session state beside the model: the update ratio's copy is stored once with the weights it equals") {
  // 20,200 float weights (80,800 bytes): far above what the rest of the state takes
  torch::manual_seed(11);
  torch::nn::Linear net(100, 200);
  using update_session = session<monitor<numerical_stability, update_shift>, parameter_update_sensor>;
  update_session tel(session_options{}, net->named_parameters());
  auto move_and_check = [&](std::uint64_t i) {
    {
      torch::NoGradGuard ng;
      net->weight.add_(0.001 * static_cast<double>(i));
    }
    signals s;
    s.progress = training_progress(i, 100);
    tel.step(s);
  };
  for (std::uint64_t i = 1; i <= 5; ++i) move_and_check(i);
  std::int64_t weight_bytes = 0;
  for (const auto& p : net->parameters()) weight_bytes += p.numel() * static_cast<std::int64_t>(p.element_size());
  REQUIRE(weight_bytes == 80'800);
  auto archive_size = [&](bool with_session) {
    torch::serialize::OutputArchive ar;
    for (const auto& p : net->named_parameters()) ar.write("model." + p.key(), p.value().detach());
    if (with_session) save_session(ar, tel);
    std::ostringstream out;
    ar.save_to(out);
    return static_cast<std::int64_t>(out.str().size());
  };
  const std::int64_t model_only = archive_size(false);
  CHECK(model_only > weight_bytes);
  // right after a check the copy equals the weights: the session adds its own
  // state, not a second copy of the weights
  const std::int64_t after_check = archive_size(true);
  CHECK(after_check - model_only < weight_bytes / 4);
  // the weights moved since the check: the copy differs and is stored apart
  {
    torch::NoGradGuard ng;
    net->bias.add_(1.0);
  }
  const std::int64_t moved = archive_size(true);
  CHECK(moved - after_check >= 800);                 // the bias's copy (200 floats) now stored apart
  CHECK(moved - after_check < 800 + weight_bytes / 4);  // the weight's copy still shared
  {
    torch::NoGradGuard ng;
    net->weight.add_(1.0);
  }
  CHECK(archive_size(true) - model_only >= weight_bytes);  // both copies stored apart
}
