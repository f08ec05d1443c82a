// CI's compile check of the device code: the complete kernel source (the
// shared accumulation code included) goes through NVRTC, the same library
// and call the back end uses at run time, for several GPU architectures, with
// no GPU. Skipped, with a message, when no libnvrtc can be loaded.
#include <doctest/doctest.h>

#include <cstdio>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "simic/reduce/cuda/driver.hpp"
#include "simic/reduce/cuda/kernel_source.hpp"
#include "simic/reduce/cuda/nvrtc.hpp"

namespace cd = simic::cuda::detail;

namespace {
bool have_nvrtc() {
  if (cd::nvrtc().loaded()) return true;
  MESSAGE("skipped: no libnvrtc could be loaded (" << cd::nvrtc_load_error() << ")");
  return false;
}
int count(const std::string& s, const std::regex& re) {
  return static_cast<int>(std::distance(std::sregex_iterator(s.begin(), s.end(), re), std::sregex_iterator()));
}
}  // namespace

TEST_CASE("NVRTC compiles the kernels to PTX: entry points and 16-byte loads") {
  if (!have_nvrtc()) return;
  int major = 0, minor = 0;
  REQUIRE(cd::nvrtc().version(&major, &minor) == 0);
  MESSAGE("NVRTC " << major << "." << minor << " from " << cd::nvrtc().path);
  for (const char* arch : {"compute_80", "compute_90"}) {
    CAPTURE(arch);
    const cd::compile_output out = cd::nvrtc_compile(cd::nvrtc(), cd::kernel_source(), arch);
    INFO(out.log);
    REQUIRE(out.ok);
    REQUIRE(out.is_ptx);
    const std::string ptx(out.image.data());
    for (const char* k : cd::kernel_names) CHECK(ptx.find(std::string(".entry ") + k) != std::string::npos);
    // float32 pieces load float4 (ld.global.nc.v4.f32), float16 / bfloat16 pieces uint4.
    CHECK(count(ptx, std::regex(R"(ld\.global(\.nc)?\.v4\.f32)")) >= 4);
    CHECK(count(ptx, std::regex(R"(ld\.global(\.nc)?\.v4\.(u32|b32))")) >= 4);
    // float16 conversion by the hardware instruction.
    CHECK(ptx.find("cvt.f32.f16") != std::string::npos);
    // No local-memory arrays and no calls in the kernels (every helper inlined).
    CHECK(ptx.find(".local") == std::string::npos);
    CHECK(ptx.find("call.uni") == std::string::npos);
    // One kernel per stat set, with the register budget of its occupancy.
    CHECK(ptx.find(".maxntid 256") != std::string::npos);
    CHECK(ptx.find(".minnctapersm " + std::to_string(cd::basic_blocks_per_sm)) != std::string::npos);
    CHECK(ptx.find(".minnctapersm " + std::to_string(cd::full_blocks_per_sm)) != std::string::npos);
    // NaN / Inf of the careful path are counted in shared memory.
    CHECK(ptx.find("atom.shared.add.u32") != std::string::npos);
  }
}

namespace {
struct kernel_resources {
  int registers = -1;
  int spill_stores = -1;
  int stack = -1;
};
// ptxas' -v report, per entry function.
std::map<std::string, kernel_resources> ptxas_report(const std::string& log) {
  std::map<std::string, kernel_resources> out;
  const std::regex props(R"(Function properties for (simic_stats_\w+)\s*\n[^\n]*?(\d+) bytes stack frame, (\d+) bytes spill stores)");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), props); it != std::sregex_iterator(); ++it) {
    out[(*it)[1].str()].stack = std::stoi((*it)[2].str());
    out[(*it)[1].str()].spill_stores = std::stoi((*it)[3].str());
  }
  const std::regex regs(R"(Function properties for (simic_stats_\w+)\s*\n[^\n]*\n[^\n]*Used (\d+) registers)");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), regs); it != std::sregex_iterator(); ++it)
    out[(*it)[1].str()].registers = std::stoi((*it)[2].str());
  return out;
}
}  // namespace

