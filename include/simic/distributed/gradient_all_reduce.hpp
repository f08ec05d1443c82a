// The gradient all-reduce of data-parallel training, as DDP makes it (every
// rank's gradients summed, divided by the ranks), in one collective on the
// trainer's process group, which also carries an agreement's rows: the
// job's signals then cost no collective of their own (docs/distributed.md).
// LibTorch's C++ API has no DDP module; this is the part of it a trainer
// needs, with simic's rows in the same buffer.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "simic/distributed/agreement.hpp"

namespace simic {
inline namespace v0 {
namespace distributed {

struct gradient_all_reduce_options {
  // Before the sum, count each rank's non-finite gradient elements (one more
  // read of the gradients: their sum, and a count only when it is not
  // finite) and carry them: a NaN on one rank makes the sum
  // NaN on every rank, and this names the rank it came from
  // (anomaly_event::origin_ranks). Off: every rank is named.
  bool locate_nonfinite = true;
};

// This rank's gradients (flattened) before the sum, as far as the agreement
// needs them: non-finite counts, with a NaN norm when there are any, else an
// empty signal (the job's gradient figures are the averaged ones). A finite
// sum means finite elements (one vectorized pass, ~10x faster here than
// isfinite().all()); an infinite one may be an overflow, so only then are
// the elements counted.
inline gradient_signal nonfinite_gradients(const at::Tensor& flat) {
  gradient_signal s;
  if (std::isfinite(flat.sum().item<double>())) return s;
  s.nan_count = static_cast<std::uint64_t>(torch::isnan(flat).sum().item<std::int64_t>());
  s.inf_count = static_cast<std::uint64_t>(torch::isinf(flat).sum().item<std::int64_t>());
  if (s.nan_count + s.inf_count > 0) s.total_norm = std::numeric_limits<double>::quiet_NaN();
  return s;
}

class gradient_all_reduce {
 public:
  // `carried`: the agreement whose rows ride along (null: gradients only).
  explicit gradient_all_reduce(collective_group group,
                               std::shared_ptr<agreement> carried = nullptr, gradient_all_reduce_options o = {})
      : group_(std::move(group)), carried_(std::move(carried)), opts_(o) {
    if (!group_)
      throw std::invalid_argument("simic::distributed::gradient_all_reduce: group is null; valid: a process group");
  }

  // Averages the gradients of `params` over the ranks, in place (parameters
  // without a gradient are left out; every rank must have the same ones, of
  // one floating dtype, on one device). `local`: this check's signals but
  // gradients and update ratio (session::held_signals()), carried for the
  // agreement's next agree(); required when there is an agreement, ignored
  // otherwise. Throws exchange_error when the collective fails (a rank
  // stopped or timed out), std::invalid_argument on bad input.
  void operator()(const std::vector<at::Tensor>& params, const signals* local = nullptr) {
    constexpr const char* where = "simic::distributed::gradient_all_reduce";
    if (carried_ && !local)
      throw std::invalid_argument(std::string(where) + ": local is null; valid: this check's signals (an agreement rides along)");
    std::vector<at::Tensor> grads;
    std::int64_t n = 0;
    for (const at::Tensor& p : params)
      if (p.defined() && p.grad().defined()) {
        const at::Tensor& g = p.grad();
        if (!grads.empty() && (g.scalar_type() != grads[0].scalar_type() || g.device() != grads[0].device()))
          throw std::invalid_argument(std::string(where) + ": gradients of several dtypes or devices; valid: one of each");
        grads.push_back(g);
        n += g.numel();
      }
    if (grads.empty()) throw std::invalid_argument(std::string(where) + ": params = no gradients; valid: at least one");
    const auto dtype = grads[0].scalar_type();
    if (dtype != torch::kFloat32 && dtype != torch::kFloat64)
      throw std::invalid_argument(std::string(where) + ": gradient dtype = " + c10::toString(dtype) +
                                  "; valid: Float or Double");
    const std::int64_t rows = carried_ ? carried_->carried_elements(dtype) : 0;
    if (!flat_.defined() || flat_.numel() != n + rows || flat_.scalar_type() != dtype ||
        flat_.device() != grads[0].device())
      flat_ = torch::empty({n + rows}, grads[0].options());
    const at::Tensor sum = flat_.narrow(0, 0, n);
    std::int64_t at = 0;
    for (const at::Tensor& g : grads) {
      sum.narrow(0, at, g.numel()).copy_(g.reshape({-1}));
      at += g.numel();
    }
    if (carried_) {
      signals carried = *local;
      if (opts_.locate_nonfinite) carried.gradients = nonfinite_gradients(sum);
      carried_->carry(carried, flat_.narrow(0, n, rows));
    }
    std::vector<at::Tensor> buffers{flat_};
    try {
      group_.allreduce(buffers)->wait();
    } catch (const std::exception& e) {
      throw detail::collective_failed("gradient all-reduce", group_, e);
    }
    ++collectives_;
    if (carried_) carried_->receive(flat_.narrow(0, n, rows));
    sum.div_(static_cast<double>(group_.ranks()));
    at = 0;
    for (const at::Tensor& g : grads) {
      g.copy_(sum.narrow(0, at, g.numel()).view_as(g));
      at += g.numel();
    }
  }

  std::uint64_t collectives() const noexcept { return collectives_; }

 private:
  collective_group group_;
  std::shared_ptr<agreement> carried_;
  gradient_all_reduce_options opts_;
  at::Tensor flat_;  // the gradients, then the rows
  std::uint64_t collectives_ = 0;
};

}  // namespace distributed
}  // namespace v0
}  // namespace simic
