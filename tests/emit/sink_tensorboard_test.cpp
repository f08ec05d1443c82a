// The TensorBoard sink against references of the test's own: a bitwise
// CRC-32C, a protobuf decoder and the tag table of docs/events.md written out
// by hand. TensorBoard itself reads a trainer's file back in
// tests/examples/tensorboard_readback_test.py.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "support/file_size_limit.hpp"
#include "support/temp_dir.hpp"
#include "simic/emit/hub.hpp"
#include "simic/emit/names.hpp"
#include "simic/emit/sink_jsonl.hpp"
#include "simic/emit/sink_tensorboard.hpp"
#include "simic/profile/phase_timer.hpp"

using namespace simic;
namespace fs = std::filesystem;

namespace {

const simic::test::remove_at_exit tensorboard_cleanup{"tensorboard"};
fs::path tensorboard_dir(const std::string& name) { return simic::test::fresh_dir("tensorboard", name); }

using simic::test::read_file;

// CRC-32C bit by bit, straight from the polynomial (no table).
std::uint32_t crc32c_bitwise(std::string_view s) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (unsigned char byte : s) {
    c ^= byte;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}
std::uint32_t masked(std::uint32_t c) { return ((c >> 15) | (c << 17)) + 0xA282EAD8u; }

template <class T>
T read_le(std::string_view s, std::size_t at) {
  T v{};
  REQUIRE(at + sizeof(T) <= s.size());
  std::memcpy(&v, s.data() + at, sizeof(T));
  return v;
}

// The records of a tfevents file, each CRC checked against the bitwise CRC.
std::vector<std::string> records(std::string_view file) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < file.size()) {
    const auto len = read_le<std::uint64_t>(file, at);
    CHECK(read_le<std::uint32_t>(file, at + 8) == masked(crc32c_bitwise(file.substr(at, 8))));
    REQUIRE(at + 12 + len + 4 <= file.size());
    const std::string_view data = file.substr(at + 12, len);
    CHECK(read_le<std::uint32_t>(file, at + 12 + len) == masked(crc32c_bitwise(data)));
    out.emplace_back(data);
    at += 12 + len + 4;
  }
  return out;
}

// A protobuf decoder for the fields an Event uses.
struct wire_reader {
  std::string_view s;
  std::size_t at = 0;
  bool done() const { return at >= s.size(); }
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      REQUIRE(at < s.size());
      REQUIRE(shift < 64);
      const auto b = static_cast<unsigned char>(s[at++]);
      v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
  }
  std::string_view bytes() {
    const auto n = varint();
    REQUIRE(at + n <= s.size());
    const std::string_view b = s.substr(at, n);
    at += n;
    return b;
  }
  template <class T>
  T fixed() {
    const T v = read_le<T>(s, at);
    at += sizeof(T);
    return v;
  }
};

struct decoded_value {
  std::string tag;
  float value = 0;
};
struct decoded_event {
  double wall_time = -1;
  std::int64_t step = 0;
  std::string file_version;
  std::vector<decoded_value> values;
  bool has_summary = false;
};

decoded_event decode(std::string_view data) {
  decoded_event e;
  wire_reader r{data};
  while (!r.done()) {
    const auto key = r.varint();
    switch (key) {
      case (1 << 3) | 1: e.wall_time = r.fixed<double>(); break;
      case (2 << 3) | 0: e.step = static_cast<std::int64_t>(r.varint()); break;
      case (3 << 3) | 2: e.file_version = std::string(r.bytes()); break;
      case (5 << 3) | 2: {
        e.has_summary = true;
        wire_reader summary{r.bytes()};
        while (!summary.done()) {
          REQUIRE(summary.varint() == ((1 << 3) | 2));
          wire_reader value{summary.bytes()};
          decoded_value v;
          while (!value.done()) {
            const auto k = value.varint();
            if (k == ((1 << 3) | 2)) v.tag = std::string(value.bytes());
            else if (k == ((2 << 3) | 5)) v.value = value.fixed<float>();
            else FAIL("unexpected field in Summary.Value: " << k);
          }
          e.values.push_back(v);
        }
        break;
      }
      default: FAIL("unexpected field in Event: " << key);
    }
  }
  return e;
}

std::vector<std::string> tags_of(const std::vector<tensorboard_scalar>& s) {
  std::vector<std::string> t;
  for (const auto& x : s) t.push_back(x.tag);
  return t;
}

anomaly_event an_anomaly(anomaly_kind k, level after = level::debug) {
  anomaly_event a;
  a.kind = k;
  a.level_after = after;
  return a;
}

}  // namespace