TEST_CASE("NVRTC compiles the kernels to CUBIN for sm_80 and sm_90 within their register budgets") {
  if (!have_nvrtc()) return;
  // Registers bound the resident blocks of 256 threads (65536 registers per
  // SM): the basic set is built for basic_blocks_per_sm (6: <= 40 registers,
  // 75% occupancy), the full set for full_blocks_per_sm (4: <= 64). The
  // loop and block merge spill nothing (compiled alone, SIMIC_HOT_LOOP_ONLY);
  // the once-per-launch tail (a tensor's row, the summary) may spill a
  // little at these budgets, within the bounds below.
  static_assert(cd::partial_threads == 256);
  const int basic_regs = 65536 / (cd::partial_threads * cd::basic_blocks_per_sm) / 8 * 8;
  const int full_regs = 65536 / (cd::partial_threads * cd::full_blocks_per_sm) / 8 * 8;
  CHECK(basic_regs == 40);
  CHECK(full_regs == 64);
  for (const char* arch : {"sm_80", "sm_90"}) {
    CAPTURE(arch);
    const cd::compile_output out = cd::nvrtc_compile(cd::nvrtc(), cd::kernel_source(), arch, {"-Xptxas=-v"});
    INFO(out.log);
    REQUIRE(out.ok);
    CHECK(!out.is_ptx);
    REQUIRE(out.image.size() > 4);
    CHECK(out.image[0] == 0x7f);  // ELF
    CHECK(out.image[1] == 'E');
    const std::string bin(out.image.begin(), out.image.end());
    for (const char* k : cd::kernel_names) CHECK(bin.find(k) != std::string::npos);
    const auto whole = ptxas_report(out.log);
    REQUIRE(whole.size() == 2);
    const kernel_resources& basic = whole.at("simic_stats_basic");
    const kernel_resources& full = whole.at("simic_stats_full");
    CAPTURE(basic.registers);
    CAPTURE(basic.spill_stores);
    CAPTURE(full.registers);
    CAPTURE(full.spill_stores);
    CHECK(basic.registers > 0);
    CHECK(basic.registers <= basic_regs);
    CHECK(full.registers > 0);
    CHECK(full.registers <= full_regs);
    CHECK(basic.spill_stores <= 256);
    CHECK(full.spill_stores <= 64);

    const cd::compile_output hot =
        cd::nvrtc_compile(cd::nvrtc(), cd::kernel_source(), arch, {"-Xptxas=-v", "-DSIMIC_HOT_LOOP_ONLY"});
    INFO(hot.log);
    REQUIRE(hot.ok);
    const auto loop = ptxas_report(hot.log);
    REQUIRE(loop.size() == 2);
    for (const auto& [name, r] : loop) {
      CAPTURE(name);
      CHECK(r.spill_stores == 0);
      CHECK(r.stack == 0);
      CHECK(r.registers <= (name == "simic_stats_basic" ? basic_regs : full_regs));
    }
  }
}

TEST_CASE("other register budgets compile through NVRTC options (the GPU check times them)") {
  CHECK(cd::split_options(nullptr).empty());
  CHECK(cd::split_options("").empty());
  CHECK(cd::split_options("  -DA=1\t -DB ") == std::vector<std::string>{"-DA=1", "-DB"});
  if (!have_nvrtc()) return;
  // Full occupancy for the basic set: 8 blocks of 256, 32 registers.
  const cd::compile_output out =
      cd::nvrtc_compile(cd::nvrtc(), cd::kernel_source(), "sm_90", {"-Xptxas=-v", "-DSIMIC_BASIC_BLOCKS_PER_SM=8"});
  INFO(out.log);
  REQUIRE(out.ok);
  const auto r = ptxas_report(out.log);
  REQUIRE(r.count("simic_stats_basic") == 1);
  CHECK(r.at("simic_stats_basic").registers <= 32);
  CHECK(r.at("simic_stats_full").registers <= 64);  // untouched
  MESSAGE("basic set at 32 registers: " << r.at("simic_stats_basic").spill_stores << " bytes of spill stores");
}

TEST_CASE("a compile error comes back with NVRTC's log, not a crash") {
  if (!have_nvrtc()) return;
  const cd::compile_output out = cd::nvrtc_compile(cd::nvrtc(), "__global__ void k() { undefined_name(); }", "compute_80");
  CHECK(!out.ok);
  CHECK(out.log.find("undefined_name") != std::string::npos);
  const cd::compile_output bad_arch = cd::nvrtc_compile(cd::nvrtc(), cd::kernel_source(), "sm_1");
  CHECK(!bad_arch.ok);
  CHECK(!bad_arch.log.empty());
}

TEST_CASE("an unloadable NVRTC path is reported, not fatal") {
  std::string why;
  const cd::nvrtc_api a = cd::load_nvrtc("/nonexistent/libnvrtc.so", why);
  CHECK(!a.loaded());
  CHECK(why.find("/nonexistent/libnvrtc.so") != std::string::npos);
  const cd::compile_output out = cd::nvrtc_compile(a, cd::kernel_source(), "sm_90");
  CHECK(!out.ok);
}

TEST_CASE("every driver entry point the back end uses exists under the name cuda.h binds") {
  // The Toolkit's stub libcuda exports the whole driver API without a GPU.
  const char* stub = "/usr/local/cuda/lib64/stubs/libcuda.so";
  if (FILE* f = std::fopen(stub, "rb")) {
    std::fclose(f);
  } else {
    MESSAGE("skipped: no " << stub);
    return;
  }
  std::string why;
  cd::driver_api d = cd::load_driver(stub, why);
  INFO(why);
  CHECK(d.loaded());
  int n = 0;
  cd::driver_for_each_symbol(d, [&](const char*, auto& f) { n += f != nullptr; });
  CHECK(n == 20);
  std::string why2;
  CHECK(!cd::load_driver("/nonexistent/libcuda.so.1", why2).loaded());
  CHECK(why2.find("/nonexistent/libcuda.so.1") != std::string::npos);
}
