// Must not compile: a misspelt category tag is a compile error.
#include "simic/core/config.hpp"

int main() {
  simic::config c;
  return c.should_collect<simic::cat::ops_nromal>() ? 0 : 1;
}
