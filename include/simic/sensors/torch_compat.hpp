// Every difference between the supported LibTorch versions (1.13 through
// 2.x) that the sensors depend on is guarded here and nowhere else.
#pragma once

#include <ATen/ATen.h>
#include <torch/version.h>  // TORCH_VERSION_MAJOR / _MINOR: macros only

#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#define SIMIC_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// LibTorch's profiler back end (used by simic/profile/profiler.hpp). Kineto
// (ProfilerResult::save writes a Chrome trace, with CUDA activity) is in pip's
// builds and in every 2.x; Debian's 1.13 is built without it, so there only the
// legacy RecordProfile writes a (CPU) trace. USE_KINETO is defined only while
// LibTorch itself builds, so the version decides; -DSIMIC_TORCH_KINETO=0/1
// overrides (e.g. 1 for a pip 1.13).
#ifndef SIMIC_TORCH_KINETO
#if defined(USE_KINETO) || TORCH_VERSION_MAJOR >= 2
#define SIMIC_TORCH_KINETO 1
#else
#define SIMIC_TORCH_KINETO 0
#endif
#endif

namespace simic {
inline namespace v0 {
namespace detail {

// at::_foreach_norm exists from 1.12 on; from 2.4 it takes an accumulation /
// output dtype. Before that its result has the dtype of its inputs, so half
// and bfloat16 norms above 65504 (half) would overflow: those lists must not
// use it there.
inline constexpr bool foreach_norm_available = SIMIC_TORCH_AT_LEAST(1, 12);
inline constexpr bool foreach_norm_has_dtype = SIMIC_TORCH_AT_LEAST(2, 4);

// Whether foreach_norm_float (below) may be used for a tensor of type `t`
// and gives float32-or-wider accumulation and results.
inline bool foreach_norm_accepts(at::ScalarType t) noexcept {
  if constexpr (!foreach_norm_available) return false;
  if constexpr (foreach_norm_has_dtype) return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
  return t == at::kFloat || t == at::kDouble;
}

// L2 norms of every tensor in `list`, accumulated in float32 or wider, in
// list order; one fused call per accumulation type. Precondition:
// foreach_norm_accepts() for every dtype in `list`.
inline std::vector<at::Tensor> foreach_norm_float(at::TensorList list) {
#if SIMIC_TORCH_AT_LEAST(2, 4)
  // float64 keeps its own accumulator; everything else accumulates and
  // returns in float32 (dtype argument).
  std::vector<at::Tensor> wide, narrow;
  for (const auto& t : list) (t.scalar_type() == at::kDouble ? wide : narrow).push_back(t);
  std::vector<at::Tensor> wn = wide.empty() ? std::vector<at::Tensor>{} : at::_foreach_norm(wide, 2);
  std::vector<at::Tensor> nn = narrow.empty() ? std::vector<at::Tensor>{} : at::_foreach_norm(narrow, 2, at::kFloat);
  std::vector<at::Tensor> out;
  out.reserve(list.size());
  std::size_t iw = 0, in = 0;
  for (const auto& t : list) out.push_back(t.scalar_type() == at::kDouble ? wn[iw++] : nn[in++]);
  return out;
#else
  return at::_foreach_norm(list, 2);
#endif
}

// L2 norm of one tensor accumulated in float32 or wider: the per-tensor path.
inline at::Tensor vector_norm_float(const at::Tensor& t) {
  const auto acc = t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  return at::linalg_vector_norm(t, 2, c10::nullopt, false, acc);
}

// Blocks until `e` has completed (an event that was recorded on an
// accelerator's stream: reduce/host_copy.hpp). c10::Event::synchronize()
// exists from 2.0 on; 1.13 has only query(), so there the host polls it,
// yielding between polls (the wait is the rare case: host_copy_waits()).
template <class Event>
inline void event_wait(const Event& e) {
#if SIMIC_TORCH_AT_LEAST(2, 0)
  e.synchronize();
#else
  while (!e.query()) std::this_thread::yield();
#endif
}

// Whether simic's profiler uses Kineto (else the legacy profiler).
inline constexpr bool profiler_has_kineto = SIMIC_TORCH_KINETO != 0;

// Population variance (no Bessel correction). The `correction` overload
// appeared in 1.13's successors; the bool overload is in every version.
inline at::Tensor population_var(const at::Tensor& t) { return at::var(t, /*unbiased=*/false); }

}  // namespace detail
}  // namespace v0
}  // namespace simic

// ---- Optimizer state and snapshots (simic/recovery/training_state.hpp) ----
namespace simic {
inline namespace v0 {
namespace detail {

// "major.minor.patch" of the LibTorch compiled against, recorded in a
// training snapshot.
inline std::string torch_version_string() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

// Whether an optimizer archive written by LibTorch `recorded` ("major.minor...")
// can be loaded by this one. Optimizer::save keys each parameter's state by
// its TensorImpl address, and load maps those keys back by index: 1.13 writes
// the address as a pointer string ("0x55d0...") and keys its state map by that
// string, 2.x writes it as a decimal number and parses it back with stoull,
// which reads every 1.13 key as 0 and would put every parameter's state on one
// key without an error. A snapshot is for the run that wrote it, so only the
// same major.minor is accepted.
inline bool optimizer_archive_compatible(const std::string& recorded) {
  const std::string mine = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + ".";
  return recorded.compare(0, mine.size(), mine) == 0;
}

// The key of parameter `p` in Optimizer::state(): its TensorImpl address,
// as a string in 1.13 ("0x...": c10::guts::to_string, an ostream of the
// pointer) and as the address itself (void*) in 2.x. Templates, so that
// this header needs no optimizer header.
template <class Optimizer>
auto optimizer_state_key(Optimizer& optimizer, const at::Tensor& p) {
  using key_type = typename std::remove_cvref_t<decltype(optimizer.state())>::key_type;
  if constexpr (std::is_same_v<key_type, std::string>) {
    std::ostringstream key;
    key << static_cast<const void*>(p.unsafeGetTensorImpl());
    return key.str();
  } else {
    return static_cast<key_type>(p.unsafeGetTensorImpl());
  }
}

// The optimizer's state entry of parameter `p` (nullptr when it has none).
template <class Optimizer>
auto* optimizer_param_state(Optimizer& optimizer, const at::Tensor& p) {
  auto& state = optimizer.state();
  decltype(state.begin()->second.get()) none = nullptr;
  const auto it = state.find(optimizer_state_key(optimizer, p));
  return it == state.end() ? none : it->second.get();
}

// Removes the optimizer's state entry of parameter `p`, if any; returns
// whether there was one.
template <class Optimizer>
bool erase_optimizer_param_state(Optimizer& optimizer, const at::Tensor& p) {
  return optimizer.state().erase(optimizer_state_key(optimizer, p)) > 0;
}

}  // namespace detail
}  // namespace v0
}  // namespace simic