TEST_CASE("CRC-32C: the check value, the empty string, and the bitwise reference on random data") {
  CHECK(crc32c(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>("123456789"), 9)) == 0xE3069283u);
  CHECK(crc32c({}) == 0u);
  std::mt19937 rng(7);
  for (int n : {1, 2, 7, 64, 1000}) {
    std::string s(static_cast<std::size_t>(n), '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    CHECK(crc32c({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}) == crc32c_bitwise(s));
    CHECK(tfrecord_masked_crc(s) == masked(crc32c_bitwise(s)));
  }
}

TEST_CASE("a TFRecord frames its data: length, masked CRC of the length, data, masked CRC of the data") {
  for (const std::string& data : {std::string{}, std::string("x"), std::string(300, 'a')}) {
    const std::string r = tfrecord(data);
    REQUIRE(r.size() == data.size() + 16);
    const auto rs = records(r);
    REQUIRE(rs.size() == 1);
    CHECK(rs[0] == data);
  }
}

TEST_CASE("the Event encoding decodes to its wall time, step and values; float32 values; step 0 left out") {
  const decoded_event e = decode(tensorboard_event_proto(1795803557.438894, 42, {{"a/b", 0.1}, {"c", -3e40}}));
  CHECK(e.wall_time == 1795803557.438894);
  CHECK(e.step == 42);
  REQUIRE(e.values.size() == 2);
  CHECK(e.values[0].tag == "a/b");
  CHECK(e.values[0].value == 0.1f);
  CHECK(e.values[1].value == -std::numeric_limits<float>::infinity());  // beyond float32: -inf, as IEEE rounding gives
  // Rounding at the top of float's range: FLT_MAX + 2^103 is the halfway point to the next power (2^128).
  const double fmax = std::numeric_limits<float>::max();
  const float inf = std::numeric_limits<float>::infinity();
  const decoded_event edge = decode(tensorboard_event_proto(
      0.0, 1, {{"a", fmax}, {"b", fmax + 0x1p102}, {"c", fmax + 0x1p103}, {"d", -fmax - 0x1p102}, {"e", 1e300}, {"f", -1e300},
               {"g", std::numeric_limits<double>::infinity()}, {"h", 1e-50}}));
  REQUIRE(edge.values.size() == 8);
  CHECK(edge.values[0].value == std::numeric_limits<float>::max());
  CHECK(edge.values[1].value == std::numeric_limits<float>::max());  // below halfway: rounds down
  CHECK(edge.values[2].value == inf);                                 // halfway: to even, the infinity
  CHECK(edge.values[3].value == -std::numeric_limits<float>::max());
  CHECK(edge.values[4].value == inf);
  CHECK(edge.values[5].value == -inf);
  CHECK(edge.values[6].value == inf);
  CHECK(edge.values[7].value == 0.0f);
  // Varints past one byte, past 32 bits and at the int64 limit.
  for (std::int64_t step : {std::int64_t{0}, std::int64_t{127}, std::int64_t{128}, std::int64_t{1} << 40, INT64_MAX}) {
    const std::string p = tensorboard_event_proto(1.0, step, {{"t", 1.0}});
    CHECK(decode(p).step == step);
    CHECK((p.find(char(2 << 3)) != std::string::npos) == (step != 0));
  }
  const decoded_event nan = decode(tensorboard_event_proto(0.0, 1, {{"n", std::nan("")}}));
  CHECK(std::isnan(nan.values.at(0).value));
  const decoded_event v = decode(tensorboard_file_version_proto(12.5));
  CHECK(v.file_version == "brain.Event:2");
  CHECK(v.wall_time == 12.5);
  CHECK_FALSE(v.has_summary);
}

TEST_CASE("each event gives the tags of the table in docs/events.md") {
  tensorboard_tally t;
  update_metrics u;
  u.loss = 1.5;
  u.approx_kl = 0.02;
  u.ratio_max = 1.3;
  u.extra = {{"skipped_step", 1.0}};
  const auto us = tensorboard_scalars(event(3, 1, u), t);
  CHECK(tags_of(us) == std::vector<std::string>{"update/loss", "update/approx_kl", "update/ratio_max", "update/skipped_step"});
  CHECK(us[0].value == 1.5);
  CHECK(us[3].value == 1.0);

  epoch_summary es;
  es.performance = 250.0;
  es.updates = 8;
  es.anomalies = 2;
  es.level_after = level::debug;
  es.metrics = {{"val_acc", 0.9}};
  const auto ess = tensorboard_scalars(event(3, 1, es), t);
  CHECK(tags_of(ess) == std::vector<std::string>{"epoch/performance", "epoch/updates", "epoch/anomalies", "telemetry/level", "epoch/val_acc"});
  CHECK(ess[3].value == 3.0);  // DEBUG
  es.performance.reset();
  CHECK(tensorboard_scalars(event(3, 1, es), t).front().tag == "epoch/updates");

  CHECK(tensorboard_scalars(event(3, 1, escalation_start_event{.from = level::normal, .to = level::debug}), t) ==
        std::vector<tensorboard_scalar>{{"telemetry/level", 3.0}});
  CHECK(tensorboard_scalars(event(3, 1, escalation_end_event{.from = level::debug, .to = level::normal}), t) ==
        std::vector<tensorboard_scalar>{{"telemetry/level", 2.0}});
  CHECK(tensorboard_scalars(event(3, 1, anomaly_clear_event{}), t).empty());

  response_event stop{.act = action::stop, .reason = "x", .consecutive_skips = 2, .total_skips = 5};
  CHECK(tensorboard_scalars(event(3, 1, stop), t) ==
        std::vector<tensorboard_scalar>{{"response/total_skips", 5}, {"response/consecutive_skips", 2}, {"response/stop", 1}});
  response_event skip{.act = action::skip_step, .reason = "x", .consecutive_skips = 1, .total_skips = 1};
  CHECK(tensorboard_scalars(event(3, 1, skip), t).size() == 2);

  CHECK(t.counts.empty());  // no anomaly counted
}

