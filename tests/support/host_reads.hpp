// Which operations a piece of code dispatches that read a tensor's value to
// the host, waiting for its device there: the structural "no host sync" check
// on the CPU, where the same code dispatches the same operations it would on
// CUDA (a tensor subclass that traps them is not available in LibTorch's C++
// API). Recorded with RecordFunction callbacks on this thread:
//
//   simic::test::host_reads r([&] { tel.step(s); guard.step(tel); });
//   CHECK(r.reads.empty());  // e.g. {"aten::item", "aten::to.device"}
//
// A read is an operation that returns a value to the host (item(),
// is_nonzero(), equal(), nonzero() and the others whose result's size or
// value the host needs), or a copy to another device: aten::to other than
// its dtype-only overload (to(device), cpu(), to(options), to(other)), and
// aten::_to_copy other than under aten::to.dtype. A dtype conversion on the
// tensor's own device (TensorIterator's promotion of a scalar) is not one.
// aten::copy_ cannot be told apart by name: the code under test makes its
// device->host copies with reduce/host_copy.hpp (non_blocking, an event).
#pragma once

#include <ATen/record_function.h>

#include <set>
#include <string>
#include <vector>

namespace simic::test {

class host_reads {
 public:
  template <class F>
  explicit host_reads(F&& f) {
    state& s = current();
    s = state{};
    s.active = true;
    const auto handle = at::addThreadLocalCallback(at::RecordFunctionCallback(&on_start, &on_end));
    try {
      f();
    } catch (...) {
      at::removeCallback(handle);
      s.active = false;
      throw;
    }
    at::removeCallback(handle);
    s.active = false;
    reads = std::move(s.reads);
    ops = std::move(s.ops);
  }

  std::vector<std::string> reads;  // the reads, as "name.overload"
  std::vector<std::string> ops;    // every operation dispatched, as "name.overload"

 private:
  struct state {
    bool active = false;
    std::vector<std::string> stack, reads, ops;
  };
  static state& current() {
    thread_local state s;
    return s;
  }
  static std::string full_name(const at::RecordFunction& fn) {
    const auto op = fn.operator_name();
    return std::string(fn.name()) + "." + (op ? op->overload_name : std::string());
  }
  static bool is_read(const std::string& name, const std::string& overload, const std::string& parent) {
    static const std::set<std::string> values{"aten::item", "aten::_local_scalar_dense", "aten::cpu",
                                              "aten::is_nonzero", "aten::equal", "aten::nonzero",
                                              "aten::allclose", "aten::masked_select", "aten::unique",
                                              "aten::_unique", "aten::_unique2", "aten::unique_consecutive",
                                              "aten::tolist", "aten::is_set_to"};
    if (values.count(name)) return true;
    if (name == "aten::to") return overload != "dtype";
    if (name == "aten::_to_copy") return parent != "aten::to.dtype";
    return false;
  }
  static std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
    state& s = current();
    if (!s.active) return nullptr;
    const std::string full = full_name(fn);
    const std::string name = fn.name();
    const std::string overload = full.substr(name.size() + 1);
    if (is_read(name, overload, s.stack.empty() ? std::string() : s.stack.back())) s.reads.push_back(full);
    s.ops.push_back(full);
    s.stack.push_back(full);
    return nullptr;
  }
  static void on_end(const at::RecordFunction&, at::ObserverContext*) {
    state& s = current();
    if (s.active && !s.stack.empty()) s.stack.pop_back();
  }
};

}  // namespace simic::test
