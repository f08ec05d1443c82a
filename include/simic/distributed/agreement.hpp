// simic::signal_agreement over c10d: one all-gather of every rank's signals
// per check (process_group_exchange.hpp), reduced alike on every rank
// (signal_exchange.hpp). Hand it to the session
// (session_options::agreement) and every rank skips, escalates and stops
// together; anomaly events name the ranks they came from.
#pragma once

#include <memory>
#include <optional>
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
  explicit agreement(c10::intrusive_ptr<c10d::ProcessGroup> group, row_capacity cap = {},
                     torch::Device device = torch::kCPU)
      : exchange_(std::move(group), cap, device) {}

  const signals& agree(const signals& local) override {
    latest_.emplace(exchange_(local));
    return latest_->view();
  }
  std::vector<std::int64_t> origin_of(anomaly_kind kind) const override {
    return latest_ ? latest_->origin_of(kind) : std::vector<std::int64_t>{};
  }

  int rank() const { return exchange_.rank(); }
  int ranks() const { return exchange_.ranks(); }
  // Collectives so far: one per check.
  std::uint64_t collectives() const noexcept { return exchange_.collectives(); }
  // The latest job signals and their origins (absent before the first check).
  const job_signals* latest() const noexcept { return latest_ ? &*latest_ : nullptr; }

 private:
  process_group_exchange exchange_;
  std::optional<job_signals> latest_;
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
