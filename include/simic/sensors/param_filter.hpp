// Which named parameters a sensor watches: the caller's choice, the same for
// every sensor that takes named parameters. A name is watched when it matches
// some include pattern (or there are none), matches no exclude pattern, and
// the optional predicate accepts it. Patterns are globs over the whole name:
// '*' any run of characters (dots included), '?' exactly one character.
// Needs no LibTorch.
#pragma once

#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace simic {
inline namespace v0 {

// Whole-string glob match, iterative with one backtrack point: linear in
// practice, no recursion.
inline bool glob_match(std::string_view pattern, std::string_view text) noexcept {
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

class param_filter {
 public:
  using predicate = std::function<bool(std::string_view)>;

  param_filter() = default;  // watches everything
  explicit param_filter(predicate pred) : pred_(std::move(pred)) {}

  param_filter& include(std::string pattern) {
    includes_.push_back(std::move(pattern));
    return *this;
  }
  param_filter& exclude(std::string pattern) {
    excludes_.push_back(std::move(pattern));
    return *this;
  }
  param_filter& include(std::initializer_list<std::string_view> patterns) {
    for (auto p : patterns) includes_.emplace_back(p);
    return *this;
  }
  param_filter& exclude(std::initializer_list<std::string_view> patterns) {
    for (auto p : patterns) excludes_.emplace_back(p);
    return *this;
  }

  bool operator()(std::string_view name) const {
    bool in = includes_.empty();
    for (const auto& p : includes_) in = in || glob_match(p, name);
    if (!in) return false;
    for (const auto& p : excludes_)
      if (glob_match(p, name)) return false;
    return !pred_ || pred_(name);
  }

  const std::vector<std::string>& includes() const noexcept { return includes_; }
  const std::vector<std::string>& excludes() const noexcept { return excludes_; }

 private:
  std::vector<std::string> includes_;
  std::vector<std::string> excludes_;
  predicate pred_;
};

}  // namespace v0
}  // namespace simic
