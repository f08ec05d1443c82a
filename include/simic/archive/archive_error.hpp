// The one error type for a checkpoint that cannot be trusted: a damaged or
// inconsistent zip file, a missing or malformed entry, an unknown format
// version, a checksum that does not match. Derived from std::runtime_error
// (the file is wrong, not the caller's argument); the message names what
// failed and where.
#pragma once

#include <stdexcept>
#include <string>

namespace simic {
inline namespace v0 {

struct archive_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace v0
}  // namespace simic
