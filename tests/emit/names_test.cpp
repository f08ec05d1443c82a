// Names as the sinks write them (emit/names.hpp): invalid UTF-8 replaced,
// and repeated metric names kept apart by "#k", alike in JSONL and
// TensorBoard.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "simic/emit/events.hpp"
#include "simic/emit/json.hpp"
#include "simic/emit/names.hpp"
#include "simic/emit/sink_tensorboard.hpp"
#include "simic/profile/phase_timer.hpp"

using namespace simic;

namespace {
std::string names_from_hex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

// A user payload that names a field twice and builds a scalar's tag from raw bytes.
struct twice_payload {
  static constexpr std::string_view name = "twice";
  void describe(field_writer& w) const {
    w.real("x", 1.0, "g");
    w.real("x", 2.0, "g");
    if (w.scalars()) w.scalar("raw/\xff", 3.0);
  }
};

std::vector<std::pair<std::string, double>> names_scalars(const event& e) {
  tensorboard_tally tally;
  std::vector<std::pair<std::string, double>> out;
  for (const auto& s : tensorboard_scalars(e, tally)) out.emplace_back(s.tag, s.value);
  return out;
}
}  // namespace

TEST_CASE("utf8_replaced replaces maximal subparts as Python's bytes.decode('utf-8', 'replace')") {
  // {input, expected} as hex; expected = input.decode("utf-8", "replace").encode() in Python 3
  const std::pair<const char*, const char*> python[] = {
      {"706c61696e", "706c61696e"},
      {"", ""},
      {"ff", "efbfbd"},
      {"61ff62", "61efbfbd62"},
      {"c080", "efbfbdefbfbd"},                    // overlong: 2 subparts
      {"e282", "efbfbd"},                          // truncated sequence: 1 subpart
      {"e28241", "efbfbd41"},                      // the byte that breaks it is read again
      {"e282ac", "e282ac"},                        // U+20AC
      {"eda080", "efbfbdefbfbdefbfbd"},            // a surrogate
      {"f09f98", "efbfbd"},
      {"f09f9880", "f09f9880"},                    // U+1F600
      {"f4908080", "efbfbdefbfbdefbfbdefbfbd"},    // past U+10FFFF
      {"f580", "efbfbdefbfbd"},
      {"808080", "efbfbdefbfbdefbfbd"},
      {"e08080", "efbfbdefbfbdefbfbd"},
      {"e0a080", "e0a080"},
      {"f0808080", "efbfbdefbfbdefbfbdefbfbd"},
      {"c2", "efbfbd"},
      {"c2a9", "c2a9"},
      {"6c61796572e92e776569676874", "6c61796572efbfbd2e776569676874"},  // "layer\xe9.weight" (Latin-1)
      {"efbfbd", "efbfbd"},
  };
  for (const auto& [in, want] : python) {
    CAPTURE(in);
    const std::string out = utf8_replaced(names_from_hex(in));
    CHECK(out == names_from_hex(want));
    CHECK(valid_utf8(out));
    CHECK(utf8_replaced(out) == out);
    CHECK(valid_utf8(names_from_hex(in)) == (std::string_view(in) == want));
  }
}

TEST_CASE("utf8_replaced agrees with nlohmann-json's replacement on random bytes") {
  // nlohmann's serializer (error_handler_t::replace) is an independent
  // implementation; bytes it would escape (controls, '"', '\\') are left out.
  std::mt19937 rng(7);
  std::vector<unsigned char> pool;
  for (int b = 0x20; b < 0x100; ++b)
    if (b != '"' && b != '\\') pool.push_back(static_cast<unsigned char>(b));
  for (const unsigned char b : {0xC2, 0xE0, 0xE2, 0xED, 0xEF, 0xF0, 0xF4, 0x80, 0xBF, 0xA0, 0x9F, 0x8F, 0x90})
    for (int k = 0; k < 6; ++k) pool.push_back(b);  // lead and continuation bytes more often
  std::size_t invalid = 0;
  for (int n = 0; n < 20000; ++n) {
    std::string s(rng() % 12, ' ');
    for (char& c : s) c = static_cast<char>(pool[rng() % pool.size()]);
    const std::string dumped = nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    REQUIRE(dumped.size() >= 2);
    CAPTURE(s);
    CHECK(utf8_replaced(s) == dumped.substr(1, dumped.size() - 2));
    invalid += valid_utf8(s) ? 0 : 1;
  }
  CHECK(invalid > 10000);  // most were invalid: the replacement was exercised
}

