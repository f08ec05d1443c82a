// Saves and loads simic state (a monitor's, or any state with visit()) through
// LibTorch's torch::serialize archives, so that simic's state travels in the
// same checkpoint file as the model and optimizer. Doubles are stored as
// float64 tensors and counters as int64 tensors: a reload is exact, and a
// resumed run continues bit for bit.
#pragma once

#include <bit>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

namespace simic {
inline namespace v0 {
namespace detail {

inline std::string archive_key(const std::string& prefix, const char* name) { return prefix + "." + name; }

struct archive_writer {
  torch::serialize::OutputArchive& ar;
  const std::string& prefix;
  void operator()(const char* name, double& v) const {
    ar.write(archive_key(prefix, name), at::full({}, v, at::TensorOptions().dtype(at::kDouble)));
  }
  template <class U>
    requires std::is_integral_v<U>
  void operator()(const char* name, U& v) const {
    // uint64 counters are stored bit for bit in an int64 tensor
    ar.write(archive_key(prefix, name),
             at::full({}, static_cast<std::int64_t>(static_cast<std::uint64_t>(v)), at::TensorOptions().dtype(at::kLong)));
  }
  void operator()(const char* name, std::vector<double>& v) const {
    at::Tensor t = at::empty({static_cast<std::int64_t>(v.size())}, at::TensorOptions().dtype(at::kDouble));
    for (std::size_t i = 0; i < v.size(); ++i) t.data_ptr<double>()[i] = v[i];
    ar.write(archive_key(prefix, name), t);
  }
};

struct archive_reader {
  torch::serialize::InputArchive& ar;
  const std::string& prefix;

  at::Tensor read(const char* name, at::ScalarType type, bool scalar) const {
    const std::string key = archive_key(prefix, name);
    at::Tensor t;
    try {
      ar.read(key, t);
    } catch (const std::exception&) {
      throw std::invalid_argument("simic::load_state: archive lacks '" + key + "'");
    }
    if (t.scalar_type() != type || (scalar ? t.dim() != 0 : t.dim() != 1))
      throw std::invalid_argument("simic::load_state: '" + key + "' has dtype " +
                                  std::string(c10::toString(t.scalar_type())) + " and " + std::to_string(t.dim()) +
                                  " dims; expected " + std::string(c10::toString(type)) +
                                  (scalar ? " scalar" : " vector"));
    return t.contiguous();
  }
  void operator()(const char* name, double& v) const { v = read(name, at::kDouble, true).item<double>(); }
  template <class U>
    requires std::is_integral_v<U>
  void operator()(const char* name, U& v) const {
    const auto raw = static_cast<std::uint64_t>(read(name, at::kLong, true).item<std::int64_t>());
    if constexpr (sizeof(U) < sizeof(std::uint64_t)) {
      if (raw > static_cast<std::uint64_t>(std::numeric_limits<U>::max()))
        throw std::invalid_argument("simic::load_state: '" + archive_key(prefix, name) + "' = " +
                                    std::to_string(raw) + " is out of range for its field");
    }
    v = static_cast<U>(raw);
  }
  void operator()(const char* name, std::vector<double>& v) const {
    const at::Tensor t = read(name, at::kDouble, false);
    v.assign(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
  }
};

}  // namespace detail

// Any state with `visit(v)` calling v(name, field&) for double, integer and
// std::vector<double> fields.
template <class State>
void save_state(torch::serialize::OutputArchive& ar, State st, const std::string& prefix = "simic") {
  st.visit(detail::archive_writer{ar, prefix});
}

// Reads into a copy, so a missing or malformed entry leaves `st` unchanged.
template <class State>
void load_state(torch::serialize::InputArchive& ar, State& st, const std::string& prefix = "simic") {
  State copy = st;
  copy.visit(detail::archive_reader{ar, prefix});
  st = std::move(copy);
}

// A monitor (anything with state() and load(state)): all or nothing.
template <class Monitor>
  requires requires(Monitor& m) { m.load(m.state()); }
void save(torch::serialize::OutputArchive& ar, const Monitor& m, const std::string& prefix = "simic") {
  save_state(ar, m.state(), prefix);
}
template <class Monitor>
  requires requires(Monitor& m) { m.load(m.state()); }
void load(torch::serialize::InputArchive& ar, Monitor& m, const std::string& prefix = "simic") {
  auto st = m.state();
  load_state(ar, st, prefix);
  m.load(st);
}

}  // namespace v0
}  // namespace simic
