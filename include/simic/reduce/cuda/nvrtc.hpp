// NVRTC, loaded at run time: compiles the kernel source to a CUBIN (or PTX)
// for one GPU architecture. Nothing is linked: libnvrtc is dlopen()ed on
// first use, so a trainer built by g++ needs neither nvcc nor the CUDA
// Toolkit at link time, only libnvrtc at run time (CUDA Toolkit, or the
// nvidia-cuda-nvrtc pip package that CUDA builds of torch depend on).
//
// Search order: $SIMIC_NVRTC_LIBRARY (a path), then libnvrtc.so.13,
// libnvrtc.so.12, libnvrtc.so (through the loader's path, which finds a copy
// LibTorch has loaded already), then /usr/local/cuda/lib64/libnvrtc.so.*.
//
// No GPU is needed to compile: the CPU tests use this very code.
#pragma once

#include <dlfcn.h>

#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace simic {
inline namespace v0 {
namespace cuda::detail {

// The slice of nvrtc.h simic uses (C ABI, stable across CUDA 11 to 13).
struct nvrtc_api {
  using program = struct nvrtc_program_opaque*;
  using result = int;  // nvrtcResult; 0 = NVRTC_SUCCESS
  void* handle = nullptr;
  std::string path;
  result (*version)(int*, int*) = nullptr;
  const char* (*get_error_string)(result) = nullptr;
  result (*create_program)(program*, const char*, const char*, int, const char* const*, const char* const*) = nullptr;
  result (*compile_program)(program, int, const char* const*) = nullptr;
  result (*get_program_log_size)(program, std::size_t*) = nullptr;
  result (*get_program_log)(program, char*) = nullptr;
  result (*get_ptx_size)(program, std::size_t*) = nullptr;
  result (*get_ptx)(program, char*) = nullptr;
  result (*get_cubin_size)(program, std::size_t*) = nullptr;
  result (*get_cubin)(program, char*) = nullptr;
  result (*destroy_program)(program*) = nullptr;

  bool loaded() const noexcept { return handle != nullptr; }
};

template <class F>
inline bool nvrtc_sym(void* h, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(h, name));
  return f != nullptr;
}

// Loads NVRTC from `path` (empty: the search order above). Returns an
// unloaded table and sets `why` when no usable library is found.
inline nvrtc_api load_nvrtc(const std::string& path, std::string& why) {
  std::vector<std::string> candidates;
  if (!path.empty()) {
    candidates.push_back(path);
  } else {
    if (const char* env = std::getenv("SIMIC_NVRTC_LIBRARY"); env && *env) candidates.emplace_back(env);
    for (const char* n : {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so", "/usr/local/cuda/lib64/libnvrtc.so.13",
                          "/usr/local/cuda/lib64/libnvrtc.so.12", "/usr/local/cuda/lib64/libnvrtc.so"})
      candidates.emplace_back(n);
  }
  why.clear();
  for (const std::string& c : candidates) {
    void* h = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = dlerror();
      why += c + ": " + (e ? e : "not found") + "; ";
      continue;
    }
    nvrtc_api a;
    a.handle = h;
    a.path = c;
    const bool ok = nvrtc_sym(h, "nvrtcVersion", a.version) && nvrtc_sym(h, "nvrtcGetErrorString", a.get_error_string) &&
                    nvrtc_sym(h, "nvrtcCreateProgram", a.create_program) &&
                    nvrtc_sym(h, "nvrtcCompileProgram", a.compile_program) &&
                    nvrtc_sym(h, "nvrtcGetProgramLogSize", a.get_program_log_size) &&
                    nvrtc_sym(h, "nvrtcGetProgramLog", a.get_program_log) &&
                    nvrtc_sym(h, "nvrtcGetPTXSize", a.get_ptx_size) && nvrtc_sym(h, "nvrtcGetPTX", a.get_ptx) &&
                    nvrtc_sym(h, "nvrtcGetCUBINSize", a.get_cubin_size) && nvrtc_sym(h, "nvrtcGetCUBIN", a.get_cubin) &&
                    nvrtc_sym(h, "nvrtcDestroyProgram", a.destroy_program);
    if (ok) return a;
    why += c + ": lacks an NVRTC entry point; ";
    dlclose(h);
  }
  return {};
}

