// Plain states visit their fields as (name, field&), for equality and
// archives. A state that holds another names the inner fields under a prefix.
#pragma once

#include <string>

namespace simic {
inline namespace v0 {
namespace detail {

// Visits `nested`'s fields through `v` as (prefix + name, field&).
template <class V, class S>
void visit_nested(V& v, const std::string& prefix, S& nested) {
  nested.visit([&](const char* name, auto& field) { v((prefix + name).c_str(), field); });
}

}  // namespace detail
}  // namespace v0
}  // namespace simic
