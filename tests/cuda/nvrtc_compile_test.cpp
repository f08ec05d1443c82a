// CI's compile check of the device code: the complete kernel source (the
// shared accumulation code included) goes through NVRTC, the same library
// and call the back end uses at run time, for several GPU architectures, with
// no GPU. Skipped, with a message, when no libnvrtc can be loaded.
#include <doctest/doctest.h>

#include <cstdio>
#include <regex>
#include <string>
#include <vector>

#include "simic/cuda/driver.hpp"
#include "simic/cuda/kernel_source.hpp"
#include "simic/cuda/nvrtc.hpp"

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
    // No local-memory arrays in the hot kernels (the finish kernel may spill a little).
    const auto basic = ptx.find(".entry simic_partials_basic");
    const auto next_entry = ptx.find(".entry", basic + 1);
    CHECK(ptx.substr(basic, next_entry - basic).find(".local") == std::string::npos);
  }
}

TEST_CASE("NVRTC compiles the kernels to CUBIN for sm_80 and sm_90 without spills in the partial kernels") {
  if (!have_nvrtc()) return;
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
    // ptxas' resource report: the two partial kernels spill nothing.
    const std::regex spill(R"(Function properties for (simic_partials_\w+)\s*\n[^\n]*?(\d+) bytes spill stores)");
    int checked = 0;
    for (auto it = std::sregex_iterator(out.log.begin(), out.log.end(), spill); it != std::sregex_iterator(); ++it) {
      CAPTURE((*it)[1].str());
      CHECK((*it)[2].str() == "0");
      ++checked;
    }
    CHECK(checked == 2);
    // Registers bound the resident blocks of 256 threads (65536 per SM):
    // basic <= 64 keeps 4 blocks, full <= 128 keeps 2, enough 16-byte loads
    // in flight for the memory system (the careful path is out of line so
    // that it does not raise these).
    const std::regex regs(R"(entry function '(simic_partials_\w+)'[^\n]*\n(?:[^\n]*\n)*?[^\n]*Used (\d+) registers)");
    int seen = 0;
    for (auto it = std::sregex_iterator(out.log.begin(), out.log.end(), regs); it != std::sregex_iterator(); ++it) {
      const std::string name = (*it)[1].str();
      const int used = std::stoi((*it)[2].str());
      CAPTURE(name);
      CAPTURE(used);
      CHECK(used <= (name == "simic_partials_basic" ? 64 : 128));
      ++seen;
    }
    CHECK(seen == 2);
  }
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
