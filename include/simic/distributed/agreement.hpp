// simic::signal_agreement over c10d: every rank's signals reduced alike on
// every rank (signal_exchange.hpp), moved either by one all-gather of their
// own per check (process_group_exchange.hpp) or, at no collective of their
// own, in slots of the gradient all-reduce the trainer makes anyway
// (carry() / receive(); gradient_all_reduce.hpp does both). Hand it to the
// session (session_options::agreement) and every rank skips, escalates and
// stops together; anomaly events name the ranks they came from.
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "simic/core/signal_agreement.hpp"
#include "simic/distributed/process_group_exchange.hpp"
#include "simic/session.hpp"

namespace simic {
inline namespace v0 {
namespace distributed {

class agreement final : public signal_agreement {
 public:
  explicit agreement(collective_group group, row_capacity cap = {},
                     torch::Device device = torch::kCPU)
      : exchange_(std::move(group), cap, device) {}

  // The job's signals: from the rows receive() took, else from an all-gather.
  const signals& agree(const signals& local) override {
    if (!received_) {
      latest_.emplace(exchange_(local));
      return latest_->view();
    }
    received_ = false;
    job_signals job = reduce_signals(rows_, static_cast<std::size_t>(ranks()), local, capacity());
    job.adopt_shared(local);
    const signal_set had = signal_set::of(local), got = signal_set::of(job.view());
    for (unsigned f = 0; f < signal_set::field_count; ++f)
      if (had.contains(static_cast<signal_set::field>(f)) && !got.contains(static_cast<signal_set::field>(f)))
        throw std::invalid_argument("simic::distributed::agreement::agree: " +
                                    std::string(signal_set::name(static_cast<signal_set::field>(f))) +
                                    " is in the check but no rank carried it; carry() takes every figure of the "
                                    "check but those measured after the all-reduce (" + after_sync_names() +
                                    "; session::held_signals() leaves them out)");
    latest_.emplace(std::move(job));
    return latest_->view();
  }
  std::vector<std::int64_t> origin_of(anomaly_kind kind) const override {
    return latest_ ? latest_->origin_of(kind) : std::vector<std::int64_t>{};
  }

  // ---- the rows carried by the trainer's gradient all-reduce ----------------
  // Elements the rows take at the end of an all-reduce buffer of `dtype`
  // (kFloat32: a float pair per double, encode_float_pairs; kFloat64).
  std::int64_t carried_elements(torch::ScalarType dtype) const {
    require_carrier_dtype(dtype, "carried_elements");
    return static_cast<std::int64_t>(ranks()) * static_cast<std::int64_t>(row_size(capacity())) *
           (dtype == torch::kFloat32 ? 2 : 1);
  }
  // Before the all-reduce (ReduceOp::SUM, not averaged): this rank's row in
  // its slot of `region` (carried_elements() long, contiguous), zeros in the
  // others'. `local`: the check's signals but those measured after the
  // all-reduce (gradients, update ratio); session::held_signals() makes them.
  void carry(const signals& local, const at::Tensor& region) const {
    check_region(region, "carry");
    const std::vector<double> row = pack_signals(local, capacity());
    const auto n = static_cast<std::int64_t>(row.size());
    // On the host, written in place; on a device, staged and copied once.
    const at::Tensor host =
        region.is_cpu() ? region : torch::empty({region.numel()}, region.options().device(torch::kCPU));
    host.zero_();
    if (region.scalar_type() == torch::kFloat32)
      encode_float_pairs(row, std::span<float>(host.data_ptr<float>() + 2 * n * rank(), 2 * row.size()));
    else
      std::copy(row.begin(), row.end(), host.data_ptr<double>() + n * rank());
    if (!region.is_cpu()) region.copy_(host);
  }
  // After the all-reduce: every rank's row, which the next agree() reduces
  // instead of exchanging.
  void receive(const at::Tensor& region) {
    check_region(region, "receive");
    const at::Tensor host = region.to(torch::kCPU).contiguous();
    rows_.resize(static_cast<std::size_t>(ranks()) * row_size(capacity()));
    if (host.scalar_type() == torch::kFloat32)
      decode_float_pairs(std::span<const float>(host.data_ptr<float>(), 2 * rows_.size()), rows_);
    else
      std::copy_n(host.data_ptr<double>(), rows_.size(), rows_.begin());
    received_ = true;
  }

  int rank() const { return exchange_.rank(); }
  int ranks() const { return exchange_.ranks(); }
  const row_capacity& capacity() const noexcept { return exchange_.capacity(); }
  // Collectives of its own so far: one per check not carried.
  std::uint64_t collectives() const noexcept { return exchange_.collectives(); }
  // The latest job signals and their origins (absent before the first check).
  const job_signals* latest() const noexcept { return latest_ ? &*latest_ : nullptr; }

 private:
  static void require_carrier_dtype(torch::ScalarType t, const char* fn) {
    if (t != torch::kFloat32 && t != torch::kFloat64)
      simic::detail::throw_invalid(std::string("simic::distributed::agreement::") + fn, "dtype",
                                   std::string(c10::toString(t)), "Float or Double");
  }
  // "gradients, update_ratio, host_module_ratio": what each rank measures after the sync.
  static std::string after_sync_names() {
    std::string out(signal_set::name(signal_set::gradients));
    for (const scalar_signal& f : scalar_signals)
      if (f.after_sync) out.append(", ").append(f.name());
    return out;
  }
  void check_region(const at::Tensor& region, const char* fn) const {
    require_carrier_dtype(region.scalar_type(), fn);
    const std::int64_t want = carried_elements(region.scalar_type());
    if (region.dim() != 1 || region.numel() != want || !region.is_contiguous())
      simic::detail::throw_invalid(std::string("simic::distributed::agreement::") + fn, "region",
                                   "shape [" + std::to_string(region.numel()) + "]" +
                                       (region.is_contiguous() ? "" : ", not contiguous"),
                                   "a contiguous 1-d tensor of carried_elements() = " + std::to_string(want));
  }

  process_group_exchange exchange_;
  std::optional<job_signals> latest_;
  std::vector<double> rows_;  // received, not yet agreed on
  bool received_ = false;
};

// Where a data-parallel job's events go.
enum class event_ranks {
  every_rank,  // each rank writes its own sinks; every event carries its rank
  rank0,       // only rank 0 has sinks: the job's anomalies (with their origin ranks) in one file
};

// `o` for this rank of a job checking through `a`: the agreement set, the
// rank in every event's context.
inline session_options rank_options(session_options o, std::shared_ptr<agreement> a) {
  o.hub.context.rank = a->rank();
  o.agreement = std::move(a);
  return o;
}

// The sinks this rank's session gets under `policy`: all of them, or none
// on ranks other than 0 with event_ranks::rank0.
template <class SinkList>
SinkList rank_sinks(event_ranks policy, int rank, SinkList sinks) {
  if (policy == event_ranks::rank0 && rank != 0) sinks.clear();
  return sinks;
}

}  // namespace distributed
}  // namespace v0
}  // namespace simic
