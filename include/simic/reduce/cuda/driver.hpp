// The CUDA driver API, loaded at run time (dlopen("libcuda.so.1")): the few
// entry points the fused back end needs to load a module, launch on
// LibTorch's current stream, copy into pinned host memory and wait on an
// event. Loading it at run time keeps a trainer's link line free of
// libcuda / libcudart (LibTorch's own CUDA libraries are all it links).
//
// Names are the ABI symbols cuda.h maps its API to (the _v2 ones where
// cuda.h says so). CI, which has no GPU, checks that every one of them
// resolves in the CUDA Toolkit's stub libcuda.so.
#pragma once

#include <dlfcn.h>

#include <cstddef>
#include <string>
#include <type_traits>

namespace simic {
inline namespace v0 {
namespace cuda::detail {

struct driver_api {
  using result = int;  // CUresult; 0 = CUDA_SUCCESS
  using device = int;
  using context = struct cu_context_opaque*;
  using module = struct cu_module_opaque*;
  using function = struct cu_function_opaque*;
  using stream = struct cu_stream_opaque*;  // the same handle as cudaStream_t
  using event = struct cu_event_opaque*;
  using devptr = unsigned long long;

  // Values from cuda.h.
  static constexpr unsigned event_disable_timing = 0x2;
  static constexpr int attr_multiprocessor_count = 16;
  static constexpr int attr_compute_capability_major = 75;
  static constexpr int attr_compute_capability_minor = 76;
  static constexpr result not_ready = 600;

  void* handle = nullptr;
  std::string path;
  result (*get_error_string)(result, const char**) = nullptr;
  result (*init)(unsigned) = nullptr;
  result (*device_get)(device*, int) = nullptr;
  result (*device_get_attribute)(int*, int, device) = nullptr;
  result (*ctx_get_current)(context*) = nullptr;
  result (*ctx_set_current)(context) = nullptr;
  result (*primary_ctx_retain)(context*, device) = nullptr;
  result (*module_load_data)(module*, const void*) = nullptr;
  result (*module_get_function)(function*, module, const char*) = nullptr;
  result (*launch_kernel)(function, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, stream,
                          void**, void**) = nullptr;
  result (*occupancy_max_active_blocks)(int*, function, int, std::size_t) = nullptr;
  result (*mem_host_alloc)(void**, std::size_t, unsigned) = nullptr;
  result (*mem_free_host)(void*) = nullptr;
  result (*memcpy_htod_async)(devptr, const void*, std::size_t, stream) = nullptr;
  result (*memcpy_dtoh_async)(void*, devptr, std::size_t, stream) = nullptr;
  result (*event_create)(event*, unsigned) = nullptr;
  result (*event_destroy)(event) = nullptr;
  result (*event_record)(event, stream) = nullptr;
  result (*event_query)(event) = nullptr;
  result (*event_synchronize)(event) = nullptr;

  bool loaded() const noexcept { return handle != nullptr; }

  std::string error_string(result r) const {
    const char* s = nullptr;
    if (get_error_string && get_error_string(r, &s) == 0 && s) return s;
    return "CUresult " + std::to_string(r);
  }
};

// Every symbol, by the name cuda.h binds the API call to.
template <class Fn>
inline void driver_for_each_symbol(driver_api& a, Fn&& fn) {
  fn("cuGetErrorString", a.get_error_string);
  fn("cuInit", a.init);
  fn("cuDeviceGet", a.device_get);
  fn("cuDeviceGetAttribute", a.device_get_attribute);
  fn("cuCtxGetCurrent", a.ctx_get_current);
  fn("cuCtxSetCurrent", a.ctx_set_current);
  fn("cuDevicePrimaryCtxRetain", a.primary_ctx_retain);
  fn("cuModuleLoadData", a.module_load_data);
  fn("cuModuleGetFunction", a.module_get_function);
  fn("cuLaunchKernel", a.launch_kernel);
  fn("cuOccupancyMaxActiveBlocksPerMultiprocessor", a.occupancy_max_active_blocks);
  fn("cuMemHostAlloc", a.mem_host_alloc);
  fn("cuMemFreeHost", a.mem_free_host);
  fn("cuMemcpyHtoDAsync_v2", a.memcpy_htod_async);
  fn("cuMemcpyDtoHAsync_v2", a.memcpy_dtoh_async);
  fn("cuEventCreate", a.event_create);
  fn("cuEventDestroy_v2", a.event_destroy);
  fn("cuEventRecord", a.event_record);
  fn("cuEventQuery", a.event_query);
  fn("cuEventSynchronize", a.event_synchronize);
}

// Loads the driver from `path`; on failure returns an unloaded table and
// names what is missing in `why`.
inline driver_api load_driver(const std::string& path, std::string& why) {
  driver_api a;
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    why = path + ": " + (e ? e : "not found");
    return {};
  }
  std::string missing;
  driver_for_each_symbol(a, [&](const char* name, auto& f) {
    f = reinterpret_cast<std::remove_reference_t<decltype(f)>>(dlsym(h, name));
    if (!f) missing += std::string(missing.empty() ? "" : ", ") + name;
  });
  if (!missing.empty()) {
    why = path + " lacks " + missing;
    dlclose(h);
    return {};
  }
  a.handle = h;
  a.path = path;
  why.clear();
  return a;
}

}  // namespace cuda::detail
}  // namespace v0
}  // namespace simic
