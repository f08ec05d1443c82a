#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "support/file_size_limit.hpp"
#include "support/temp_dir.hpp"
#include "simic/emit/hub.hpp"
#include "simic/emit/sink_callback.hpp"
#include "simic/emit/sink_jsonl.hpp"

using namespace simic;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const simic::test::remove_at_exit cleanup{"emit"};
fs::path fresh_dir(const std::string& name) { return simic::test::fresh_dir("emit", name); }

using simic::test::read_file;

struct parsed_file {
  std::vector<json> lines;  // complete lines, parsed
  bool all_complete_valid = true;
  std::string partial;      // text after the last newline (not counted)
};

// Splits on '\n'. Every newline-terminated line must parse; what follows the
// last newline is a partial line and is not counted.
parsed_file parse_jsonl(const std::string& text) {
  parsed_file out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t nl = text.find('\n', start);
    if (nl == std::string::npos) {
      out.partial = text.substr(start);
      break;
    }
    try {
      out.lines.push_back(json::parse(text.substr(start, nl - start)));
    } catch (const json::exception&) {
      out.all_complete_valid = false;
    }
    start = nl + 1;
  }
  return out;
}

// A payload large enough that a line spans many bytes, so a kill lands inside one.
update_metrics big_payload() {
  update_metrics p;
  for (int i = 0; i < 400; ++i) p.extra.push_back({"metric_of_layer_" + std::to_string(i) + ".weight", 0.1 * i});
  return p;
}

}  // namespace

TEST_CASE("every line parses; the last line is hub_stats with the hub's counts") {
  const fs::path file = fresh_dir("basic") / "sub" / "events.jsonl";
  {
    hub h({.context = {.run_id = "r"}});
    auto s = std::make_shared<jsonl_sink>(file);
    CHECK(s->name() == "jsonl:" + file.string());
    h.add_sink(s);
    for (std::uint64_t i = 0; i < 50; ++i) h.emit(i, i / 10, update_metrics{.loss = 1.0 / (1.0 + i)});
    h.emit(50, 5, anomaly_event{.kind = anomaly_kind::entropy_low, .detail = "0.2 < 0.3", .level_after = level::debug});
    h.close();
    CHECK(s->lines_written() == 52);
  }
  const std::string text = read_file(file);
  const parsed_file pf = parse_jsonl(text);
  CHECK(pf.all_complete_valid);
  CHECK(pf.partial.empty());
  REQUIRE(pf.lines.size() == 52);
  for (std::size_t i = 0; i < 50; ++i) {
    CHECK(pf.lines[i]["event"] == "update");
    CHECK(pf.lines[i]["update"] == i);
    CHECK(pf.lines[i]["epoch"] == i / 10);
    CHECK(pf.lines[i]["run_id"] == "r");
    CHECK(pf.lines[i]["loss"].get<double>() == 1.0 / (1.0 + static_cast<double>(i)));
    CHECK(pf.lines[i].contains("time"));
  }
  CHECK(pf.lines[50]["anomaly"] == "entropy_low");
  CHECK(pf.lines[50]["detail"] == "0.2 < 0.3");
  CHECK(pf.lines[50]["level_after"] == "DEBUG");
  const json& last = pf.lines.back();
  CHECK(last["event"] == "hub_stats");
  CHECK(last["emitted"] == 51);
  CHECK(last["delivered"] == 51);
  CHECK(last["dropped"] == 0);
  CHECK(last["failed"] == 0);
  CHECK(last["update"] == 50);
  CHECK(last["epoch"] == 5);
}

TEST_CASE("truncate by default, append on request") {
  const fs::path file = fresh_dir("append") / "e.jsonl";
  {
    jsonl_sink s(file);
    s.write(event(1, 0, update_metrics{}));
    s.write(event(2, 0, update_metrics{}));
  }
  {
    jsonl_sink s(file, {.append = true});
    s.write(event(3, 0, update_metrics{}));
  }
  parsed_file pf = parse_jsonl(read_file(file));
  REQUIRE(pf.lines.size() == 3);
  CHECK(pf.lines[2]["update"] == 3);
  {
    jsonl_sink s(file);
    s.write(event(4, 0, update_metrics{}));
  }
  pf = parse_jsonl(read_file(file));
  REQUIRE(pf.lines.size() == 1);
  CHECK(pf.lines[0]["update"] == 4);
}

