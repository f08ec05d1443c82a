// The control: the same includes and a valid monitor compile, so the other
// cases fail for their own reason and not for a broken include path.
#include "simic/core/config.hpp"
#include "simic/detect/kl_divergence.hpp"
#include "simic/monitor.hpp"

int main() {
  simic::monitor<simic::kl_divergence> m;
  simic::config c;
  return c.should_collect<simic::cat::ops_normal>() && m.size == 1 ? 0 : 1;
}
