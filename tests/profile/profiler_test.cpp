#include "support/torch_doctest.hpp"

#include <ATen/record_function.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "support/temp_dir.hpp"
#include "simic/emit/json.hpp"
#include "simic/emit/sink_tensorboard.hpp"
#include "simic/profile/profiler.hpp"

using namespace simic;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const simic::test::remove_at_exit cleanup{"profile"};
fs::path fresh_dir(const std::string& name) { return simic::test::fresh_dir("profile", name); }

// One training step: a named user scope around three matmuls.
constexpr int mm_per_step = 3;
at::Tensor workload(std::uint64_t step, at::Tensor a) {
  RECORD_USER_SCOPE("simic_step_" + std::to_string(step));
  for (int k = 0; k < mm_per_step; ++k) a = at::mm(a, a).tanh();
  return a;
}

// Event-name counts of a Chrome trace: the legacy profiler writes an array,
// Kineto an object with "traceEvents".
std::map<std::string, int> trace_names(const fs::path& p) {
  std::ifstream in(p);
  const json j = json::parse(in);
  const json& events = j.is_array() ? j : j.at("traceEvents");
  std::map<std::string, int> out;
  for (const auto& e : events)
    if (e.contains("name") && e.value("ph", "") == "X") ++out[e["name"].get<std::string>()];
  return out;
}