// The process-wide NVRTC (loaded once; never unloaded).
inline const nvrtc_api& nvrtc() {
  static std::string why;
  static const nvrtc_api api = load_nvrtc("", why);
  return api;
}
inline std::string nvrtc_load_error() {
  std::string why;
  nvrtc_api a = load_nvrtc("", why);
  if (a.handle) dlclose(a.handle);
  return why;
}

struct compile_output {
  bool ok = false;
  std::string log;          // compiler messages (errors, warnings)
  std::vector<char> image;  // CUBIN bytes, or PTX text with a terminating NUL
  bool is_ptx = false;
};

// Words of an option string, split at spaces and tabs.
inline std::vector<std::string> split_options(const char* text) {
  std::vector<std::string> out;
  std::string word;
  for (const char* c = text ? text : "";; ++c) {
    if (*c == ' ' || *c == '\t' || *c == '\0') {
      if (!word.empty()) out.push_back(word);
      word.clear();
      if (*c == '\0') break;
    } else {
      word += *c;
    }
  }
  return out;
}

// Extra NVRTC options from $SIMIC_CUDA_NVRTC_OPTIONS, read once per process:
// for timing other register budgets or flags on a GPU without rebuilding
// (docs/cuda.md). Empty when unset.
inline const std::vector<std::string>& extra_nvrtc_options() {
  static const std::vector<std::string> opts = split_options(std::getenv("SIMIC_CUDA_NVRTC_OPTIONS"));
  return opts;
}

// Compiles `source` for `arch`: "sm_90" gives a CUBIN for that GPU,
// "compute_90" gives PTX (loadable on that and later GPUs). Extra options
// are appended (e.g. "-lineinfo").
inline compile_output nvrtc_compile(const nvrtc_api& api, const std::string& source, const std::string& arch,
                                    const std::vector<std::string>& extra = {}) {
  compile_output out;
  if (!api.loaded()) {
    out.log = "NVRTC is not loaded";
    return out;
  }
  out.is_ptx = arch.rfind("compute_", 0) == 0;
  nvrtc_api::program prog = nullptr;
  nvrtc_api::result r = api.create_program(&prog, source.c_str(), "simic_fused.cu", 0, nullptr, nullptr);
  if (r != 0) {
    out.log = std::string("nvrtcCreateProgram: ") + api.get_error_string(r);
    return out;
  }
  std::vector<std::string> opts{"--gpu-architecture=" + arch, "--std=c++17", "--fmad=true"};
  opts.insert(opts.end(), extra.begin(), extra.end());
  std::vector<const char*> copts;
  for (const auto& o : opts) copts.push_back(o.c_str());
  r = api.compile_program(prog, static_cast<int>(copts.size()), copts.data());
  std::size_t log_size = 0;
  if (api.get_program_log_size(prog, &log_size) == 0 && log_size > 1) {
    out.log.resize(log_size);
    api.get_program_log(prog, out.log.data());
    out.log.resize(log_size - 1);
  }
  if (r != 0) {
    out.log = std::string("nvrtcCompileProgram (") + arch + "): " + api.get_error_string(r) + "\n" + out.log;
    api.destroy_program(&prog);
    return out;
  }
  std::size_t size = 0;
  r = out.is_ptx ? api.get_ptx_size(prog, &size) : api.get_cubin_size(prog, &size);
  if (r == 0 && size > 0) {
    out.image.resize(size);
    r = out.is_ptx ? api.get_ptx(prog, out.image.data()) : api.get_cubin(prog, out.image.data());
  }
  out.ok = r == 0 && size > 0;
  if (!out.ok) out.log += std::string("\nretrieving the image failed: ") + api.get_error_string(r);
  api.destroy_program(&prog);
  return out;
}

}  // namespace cuda::detail
}  // namespace v0
}  // namespace simic