TEST_CASE("a file that cannot be opened is an error naming the path") {
  const fs::path dir = fresh_dir("unopenable");
  fs::create_directories(dir);
  CHECK_THROWS_WITH_AS(jsonl_sink{dir}, doctest::Contains(dir.c_str()), std::system_error);  // a directory
  CHECK_THROWS_WITH_AS(jsonl_sink{fs::path{}}, doctest::Contains("path"), std::invalid_argument);
}

TEST_CASE("a process killed with SIGKILL mid-run leaves only complete valid lines, but for a partial last one") {
  const fs::path file = fresh_dir("kill") / "events.jsonl";
  fs::create_directories(file.parent_path());
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The child emits forever (block: no gaps, so the lines can be checked for order).
    try {
      hub h({.capacity = 64, .overflow = overflow_policy::block});
      h.add_sink(std::make_shared<jsonl_sink>(file));
      const update_metrics payload = big_payload();
      for (std::uint64_t i = 0;; ++i) h.emit(i, 0, payload);
    } catch (...) {
    }
    ::_exit(3);
  }
  // Wait until the child has written a good number of lines, then kill it.
  bool grown = false;
  for (int i = 0; i < 30000 && !grown; ++i) {
    std::error_code ec;
    grown = fs::file_size(file, ec) > 2'000'000 && !ec;
    if (!grown) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(grown);
  REQUIRE(::kill(child, SIGKILL) == 0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);

  const std::string text = read_file(file);
  const parsed_file pf = parse_jsonl(text);
  CHECK(pf.all_complete_valid);
  REQUIRE(pf.lines.size() > 10);
  // Complete lines are the events 0, 1, 2, ... in order; no hub_stats (never closed).
  bool in_order = true;
  for (std::size_t i = 0; i < pf.lines.size(); ++i)
    if (pf.lines[i]["update"] != i || pf.lines[i]["extra"].size() != 400) in_order = false;
  CHECK(in_order);
  CHECK(pf.lines.back()["event"] == "update");
  // A partial last line, if any, is not valid JSON on its own and was not counted.
  if (!pf.partial.empty()) CHECK_FALSE(json::accept(pf.partial));
  MESSAGE("complete lines: " << pf.lines.size() << ", partial tail bytes: " << pf.partial.size());
}

TEST_CASE("a write that fails part way is cut back off, so no later line is glued to a torn one") {
  // RLIMIT_FSIZE makes write(2) stop part way (then fail with EFBIG); done in a
  // child so the limit does not touch the test process.
  const fs::path file = fresh_dir("fsize") / "events.jsonl";
  fs::create_directories(file.parent_path());
  const int code = simic::test::exit_code_with_file_size_limit(50'000, [&] {
    jsonl_sink s(file);
    const update_metrics payload = big_payload();  // ~12 KB per line
    int failures = 0;
    for (std::uint64_t i = 0; i < 20; ++i) {
      try {
        s.write(event(i, 0, payload));
      } catch (const std::system_error&) {
        ++failures;
      }
    }
    return failures > 0 ? 0 : 12;
  });
  CHECK(code == 0);
  const std::string text = read_file(file);
  CHECK(text.size() <= 50'000);
  const parsed_file pf = parse_jsonl(text);
  CHECK(pf.all_complete_valid);
  CHECK(pf.partial.empty());
  CHECK(pf.lines.size() >= 1);
  for (std::size_t i = 0; i < pf.lines.size(); ++i) CHECK(pf.lines[i]["update"] == i);
}

