// The signal exchange over LibTorch's c10d: one all-gather of every rank's
// row (distributed/signal_exchange.hpp) per check, on the process group the
// trainer already uses (Gloo on CPU, NCCL on GPU: the row goes where the
// group's tensors live). Every rank gets every row and reduces them alike,
// so every rank's monitor sees the same job signals.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "simic/distributed/collective_group.hpp"
#include "simic/distributed/signal_exchange.hpp"

namespace simic {
inline namespace v0 {
namespace distributed {

// A rank that does not answer (killed, hung) fails the collective; the error
// says which group and how long it waited.
class exchange_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
// The error of a failed `collective` ("signal exchange", "gradient
// all-reduce") on `group`: this rank, the group's size, and the first line
// of c10d's message (LibTorch's may carry a stack trace).
inline exchange_error collective_failed(std::string_view collective, const collective_group& group,
                                        const std::exception& e) {
  const std::string what = e.what();
  return exchange_error("simic::distributed: the " + std::string(collective) + " of rank " +
                        std::to_string(group.rank()) + " of " + std::to_string(group.ranks()) +
                        " failed (a rank stopped or timed out): " + what.substr(0, what.find('\n')));
}
}  // namespace detail

class process_group_exchange {
 public:
  // `device`: where the group's collectives run (kCPU for Gloo, the rank's
  // CUDA device for NCCL).
  explicit process_group_exchange(collective_group group, row_capacity cap = {},
                                  torch::Device device = torch::kCPU)
      : group_(std::move(group)), cap_(cap), device_(device) {
    if (!group_) throw std::invalid_argument("simic::distributed::process_group_exchange: group is null; valid: a process group");
    const auto n = static_cast<std::int64_t>(row_size(cap_));
    const auto opts = torch::TensorOptions().dtype(torch::kFloat64).device(device_);
    send_ = torch::empty({n}, opts);
    gathered_.resize(1);
    for (int r = 0; r < group_.ranks(); ++r) gathered_[0].push_back(torch::empty({n}, opts));
  }

  int rank() const { return group_.rank(); }
  int ranks() const { return group_.ranks(); }
  const row_capacity& capacity() const noexcept { return cap_; }
  std::uint64_t collectives() const noexcept { return collectives_; }

  // This rank's signals in, the job's out; one all-gather. Throws
  // exchange_error when the collective fails (a rank died or timed out).
  job_signals operator()(const signals& local) {
    const std::vector<double> row = pack_signals(local, cap_);
    send_.copy_(torch::from_blob(const_cast<double*>(row.data()), {static_cast<std::int64_t>(row.size())},
                                 torch::kFloat64));
    std::vector<at::Tensor> in{send_};
    try {
      group_.allgather(gathered_, in)->wait();
    } catch (const std::exception& e) {
      throw detail::collective_failed("signal exchange", group_, e);
    }
    ++collectives_;
    // One copy to the host for every row (on CUDA, the one sync of the check).
    const at::Tensor host = torch::stack(gathered_[0]).to(torch::kCPU).contiguous();
    rows_.assign(host.data_ptr<double>(), host.data_ptr<double>() + host.numel());
    return reduce_signals(rows_, gathered_[0].size(), local, cap_);
  }

 private:
  collective_group group_;
  row_capacity cap_;
  torch::Device device_;
  at::Tensor send_;
  std::vector<std::vector<at::Tensor>> gathered_;
  std::vector<double> rows_;
  std::uint64_t collectives_ = 0;
};

}  // namespace distributed
}  // namespace v0
}  // namespace simic