TEST_CASE("anomaly counts by kind accumulate over the events, with the total and the level") {
  tensorboard_tally t;
  CHECK(tensorboard_scalars(event(1, 1, an_anomaly(anomaly_kind::kl_spike)), t) ==
        std::vector<tensorboard_scalar>{{"anomalies/kl_spike", 1}, {"anomalies/total", 1}, {"telemetry/level", 3}});
  CHECK(tensorboard_scalars(event(2, 1, an_anomaly(anomaly_kind::ratio_explosion)), t).front() ==
        tensorboard_scalar{"anomalies/ratio_explosion", 1});
  const auto third = tensorboard_scalars(event(3, 1, an_anomaly(anomaly_kind::kl_spike, level::normal)), t);
  CHECK(third == std::vector<tensorboard_scalar>{{"anomalies/kl_spike", 2}, {"anomalies/total", 3}, {"telemetry/level", 2}});
  CHECK(t.counts.size() == 3);  // two kinds and the total
}

TEST_CASE("the sink writes a version record, one record per event with scalars, and the hub's counts last") {
  const fs::path dir = tensorboard_dir("sink");
  std::string file;
  {
    hub h;
    auto s = std::make_shared<tensorboard_sink>(dir);
    file = s->path().string();
    h.add_sink(s);
    update_metrics u;
    u.loss = 0.25;
    const auto t0 = event::clock::time_point(std::chrono::microseconds(1795803557438894));
    h.emit(event(1, 1, u, t0));
    h.emit(event(1, 1, anomaly_clear_event{}));  // no scalars: no record
    h.emit(event(2, 1, an_anomaly(anomaly_kind::kl_spike)));
    h.emit(event(7, 2, an_anomaly(anomaly_kind::kl_spike)));
    h.close();
    CHECK(s->events_written() == 3);
    CHECK(s->scalars_written() == 1 + 3 + 3 + 5);
  }
  CHECK(fs::path(file).parent_path() == dir);
  CHECK(fs::path(file).filename().string().rfind("events.out.tfevents.", 0) == 0);
  const auto rs = records(read_file(file));
  REQUIRE(rs.size() == 5);
  CHECK(decode(rs[0]).file_version == "brain.Event:2");
  const decoded_event first = decode(rs[1]);
  CHECK(first.wall_time == 1795803557.438894);
  CHECK(first.step == 1);
  REQUIRE(first.values.size() == 1);
  CHECK(first.values[0].tag == "update/loss");
  CHECK(first.values[0].value == 0.25f);
  CHECK(decode(rs[3]).step == 7);
  CHECK(decode(rs[3]).values.at(0).value == 2.0f);  // the second kl_spike
  const decoded_event last = decode(rs[4]);
  CHECK(last.step == 7);  // the last event's update
  REQUIRE(last.values.size() == 5);
  CHECK(last.values[0].tag == "hub/emitted");
  CHECK(last.values[0].value == 4.0f);
  CHECK(last.values[1].value == 4.0f);  // delivered
}

TEST_CASE("two sinks in one directory write two files") {
  const fs::path dir = tensorboard_dir("two");
  tensorboard_sink a(dir), b(dir, {.filename_suffix = ".rank1"});
  CHECK(a.path() != b.path());
  CHECK(b.path().string().ends_with(".rank1"));
  CHECK(records(read_file(a.path())).size() == 1);
}

TEST_CASE("bad log directories are refused with the argument named") {
  CHECK_THROWS_WITH_AS(tensorboard_sink(fs::path{}), doctest::Contains("log_dir is empty"), std::invalid_argument);
  const fs::path dir = tensorboard_dir("bad");
  fs::create_directories(dir);
  std::ofstream(dir / "plain") << "x";
  try {
    tensorboard_sink s(dir / "plain" / "sub");
    FAIL("a directory under a regular file was accepted");
  } catch (const std::system_error& e) {
    CHECK(std::string(e.what()).find((dir / "plain").string()) != std::string::npos);
  }
}