TEST_CASE("a failing file sink is reported through the hub with its exception type") {
  const fs::path file = fresh_dir("full") / "events.jsonl";
  fs::create_directories(file.parent_path());
  const int code = simic::test::exit_code_with_file_size_limit(5'000, [&] {
    std::vector<sink_error> reports;
    hub_counts c;
    {
      hub h;
      h.set_error_handler([&](const sink_error& e) { reports.push_back(e); });
      h.add_sink(std::make_shared<jsonl_sink>(file));
      const update_metrics payload = big_payload();
      for (std::uint64_t i = 0; i < 10; ++i) h.emit(i, 0, payload);
      h.close();
      c = h.counts();
    }
    const bool ok = !reports.empty() && reports[0].exception_type == "std::system_error" &&
                    reports[0].sink == "jsonl:" + file.string() && c.failed >= 8 && c.delivered == 10;
    return ok ? 0 : 20;
  });
  CHECK(code == 0);
}

TEST_CASE("drops and sink failures are in the file's last line") {
  const fs::path file = fresh_dir("counted") / "events.jsonl";
  hub_counts final_counts;
  {
    hub h({.capacity = 2});
    h.set_error_handler([](const sink_error&) {});
    std::mutex gate;
    gate.lock();
    std::atomic<bool> inside{false};
    // Blocks on the first event so that the queue overflows; throws on update 1.
    h.add_sink(std::make_shared<callback_sink>([&](const event& e) {
      if (e.update() == 0) {
        inside = true;
        std::lock_guard l(gate);
      }
      if (e.update() == 1) throw std::runtime_error("bad event");
    }));
    auto s = std::make_shared<jsonl_sink>(file);
    h.add_sink(s);
    h.emit(0, 0, update_metrics{});
    while (!inside) std::this_thread::yield();
    for (std::uint64_t i = 1; i <= 6; ++i) h.emit(i, 0, update_metrics{});  // 1, 2 queued; 3..6 dropped
    gate.unlock();
    h.close();
    final_counts = h.counts();
  }
  CHECK(final_counts == hub_counts{.emitted = 7, .delivered = 3, .dropped = 4, .failed = 1});
  const parsed_file pf = parse_jsonl(read_file(file));
  CHECK(pf.all_complete_valid);
  REQUIRE(pf.lines.size() == 4);
  CHECK(pf.lines[0]["update"] == 0);
  CHECK(pf.lines[1]["update"] == 1);  // the other sink's failure does not stop this one
  CHECK(pf.lines[2]["update"] == 2);
  const json& last = pf.lines[3];
  CHECK(last["event"] == "hub_stats");
  CHECK(last["emitted"] == 7);
  CHECK(last["delivered"] == 3);
  CHECK(last["dropped"] == 4);
  CHECK(last["failed"] == 1);
  CHECK(last["update"] == 2);
}

TEST_CASE("an existing file is kept until the first line: opening alone, or a sink dropped unused, changes nothing") {
  const fs::path file = fresh_dir("keep") / "events.jsonl";
  fs::create_directories(file.parent_path());
  const std::string old = "{\"event\":\"update\",\"update\":7}\nnot json, but the user's\n";
  {
    std::ofstream(file) << old;
  }
  { jsonl_sink s(file); }  // a run that failed after opening its sink, before any event
  CHECK(read_file(file) == old);
  {
    jsonl_sink s(file);
    s.write(event(1, 0, update_metrics{}));  // the first line replaces the old content
    CHECK(s.events_written() == 1);
  }
  const parsed_file pf = parse_jsonl(read_file(file));
  CHECK(pf.all_complete_valid);
  REQUIRE(pf.lines.size() == 1);
  CHECK(pf.lines[0]["update"] == 1);
}

