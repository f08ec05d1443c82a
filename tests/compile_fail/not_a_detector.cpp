// Must not compile: `no_category` has observe() but no category tag. The
// monitor must reject it with its static_assert message.
#include "simic/detect/kl_divergence.hpp"
#include "simic/monitor.hpp"

struct no_category {
  void observe(const simic::signals&, simic::anomaly_report&) {}
};

int main() {
  simic::monitor<simic::kl_divergence, no_category> m;
  (void)m;
}