std::vector<std::string> files_in(const fs::path& d) {
  std::vector<std::string> out;
  if (!fs::exists(d)) return out;
  for (const auto& e : fs::directory_iterator(d)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("the schedule: wait, warmup, active per cycle, then done after repeat cycles") {
  using P = profiler_phase;
  const profiler_schedule s{.wait = 1, .warmup = 1, .active = 2, .repeat = 2};
  const std::vector<P> expected{P::wait, P::warmup, P::active, P::active, P::wait,
                                P::warmup, P::active, P::active, P::done, P::done};
  for (std::uint64_t i = 0; i < expected.size(); ++i) CHECK(profiler::phase_at(s, i) == expected[i]);
  // repeat 0: forever; no wait, no warmup: every step active.
  const profiler_schedule forever{.wait = 0, .warmup = 0, .active = 1, .repeat = 0};
  for (std::uint64_t i : {0ull, 1ull, 1000000ull}) CHECK(profiler::phase_at(forever, i) == P::active);
  const profiler_schedule w{.wait = 3, .warmup = 0, .active = 1, .repeat = 1};
  CHECK(profiler::phase_at(w, 2) == P::wait);
  CHECK(profiler::phase_at(w, 3) == P::active);
  CHECK(profiler::phase_at(w, 4) == P::done);
}

TEST_CASE("a disabled profiler creates nothing and returns nothing") {
  const fs::path dir = fresh_dir("disabled");
  profiler p({.enabled = false, .dir = dir, .schedule = {.wait = 0, .warmup = 0, .active = 1, .repeat = 0}});
  at::Tensor a = at::rand({16, 16});
  for (std::uint64_t i = 0; i < 20; ++i) {
    a = workload(i, a);
    CHECK_FALSE(p.step().has_value());
  }
  CHECK_FALSE(p.close().has_value());
  CHECK(p.phase() == profiler_phase::idle);
  CHECK(p.traces_written() == 0);
  CHECK_FALSE(fs::exists(dir));
}

TEST_CASE("an enabled profiler writes one Chrome trace per active window, holding exactly that window's steps") {
  const fs::path dir = fresh_dir("schedule");
  profiler p({.enabled = true, .dir = dir, .schedule = {.wait = 1, .warmup = 1, .active = 2, .repeat = 2}});
  MESSAGE("back end: " << std::string(profiler::uses_kineto() ? "Kineto" : "legacy RecordProfile"));
  at::Tensor a = at::rand({32, 32});
  std::map<std::uint64_t, profiler_trace_event> written;  // keyed by the step whose step() returned it
  for (std::uint64_t i = 0; i < 10; ++i) {
    a = workload(i, a);
    if (auto t = p.step()) written[i] = *t;
  }
  CHECK(p.phase() == profiler_phase::done);
  REQUIRE(written.size() == 2);
  REQUIRE(written.count(3) == 1);
  REQUIRE(written.count(7) == 1);
  CHECK(written[3].first_step == 2);
  CHECK(written[3].steps == 2);
  CHECK(written[3].cycle == 0);
  CHECK(written[7].first_step == 6);
  CHECK(written[7].steps == 2);
  CHECK(written[7].cycle == 1);
  CHECK(fs::path(written[3].path) == dir / "trace_cycle0_steps2-3.json");
  CHECK(fs::path(written[7].path) == dir / "trace_cycle1_steps6-7.json");
  CHECK(files_in(dir) == std::vector<std::string>{"trace_cycle0_steps2-3.json", "trace_cycle1_steps6-7.json"});
  CHECK(p.traces_written() == 2);

  for (const auto& [at_step, t] : written) {
    const auto names = trace_names(t.path);
    for (std::uint64_t s = 0; s < 10; ++s) {
      const bool in_window = s >= t.first_step && s < t.first_step + t.steps;
      const std::string scope = "simic_step_" + std::to_string(s);
      CHECK_MESSAGE((names.count(scope) ? names.at(scope) : 0) == (in_window ? 1 : 0), scope, " in ", t.path);
    }
    CHECK(names.count("aten::mm") == 1);
    CHECK(names.at("aten::mm") == mm_per_step * 2);
    CHECK(names.at("aten::tanh") == mm_per_step * 2);
  }
  CHECK_FALSE(p.step().has_value());  // done: nothing more
}

TEST_CASE("close() writes a window cut short; a window that had not begun leaves no file") {
  at::Tensor a = at::rand({8, 8});
  SUBCASE("cut short after one of three active steps") {
    const fs::path dir = fresh_dir("cut");
    profiler p({.enabled = true, .dir = dir, .schedule = {.wait = 0, .warmup = 1, .active = 3, .repeat = 1}});
    a = workload(0, a);
    CHECK_FALSE(p.step().has_value());  // warmup done
    a = workload(1, a);
    CHECK_FALSE(p.step().has_value());  // first active step done
    const auto t = p.close();
    REQUIRE(t.has_value());
    CHECK(t->first_step == 1);
    CHECK(t->steps == 1);
    const auto names = trace_names(t->path);
    CHECK(names.count("simic_step_1") == 1);
    CHECK(names.count("simic_step_0") == 0);
    CHECK(p.phase() == profiler_phase::done);
    CHECK_FALSE(p.step().has_value());
    CHECK_FALSE(p.close().has_value());
  }
  SUBCASE("closed as the window opens") {
    const fs::path dir = fresh_dir("unbegun");
    profiler p({.enabled = true, .dir = dir, .schedule = {.wait = 1, .warmup = 0, .active = 2, .repeat = 1}});
    a = workload(0, a);
    CHECK_FALSE(p.step().has_value());  // recording starts for step 1
    CHECK_FALSE(p.close().has_value());
    CHECK(files_in(dir).empty());
  }
  SUBCASE("the destructor writes the cut window too") {
    const fs::path dir = fresh_dir("dtor");
    {
      profiler p({.enabled = true, .dir = dir, .schedule = {.wait = 0, .warmup = 0, .active = 5, .repeat = 1}});
      for (std::uint64_t i = 0; i < 2; ++i) {
        a = workload(i, a);
        p.step();
      }
    }
    CHECK(files_in(dir) == std::vector<std::string>{"trace_cycle0_steps0-1.json"});
  }
}

TEST_CASE("bad options name themselves") {
  CHECK_THROWS_WITH_AS(profiler({.enabled = true, .dir = fresh_dir("bad"), .schedule = {.active = 0}}),
                       doctest::Contains("schedule.active"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(profiler({.enabled = true, .dir = fs::path{}}), doctest::Contains("dir"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(profiler({.enabled = true, .dir = fresh_dir("bad"), .prefix = ""}),
                       doctest::Contains("prefix"), std::invalid_argument);
  // A directory that cannot be created (a file is in the way): the path is named.
  const fs::path file = fresh_dir("blocked");
  fs::create_directories(file.parent_path());
  std::ofstream(file) << "x";
  CHECK_THROWS_WITH_AS(profiler({.enabled = true, .dir = file / "sub"}), doctest::Contains(file.c_str()),
                       std::system_error);
}

TEST_CASE("the profiler_trace event: the file, its steps and cycle in JSON; no TensorBoard scalar") {
  const profiler_trace_event p{.path = "/tmp/t.json", .first_step = 3, .steps = 2, .cycle = 1};
  const json j = json::parse(to_json_line(event(7, 0, p)));
  CHECK(j["event"] == "profiler_trace");
  CHECK(j["path"] == "/tmp/t.json");
  CHECK(j["first_step"] == 3);
  CHECK(j["steps"] == 2);
  CHECK(j["cycle"] == 1);
  tensorboard_tally t;
  CHECK(tensorboard_scalars(event(7, 0, p), t).empty());
}

// The body of the next test's child process (skipped in ordinary runs; the
// test runs it with --no-skip): profiling windows ended in every way a run
// ends them, on the GPU when there is one (CUDA activity), then a normal
// return from main, so that every static destructor runs. That is where a
// profiler left open crashes a process after its run (docs/profiling.md).
// SIMIC_PROFILE_CHILD_DEVICE=cpu keeps the tensors on the CPU while CUDA
// activity is still recorded where CUDA is present: a process that profiles
// with CUPTI but never made a CUDA context (the parent test program's case).
TEST_CASE("profiled child process" * doctest::skip()) {
  const char* dir_env = std::getenv("SIMIC_PROFILE_CHILD_DIR");
  REQUIRE(dir_env != nullptr);
  const fs::path dir = dir_env;
  const char* device_env = std::getenv("SIMIC_PROFILE_CHILD_DEVICE");
  const bool cpu_only = device_env != nullptr && std::string(device_env) == "cpu";
  const at::Device device = at::hasCUDA() && !cpu_only ? at::Device(at::kCUDA) : at::Device(at::kCPU);
  MESSAGE("child profiles on " << device.str() << " with " << (profiler::uses_kineto() ? "Kineto" : "legacy"));
  at::Tensor a = at::rand({64, 64}, at::TensorOptions().device(device));
  {  // a whole schedule: wait, warm-up, two active steps, done
    profiler p({.enabled = true, .dir = dir / "whole", .schedule = {.wait = 1, .warmup = 1, .active = 2, .repeat = 1}});
    for (std::uint64_t i = 0; i < 5; ++i) {
      a = workload(i, a);
      p.step();
    }
    CHECK(p.traces_written() == 1);
  }
  {  // closed during its warm-up: nothing recorded, nothing left prepared
    profiler p({.enabled = true, .dir = dir / "warmup", .schedule = {.wait = 0, .warmup = 3, .active = 1, .repeat = 1}});
    a = workload(0, a);
    p.step();
    CHECK(p.phase() == profiler_phase::warmup);
    CHECK_FALSE(p.close().has_value());
  }
  {  // cut short by its destructor mid-window
    profiler p({.enabled = true, .dir = dir / "cut", .schedule = {.wait = 0, .warmup = 1, .active = 4, .repeat = 1}});
    for (std::uint64_t i = 0; i < 3; ++i) {
      a = workload(i, a);
      p.step();
    }
  }
  if (device.is_cuda()) CHECK(a.cpu().isfinite().all().item<bool>());
}

namespace {
// Runs the case above in a child process with SIMIC_PROFILE_CHILD_DEVICE=`which`
// and checks that it exited 0, passed and wrote its traces.
void check_profiled_child(const std::string& which) {
  CAPTURE(which);
  const fs::path dir = fresh_dir("child_" + which);
  fs::create_directories(dir);
  const fs::path log = dir / "child.log";
  const std::string env_dir = "SIMIC_PROFILE_CHILD_DIR=" + dir.string();
  const std::string env_device = "SIMIC_PROFILE_CHILD_DEVICE=" + which;
  std::vector<std::string> args{"/proc/self/exe", "--no-skip", "--test-case=profiled child process", "--no-version"};
  std::vector<char*> argv;
  for (auto& x : args) argv.push_back(x.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
  envp.push_back(const_cast<char*>(env_dir.c_str()));
  envp.push_back(const_cast<char*>(env_device.c_str()));
  envp.push_back(nullptr);
  posix_spawn_file_actions_t io;
  posix_spawn_file_actions_init(&io);
  posix_spawn_file_actions_addopen(&io, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&io, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, argv[0], &io, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&io);
  REQUIRE(spawned == 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  std::stringstream out;
  out << std::ifstream(log).rdbuf();
  INFO("the child's output:\n" << out.str());
  CHECK_MESSAGE(!WIFSIGNALED(status), "killed by signal ", (WIFSIGNALED(status) ? WTERMSIG(status) : 0));
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(out.str().find("Status: SUCCESS!") != std::string::npos);  // its case ran and passed
  CHECK(files_in(dir / "whole") == std::vector<std::string>{"trace_cycle0_steps2-3.json"});
  CHECK(files_in(dir / "warmup").empty());
  CHECK(files_in(dir / "cut") == std::vector<std::string>{"trace_cycle0_steps1-2.json"});
}
}  // namespace

TEST_CASE("a process that profiled exits cleanly (code 0, every static destructor run)") {
  check_profiled_child("default");
  // With CUDA, also CPU work profiled with CUDA activity on: CUPTI without a CUDA context.
  if (at::hasCUDA()) check_profiled_child("cpu");
}