TEST_CASE("a device is written without truncation; /dev/full fails every write, counted, none written") {
  if (!fs::exists("/dev/full")) return;  // Linux
  hub_counts c;
  std::vector<sink_error> errors;
  std::shared_ptr<jsonl_sink> s;
  {
    hub h;
    h.set_error_handler([](const sink_error&) {});
    s = std::make_shared<jsonl_sink>("/dev/full");
    h.add_sink(s);
    for (std::uint64_t i = 0; i < 4; ++i) h.emit(i, 0, update_metrics{});
    c = h.close(std::chrono::seconds(10));
    errors = h.errors();
  }
  // By hand: 4 event writes and the hub_stats line (finish) fail: 5 failures
  // reported, the 4 writes counted (a finish is reported, not counted).
  CHECK(c.emitted == 4);
  CHECK(c.delivered == 4);
  CHECK(c.failed == 4);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].occurrences == 5);
  CHECK(s->events_written() == 0);
  CHECK(s->lines_written() == 0);
}

TEST_CASE("hub_stats says how many events this file got, and what was undelivered") {
  const fs::path file = fresh_dir("written") / "events.jsonl";
  {
    hub h;
    h.set_error_handler([](const sink_error&) {});
    h.add_sink(std::make_shared<jsonl_sink>(file));
    h.add_sink(std::make_shared<callback_sink>([](const event& e) {
      if (e.update() == 2) throw std::runtime_error("other sink");
    }));
    for (std::uint64_t i = 0; i < 3; ++i) h.emit(i, 0, update_metrics{});
    h.close();
  }
  const parsed_file pf = parse_jsonl(read_file(file));
  REQUIRE(pf.lines.size() == 4);
  const json& last = pf.lines[3];
  CHECK(last["event"] == "hub_stats");
  CHECK(last["written"] == 3);  // the other sink's failure is not this file's
  CHECK(last["failed"] == 1);
  CHECK(last["undelivered"] == 0);
  CHECK(last["emitted"] == last["delivered"].get<std::uint64_t>() + last["dropped"].get<std::uint64_t>() +
                               last["undelivered"].get<std::uint64_t>());
}

TEST_CASE("hub_stats holds the hub's final counts even when a sink finished after it fails") {
  // The JSONL sink finishes first; the sinks after it fail in flush (before
  // any finish: counted in failed) and in finish (after the JSONL line is
  // written: reported, not counted, so that the line's counts stay final).
  struct failing_sink final : sink {
    bool fail_flush = false;
    std::string name() const override { return fail_flush ? "bad_flush" : "bad_finish"; }
    void do_write(const event&) override {}
    void do_flush() override {
      if (fail_flush) throw std::runtime_error("flush failed");
    }
    void do_finish(const hub_counts&) override {
      if (!fail_flush) throw std::system_error(std::make_error_code(std::errc::no_space_on_device), "finish failed");
    }
  };
  for (const bool fail_flush : {false, true}) {
    CAPTURE(fail_flush);
    const fs::path file = fresh_dir(fail_flush ? "final_flush" : "final_finish") / "events.jsonl";
    std::vector<sink_error> reports;
    hub_counts closed;
    {
      hub h;
      h.set_error_handler([&](const sink_error& e) { reports.push_back(e); });
      h.add_sink(std::make_shared<jsonl_sink>(file));
      auto bad = std::make_shared<failing_sink>();
      bad->fail_flush = fail_flush;
      h.add_sink(bad);
      for (std::uint64_t i = 0; i < 3; ++i) h.emit(i, 0, update_metrics{});
      closed = h.close(hub::no_deadline);
      CHECK(h.counts() == closed);
    }
    CHECK(closed == hub_counts{.emitted = 3, .delivered = 3, .dropped = 0, .failed = fail_flush ? 1u : 0u});
    REQUIRE(reports.size() == 1);  // not lost: reported, by sink, exception type and call
    CHECK(reports[0].event == (fail_flush ? "flush" : "finish"));
    const parsed_file pf = parse_jsonl(read_file(file));
    REQUIRE(pf.lines.size() == 4);
    const json& last = pf.lines[3];
    CHECK(last["event"] == "hub_stats");
    CHECK(last["failed"] == closed.failed);
    CHECK(last["emitted"] == closed.emitted);
    CHECK(last["delivered"] == closed.delivered);
    CHECK(last["written"] == 3);
  }
}
