// The core through simic::core: a KL divergence of 0.2 is a kl_spike under
// simic's defaults (as in packaging_test.sh's use.cpp). Exit 0 when reported.
#include <simic/simic.hpp>

int main() {
  simic::default_monitor m;
  simic::signals s;
  s.approx_kl = 0.2;
  return m.check(s).report.has(simic::anomaly_kind::kl_spike) ? 0 : 1;
}