TEST_CASE("a write that fails leaves no torn record and no count of it") {
  // RLIMIT_FSIZE stops the write part way; in a child, so the limit does not
  // touch the test process.
  const fs::path dir = tensorboard_dir("fsize");
  fs::create_directories(dir);
  const int code = simic::test::exit_code_with_file_size_limit(4'000, [&] {
    tensorboard_sink s(dir);
    update_metrics big;
    for (int i = 0; i < 80; ++i) big.extra.push_back({"layer" + std::to_string(i), 1.0});
    int failures = 0;
    for (int i = 0; i < 10; ++i) {
      try {
        const auto u = static_cast<std::uint64_t>(i);
        if (i % 2) s.write(event(u, 0, big));
        else s.write(event(u, 0, an_anomaly(anomaly_kind::kl_spike)));
      } catch (const std::system_error&) {
        ++failures;
      }
    }
    return failures > 0 && s.events_written() == 10u - static_cast<unsigned>(failures) ? 0 : 12;
  });
  CHECK(code == 0);
  fs::path file;
  for (const auto& e : fs::directory_iterator(dir)) file = e.path();
  const std::string text = read_file(file);
  CHECK(text.size() <= 4'000);
  const auto rs = records(text);  // every record whole, every CRC right
  // The anomaly counts go up by one per record written: a failed write did not count.
  float expected = 0;
  for (std::size_t i = 1; i < rs.size(); ++i) {
    const decoded_event e = decode(rs[i]);
    if (e.values.at(0).tag == "anomalies/kl_spike") CHECK(e.values[0].value == ++expected);
  }
  CHECK(expected >= 1);
}

TEST_CASE("names with invalid UTF-8: the file's tags are valid, replaced as the JSONL sink replaces them") {
  // One hub, both sinks: every update/ tag of the TensorBoard file is
  // "update/" + a key of the JSONL line's "extra", and every tag is valid
  // UTF-8 (TensorBoard's readers stop at the first record that is not).
  const fs::path dir = tensorboard_dir("utf8");
  const fs::path jsonl = dir / "events.jsonl";
  std::string file;
  {
    hub h;
    auto tb = std::make_shared<tensorboard_sink>(dir);
    file = tb->path().string();
    h.add_sink(tb);
    h.add_sink(std::make_shared<jsonl_sink>(jsonl));
    update_metrics u;
    u.extra = {{"layer\xe9.weight", 1.0}, {"ok", 2.0}, {"\xc0\x80", 3.0}, {"ok", 4.0}, {"\xed\xa0\x80", 5.0}};
    h.emit(event(1, 0, u));
    phase_timings_event p;
    p.phases = {{"roll\xff", 1, 1.0, 1.0, 1.0}};
    h.emit(event(2, 0, p));
    update_metrics after;
    after.loss = 0.5;
    h.emit(event(3, 0, after));  // a record after the bad names: read back
    h.close();
  }
  std::vector<std::string> jsonl_lines;
  {
    std::ifstream in(jsonl);
    for (std::string line; std::getline(in, line);) jsonl_lines.push_back(line);
  }
  REQUIRE(jsonl_lines.size() == 4);
  const auto extra = nlohmann::ordered_json::parse(jsonl_lines[0])["extra"];
  std::vector<std::string> from_jsonl;
  for (auto it = extra.begin(); it != extra.end(); ++it) from_jsonl.push_back("update/" + it.key());
  const std::string r = "\xEF\xBF\xBD";
  CHECK(from_jsonl == std::vector<std::string>{"update/layer" + r + ".weight", "update/ok", "update/" + r + r,
                                               "update/ok#2", "update/" + r + r + r});
  const auto rs = records(read_file(file));
  REQUIRE(rs.size() == 5);  // version, 3 events, hub counts
  std::vector<std::string> update_tags;
  for (const auto& v : decode(rs[1]).values) update_tags.push_back(v.tag);
  CHECK(update_tags == from_jsonl);
  std::vector<std::string> phase_tags;
  for (const auto& v : decode(rs[2]).values) phase_tags.push_back(v.tag);
  CHECK(phase_tags == std::vector<std::string>{"phases/roll" + r + "/total_s", "phases/roll" + r + "/mean_s"});
  CHECK(nlohmann::json::parse(jsonl_lines[1])["phases"].contains("roll" + r));
  for (const auto& rec : rs)
    for (const auto& v : decode(rec).values) {
      CAPTURE(v.tag);
      CHECK(valid_utf8(v.tag));
    }
  CHECK(decode(rs[3]).values.at(0).tag == "update/loss");
}