TEST_CASE("unique_metric_names: a repeated name gets #k, the smallest not another name of the list") {
  using v = std::vector<std::string>;
  auto names = [](std::vector<std::string_view> raw) { return unique_metric_names(raw); };
  CHECK(names({}) == v{});
  CHECK(names({"a", "b"}) == v{"a", "b"});
  CHECK(names({"x", "x"}) == v{"x", "x#2"});
  CHECK(names({"x", "x", "x#2", "x"}) == v{"x", "x#3", "x#2", "x#4"});  // "x#2" is the list's own
  CHECK(names({"x#2", "x", "x"}) == v{"x#2", "x", "x#3"});
  CHECK(names({"a\xff", "a\xfe"}) == v{"a\xEF\xBF\xBD", "a\xEF\xBF\xBD#2"});  // equal after the replacement
  CHECK(names({"", ""}) == v{"", "#2"});
}

TEST_CASE("repeated metric names: JSONL and TensorBoard both keep every value, under the same names") {
  update_metrics u;
  u.loss = 0.5;
  u.extra = {{"x", 1.0}, {"x", 2.0}, {"x#2", 3.0}, {"x", 4.0}, {"bad\xff", 5.0}, {"bad\xfe", 6.0}};
  const event e(3, 1, u);
  const nlohmann::ordered_json j = nlohmann::ordered_json::parse(to_json_line(e));
  const std::vector<std::pair<std::string, double>> want = {
      {"x", 1.0}, {"x#3", 2.0}, {"x#2", 3.0}, {"x#4", 4.0}, {"bad\xEF\xBF\xBD", 5.0}, {"bad\xEF\xBF\xBD#2", 6.0}};
  std::vector<std::pair<std::string, double>> jsonl;
  for (auto it = j["extra"].begin(); it != j["extra"].end(); ++it) jsonl.emplace_back(it.key(), it.value().get<double>());
  CHECK(jsonl == want);
  std::vector<std::pair<std::string, double>> tb;
  for (const auto& [tag, value] : names_scalars(e))
    if (tag != "update/loss") tb.emplace_back(tag.substr(std::string("update/").size()), value);
  CHECK(tb == want);

  epoch_summary s;
  s.metrics = {{"acc", 0.9}, {"acc", 0.8}};
  const nlohmann::json k = nlohmann::json::parse(to_json_line(event(3, 1, s)));
  CHECK(k["metrics"] == nlohmann::json::parse(R"({"acc": 0.9, "acc#2": 0.8})"));
  std::vector<std::string> epoch_tags;
  for (const auto& [tag, value] : names_scalars(event(3, 1, s)))
    if (tag.rfind("epoch/acc", 0) == 0) epoch_tags.push_back(tag);
  CHECK(epoch_tags == std::vector<std::string>{"epoch/acc", "epoch/acc#2"});
}

TEST_CASE("a field named twice by a payload is kept as #2 in JSONL, not overwritten; every tag is valid UTF-8") {
  const event e(1, 0, twice_payload{});
  const nlohmann::ordered_json j = nlohmann::ordered_json::parse(to_json_line(e));
  CHECK(j["x"] == 1.0);
  CHECK(j["x#2"] == 2.0);
  const auto tb = names_scalars(e);
  REQUIRE(tb.size() == 3);
  CHECK(tb[0] == std::pair<std::string, double>{"g/x", 1.0});  // TensorBoard keeps both values of a tag
  CHECK(tb[1] == std::pair<std::string, double>{"g/x", 2.0});
  CHECK(tb[2] == std::pair<std::string, double>{"raw/\xEF\xBF\xBD", 3.0});
}

TEST_CASE("phase names equal after the replacement: both phases kept, named alike in JSONL and TensorBoard") {
  phase_timings_event p;
  p.phases = {{"roll\xff", 2, 1.0, 0.25, 0.75}, {"roll\xfe", 1, 3.0, 3.0, 3.0}};
  const event e(4, 0, p);
  const nlohmann::ordered_json j = nlohmann::ordered_json::parse(to_json_line(e));
  std::vector<std::string> keys;
  for (auto it = j["phases"].begin(); it != j["phases"].end(); ++it) keys.push_back(it.key());
  const std::string r = "roll\xEF\xBF\xBD";
  CHECK(keys == std::vector<std::string>{r, r + "#2"});
  CHECK(j["phases"][r + "#2"]["total_s"] == 3.0);
  std::vector<std::string> tags;
  for (const auto& [tag, value] : names_scalars(e)) tags.push_back(tag);
  CHECK(tags == std::vector<std::string>{"phases/" + r + "/total_s", "phases/" + r + "/mean_s",
                                         "phases/" + r + "#2/total_s", "phases/" + r + "#2/mean_s"});
}
