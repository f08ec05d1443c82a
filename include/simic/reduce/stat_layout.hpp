// The packed statistics row: one row of float64 raw accumulators per tensor,
// as every reduction back end writes it (reduce/backend.hpp) and the fused
// CUDA kernels write it on the device. Defined once, in shared code: the
// kernels compile this very text (reduce/shared_code.hpp).
//
// stat_set::basic fills sumsq..numel (the rest are 0); stat_set::full fills
// all of them; stat_set::nonfinite fills max_abs, nans, infs and numel.
#pragma once

#include "simic/reduce/shared_code.hpp"

namespace simic {
inline namespace v0 {
namespace stat {
using detail::i64;  // the row index type; the device prelude's i64
}  // namespace stat

// clang-format off
SIMIC_SHARED_CODE(stat_layout,

// Columns of the packed per-tensor stats row.
namespace stat {
enum : i64 {
  sumsq = 0,  // sum of x^2 (NaN/Inf propagate)
  max_abs,    // max |x| over non-NaN elements; 0 when there is none
  zeros,      // count of x == 0
  nans,       // count of NaN
  infs,       // count of +-Inf
  numel,      // element count
  sum,        // sum of x (full)
  min,        // min over non-NaN elements; +inf when there is none (full)
  max,        // max over non-NaN elements; -inf when there is none (full)
  m2,         // sum of (x - mean)^2 (full)
  small,      // count of |x| < request.small (full)
  large,      // count of |x| > request.large (full)
  count
};
}

)
// clang-format on

}  // namespace v0
}  // namespace simic
