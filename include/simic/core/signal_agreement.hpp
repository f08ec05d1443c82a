// The seam between a trainer's ranks and its monitor: in data-parallel
// training every rank hands its own signals to an agreement, which returns
// the job's (the same on every rank), so that every rank's monitor makes the
// same decision. simic::distributed::agreement implements it over c10d
// (docs/distributed.md); the session calls it just before each check
// (session_options::agreement). LibTorch-free.
#pragma once

#include <cstdint>
#include <vector>

#include "simic/core/anomaly.hpp"
#include "simic/core/signals.hpp"

namespace simic {
inline namespace v0 {

class signal_agreement {
 public:
  virtual ~signal_agreement() = default;
  // The job's signals from this rank's; valid until the next call. Every
  // rank calls it once per check, in the same order (it is a collective).
  virtual const signals& agree(const signals& local) = 0;
  // The ranks an anomaly of `kind` in the latest agreed signals came from.
  virtual std::vector<std::int64_t> origin_of(anomaly_kind kind) const = 0;
};

}  // namespace v0
}  // namespace simic
