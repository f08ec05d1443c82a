// The c10d group simic's collectives run on, over every supported LibTorch:
// a c10d::ProcessGroup, or from 2.0 on also a c10d::Backend. In 1.13 the
// process groups of each backend (ProcessGroupGloo, ProcessGroupNCCL) derive
// from ProcessGroup; from 2.0 they derive from Backend, and a ProcessGroup
// dispatches to them. This difference is guarded here and nowhere else.
#pragma once

#include <concepts>
#include <stdexcept>
#include <utility>
#include <vector>

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/version.h>

namespace simic {
inline namespace v0 {
namespace distributed {

class collective_group {
 public:
  collective_group() = default;
  // Any process group (1.13: every backend's, too).
  template <class G>
    requires std::derived_from<G, c10d::ProcessGroup>
  collective_group(c10::intrusive_ptr<G> g) : group_(std::move(g)) {}  // NOLINT: converting on purpose
#if TORCH_VERSION_MAJOR >= 2
  // A backend's process group (2.x: ProcessGroupGloo, ProcessGroupNCCL).
  template <class G>
    requires std::derived_from<G, c10d::Backend> && (!std::derived_from<G, c10d::ProcessGroup>)
  collective_group(c10::intrusive_ptr<G> g) : backend_(std::move(g)) {}  // NOLINT: converting on purpose
#endif

  explicit operator bool() const noexcept { return static_cast<bool>(group_) || has_backend(); }
  int rank() const { return group_ ? group_->getRank() : backend_rank(); }
  int ranks() const { return group_ ? group_->getSize() : backend_size(); }

  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& tensors) {
#if TORCH_VERSION_MAJOR >= 2
    if (backend_) return backend_->allreduce(tensors);
#endif
    return group_->allreduce(tensors);
  }
  c10::intrusive_ptr<c10d::Work> allgather(std::vector<std::vector<at::Tensor>>& out, std::vector<at::Tensor>& in) {
#if TORCH_VERSION_MAJOR >= 2
    if (backend_) return backend_->allgather(out, in);
#endif
    return group_->allgather(out, in);
  }

 private:
#if TORCH_VERSION_MAJOR >= 2
  bool has_backend() const noexcept { return static_cast<bool>(backend_); }
  int backend_rank() const { return backend_->getRank(); }
  int backend_size() const { return backend_->getSize(); }
  c10::intrusive_ptr<c10d::Backend> backend_;
#else
  static bool has_backend() noexcept { return false; }
  static int backend_rank() { return 0; }
  static int backend_size() { return 1; }
#endif
  c10::intrusive_ptr<c10d::ProcessGroup> group_;
};

}  // namespace distributed
}  // namespace v0
}  // namespace simic
