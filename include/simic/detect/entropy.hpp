// Policy-entropy floor per named action head: entropy_collapse below the
// collapse bound, entropy_low below the low bound (a collapsed head is
// reported once, as collapsed). Entropies are normalised to 0..1.
#pragma once

#include <string>

#include "simic/core/anomaly.hpp"
#include "simic/core/format.hpp"
#include "simic/core/signals.hpp"
#include "simic/core/thresholds.hpp"

namespace simic {
inline namespace v0 {

class entropy_floor {
 public:
  using category = cat::ops_normal;

  explicit entropy_floor(double collapse = defaults::entropy_collapse, double low = defaults::entropy_low)
      : collapse_(collapse), low_(low) {
    detail::require(collapse >= 0.0 && collapse <= 1.0, "simic::entropy_floor", "collapse", collapse, "[0, 1]");
    detail::require(low >= collapse && low <= 1.0, "simic::entropy_floor", "low", low, "[collapse, 1]");
  }

  void observe(const signals& s, anomaly_report& r) const {
    for (const head_entropy& h : s.entropy) {
      if (h.normalized < collapse_)
        r.add(anomaly_kind::entropy_collapse, describe(h, collapse_));
      else if (h.normalized < low_)
        r.add(anomaly_kind::entropy_low, describe(h, low_));
    }
  }

 private:
  static std::string describe(const head_entropy& h, double bound) {
    return detail::format("head '%.*s' normalised entropy %.6g < %.6g", static_cast<int>(h.head.size()),
                          h.head.data(), h.normalized, bound);
  }
  double collapse_;
  double low_;
};

}  // namespace v0
}  // namespace simic
