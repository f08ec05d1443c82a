// The C++ half of the Python bindings' same-events test
// (tests/python/test_same_events.py): plays a script of session calls, written
// by the test, through the C++ session a C++ user would make, and writes the
// events as JSONL. The test plays the same script through simic.Session and
// compares the two files line by line.
//   events_replay SCRIPT.json EVENTS.jsonl
// The script: {"preset": "supervised" | "ppo" | "ppo_feedforward" | "reference",
//   "parameters": [{"name", "shape", "value": [flat]}],
//   "calls": [{"call": "step", "grads": [[flat] per parameter] | absent,
//              "signals": {name: number, "progress": [step, total],
//                          "entropy": {head: x}, "user": {name: x}}},
//             {"call": "begin_update"}, {"call": "end_epoch", "performance"},
//             {"call": "end_rollout", "reward_rate", "explained_variance"},
//             {"call": "lstm_state", "shape", "h", "c"}]}
// Values travel as JSON numbers (each float32 exactly, so both sides hold
// the same bits), non-finite ones as "nan", "inf", "-inf".
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "simic/emit/sink_jsonl.hpp"
#include "simic/presets/ppo_session.hpp"
#include "simic/presets/reference.hpp"
#include "simic/presets/supervised_session.hpp"

namespace {

using json = nlohmann::ordered_json;  // the script's key order, as Python's dicts

torch::Tensor tensor_of(const json& values, const json& shape) {
  std::vector<float> flat;
  for (const json& v : values)  // NaN and Inf travel as "nan", "inf", "-inf" (JSON has no such numbers)
    flat.push_back(v.is_string() ? std::strtof(v.get<std::string>().c_str(), nullptr) : v.get<float>());
  return torch::tensor(flat, torch::kFloat).reshape(shape.get<std::vector<std::int64_t>>());
}

std::optional<double> number_at(const json& j, const char* key) {
  return j.contains(key) && !j[key].is_null() ? std::optional(j[key].get<double>()) : std::nullopt;
}

template <bool HasLstm, class Session>
void play(Session& s, std::vector<std::pair<std::string, torch::Tensor>>& params, const json& calls) {
  for (const json& c : calls) {
    const std::string call = c.at("call");
    if (call == "begin_update") {
      s.begin_update();
    } else if (call == "end_epoch") {
      s.end_epoch(number_at(c, "performance"));
    } else if (call == "end_rollout") {
      s.end_rollout({.reward_rate = number_at(c, "reward_rate"),
                     .explained_variance = number_at(c, "explained_variance")});
    } else if (call == "lstm_state") {
      if constexpr (HasLstm)
        s.feed(simic::lstm_state{tensor_of(c.at("h"), c.at("shape")), tensor_of(c.at("c"), c.at("shape"))});
      else
        throw std::invalid_argument("events_replay: this preset has no LSTM sensor");
    } else if (call == "step") {
      if (c.contains("grads"))
        for (std::size_t i = 0; i < params.size(); ++i)
          params[i].second.mutable_grad() = tensor_of(c["grads"][i], json(params[i].second.sizes().vec()));
      const json& j = c.at("signals");
      simic::signals x;
      for (const simic::scalar_signal& d : simic::scalar_signals)  // each by its one name (core/signals.hpp)
        x.*d.member = number_at(j, std::string(d.name()).c_str());
      if (j.contains("progress")) x.progress.emplace(j["progress"][0].get<std::uint64_t>(), j["progress"][1].get<std::uint64_t>());
      // The signals name their heads and user figures without owning them.
      // (in the script's order, as the Python dicts hand them over).
      const auto pairs = [&](const char* key) {
        std::vector<std::pair<std::string, double>> out;
        if (j.contains(key))
          for (const auto& [k, v] : j[key].items()) out.emplace_back(k, v.template get<double>());
        return out;
      };
      const auto heads = pairs("entropy"), figures = pairs("user");
      std::vector<simic::head_entropy> entropy;
      std::vector<simic::user_signal> user;
      for (const auto& [k, v] : heads) entropy.push_back({k, v});
      for (const auto& [k, v] : figures) user.push_back({k, v});
      x.entropy = entropy;
      x.user = user;
      s.step(x);
    } else {
      throw std::invalid_argument("events_replay: unknown call '" + call + "'");
    }
  }
  s.close();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: events_replay SCRIPT.json EVENTS.jsonl\n";
    return 2;
  }
  try {
    std::ifstream in(argv[1]);
    const json script = json::parse(in);
    std::vector<std::pair<std::string, torch::Tensor>> params;
    for (const json& p : script.at("parameters"))
      params.emplace_back(p.at("name").get<std::string>(), tensor_of(p.at("value"), p.at("shape")).requires_grad_());
    const std::vector<std::shared_ptr<simic::sink>> sinks{std::make_shared<simic::jsonl_sink>(argv[2])};
    const simic::session_options o{};
    const std::string preset = script.at("preset");
    if (preset == "supervised") {
      simic::supervised_session<> s(o, params, sinks);
      play<false>(s, params, script.at("calls"));
    } else if (preset == "ppo") {
      simic::ppo_session<> s(o, params, sinks);
      play<true>(s, params, script.at("calls"));
    } else if (preset == "ppo_feedforward") {
      simic::ppo_feedforward_session<> s(o, params, sinks);
      play<false>(s, params, script.at("calls"));
    } else if (preset == "reference") {
      simic::ppo_sensor_session<simic::reference_monitor> s(simic::make_reference_monitor(), o, params, sinks);
      play<true>(s, params, script.at("calls"));
    } else {
      throw std::invalid_argument("events_replay: unknown preset '" + preset + "'");
    }
  } catch (const std::exception& e) {
    std::cerr << "events_replay: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
