// Saves and loads simic state (a monitor's, or any state with visit()) through
// LibTorch's torch::serialize archives, so that simic's state travels in the
// same checkpoint file as the model and optimizer. Doubles are stored as
// float64 tensors and counters as int64 tensors: a reload is exact, and a
// resumed run continues bit for bit.
//
// Beside the fields the state carries "<prefix>.__format" (the format
// version, archive/state_checksum.hpp) and "<prefix>.__checksum" (CRC-64 of
// the version and every field); a load checks both before it changes
// anything. LibTorch's own loader checks no CRC and can crash on a damaged
// file, so load_file() and open_verified_archive() verify the whole zip
// (archive/zip_verify.hpp) and check that each storage data.pkl declares has
// a record that holds it (archive/torch_pickle.hpp) before LibTorch sees a
// byte; every read field's sizes, strides and offset are then checked
// against its storage before an element is read (the only check on an
// archive the caller opened without verification: there a zip whose records
// were renamed is not caught). Every failure is a simic::archive_error naming
// what failed; the monitor is left untouched.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <sstream>
#include <system_error>
#include <type_traits>
#include <vector>

#include <ATen/core/ivalue.h>  // complete IValue first: clang needs it for input-archive.h
#include <c10/util/Exception.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include "simic/archive/archive_error.hpp"
#include "simic/archive/state_checksum.hpp"
#include "simic/archive/torch_pickle.hpp"
#include "simic/archive/zip_verify.hpp"

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

// The bytes of storage that `t`'s elements reach: (offset + the sum over its
// dimensions of (size - 1) * stride + 1) * element size, 0 when it has no
// elements; empty when a size, stride or offset is negative or the count
// passes 64 bits. Computed from the metadata alone: no element is read.
inline std::optional<std::uint64_t> reached_bytes(const at::Tensor& t) {
  constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  for (const std::int64_t size : t.sizes())
    if (size == 0) return 0;
  if (t.storage_offset() < 0) return std::nullopt;
  std::uint64_t last = static_cast<std::uint64_t>(t.storage_offset());  // the highest element index reached
  for (std::size_t d = 0; d < t.sizes().size(); ++d) {
    const std::int64_t size = t.sizes()[d], stride = t.strides()[d];
    if (size < 0 || stride < 0) return std::nullopt;
    const auto span = static_cast<std::uint64_t>(size - 1), step = static_cast<std::uint64_t>(stride);
    if (step != 0 && span > max / step) return std::nullopt;
    if (span * step > max - last) return std::nullopt;
    last += span * step;
  }
  const auto item = static_cast<std::uint64_t>(t.element_size());
  if (last == max || last + 1 > max / item) return std::nullopt;
  return (last + 1) * item;
}

inline std::string int_list(c10::IntArrayRef v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// LibTorch takes a tensor's sizes, strides and offset from data.pkl and does
// not check them against its storage (a zip with every CRC right can have
// data.pkl edited): every element the tensor declares must lie in its storage
// before one is read. A storage without data (an empty record) holds 0
// bytes. The storage against its record: check_pickled_storages, verified
// archives only. `who` begins the message (the loader that asked).
inline void check_storage(const at::Tensor& t, const std::string& key, const char* who = "simic::load_state") {
  if (t.layout() != at::kStrided)  // a sparse tensor has no strides to check (an edited data.pkl)
    throw archive_error(std::string(who) + ": '" + key + "' is not a dense (strided) tensor");
  const bool has_data = t.has_storage() && t.storage().data_ptr().get() != nullptr;
  const std::uint64_t holds = has_data ? static_cast<std::uint64_t>(t.storage().nbytes()) : 0;
  const std::optional<std::uint64_t> needs = reached_bytes(t);
  if (needs && *needs <= holds) return;
  const std::string layout = "'" + key + "' (" + std::string(c10::toString(t.scalar_type())) + ", sizes " +
                             int_list(t.sizes()) + ", strides " + int_list(t.strides()) + ", offset " +
                             std::to_string(t.storage_offset()) + ")";
  const std::string lie = ": the archive's entries were renamed or its data.pkl edited";
  if (!needs)
    throw archive_error(std::string(who) + ": " + layout +
                        " has a negative size, stride or offset, or reaches past 2^64 bytes; its storage holds " +
                        std::to_string(holds) + lie);
  throw archive_error(std::string(who) + ": " + layout + " needs " + std::to_string(*needs) +
                      " bytes of storage; its storage holds " + std::to_string(holds) + lie);
}

// The value of a checked scalar tensor; LibTorch's own error (a c10::Error)
// as archive_error.
template <class T>
T scalar_value(const at::Tensor& t, const std::string& key) {
  check_storage(t, key);
  try {
    return t.item<T>();
  } catch (const std::exception& e) {
    throw archive_error("simic::load_state: '" + key + "' cannot be read: " + e.what());
  }
}

struct archive_reader {
  torch::serialize::InputArchive& ar;
  const std::string& prefix;

  // The tensor under `name`, of `type`, a scalar or a vector, whose storage
  // holds every element it declares; contiguous.
  at::Tensor read(const char* name, at::ScalarType type, bool scalar) const {
    const std::string key = archive_key(prefix, name);
    at::Tensor t;
    try {
      ar.read(key, t);
    } catch (const std::exception&) {
      throw archive_error("simic::load_state: archive lacks '" + key + "'");
    }
    if (t.scalar_type() != type || (scalar ? t.dim() != 0 : t.dim() != 1))
      throw archive_error("simic::load_state: '" + key + "' has dtype " +
                                  std::string(c10::toString(t.scalar_type())) + " and " + std::to_string(t.dim()) +
                                  " dims; expected " + std::string(c10::toString(type)) +
                                  (scalar ? " scalar" : " vector"));
    check_storage(t, key);
    try {
      return t.contiguous();
    } catch (const std::exception& e) {
      throw archive_error("simic::load_state: '" + key + "' cannot be read: " + e.what());
    }
  }
  void operator()(const char* name, double& v) const {
    v = scalar_value<double>(read(name, at::kDouble, true), archive_key(prefix, name));
  }
  template <class U>
    requires std::is_integral_v<U>
  void operator()(const char* name, U& v) const {
    const auto raw =
        static_cast<std::uint64_t>(scalar_value<std::int64_t>(read(name, at::kLong, true), archive_key(prefix, name)));
    if constexpr (sizeof(U) < sizeof(std::uint64_t)) {
      if (raw > static_cast<std::uint64_t>(std::numeric_limits<U>::max()))
        throw archive_error("simic::load_state: '" + archive_key(prefix, name) + "' = " +
                                    std::to_string(raw) + " is out of range for its field");
    }
    v = static_cast<U>(raw);
  }
  void operator()(const char* name, std::vector<double>& v) const {
    const at::Tensor t = read(name, at::kDouble, false);
    if (t.numel() == 0) {
      v.clear();
      return;
    }
    const double* p = t.data_ptr<double>();
    v.assign(p, p + t.numel());
  }
};

inline constexpr const char* format_name = "__format";
inline constexpr const char* checksum_name = "__checksum";

inline void write_int64(torch::serialize::OutputArchive& ar, const std::string& key, std::int64_t v) {
  ar.write(key, at::full({}, v, at::TensorOptions().dtype(at::kLong)));
}

// The saved format version, checked before any field is read.
inline void check_format(torch::serialize::InputArchive& ar, const std::string& prefix) {
  const std::string key = archive_key(prefix, format_name);
  at::Tensor t;
  if (!ar.try_read(key, t))
    throw archive_error("simic::load_state: archive lacks '" + key +
                        "': it is unversioned, written before simic saved a format version and checksum, or "
                        "not simic state under prefix '" + prefix + "'; save it again with this version");
  if (t.scalar_type() != at::kLong || t.dim() != 0)
    throw archive_error("simic::load_state: '" + key + "' is not an int64 scalar");
  const std::int64_t v = scalar_value<std::int64_t>(t, key);
  if (v > state_format_version)
    throw archive_error("simic::load_state: '" + key + "' = " + std::to_string(v) +
                        ": written by a newer simic (this one reads format " + std::to_string(state_format_version) +
                        ")");
  if (v != state_format_version)
    throw archive_error("simic::load_state: '" + key + "' = " + std::to_string(v) + " is not a format this simic reads (" +
                        std::to_string(state_format_version) + ")");
}

inline std::uint64_t read_checksum(torch::serialize::InputArchive& ar, const std::string& prefix) {
  const std::string key = archive_key(prefix, checksum_name);
  at::Tensor t;
  if (!ar.try_read(key, t)) throw archive_error("simic::load_state: archive lacks '" + key + "'");
  if (t.scalar_type() != at::kLong || t.dim() != 0)
    throw archive_error("simic::load_state: '" + key + "' is not an int64 scalar");
  return static_cast<std::uint64_t>(scalar_value<std::int64_t>(t, key));
}

inline std::string hex64(std::uint64_t v) {
  std::ostringstream os;
  os << "0x" << std::hex << v;
  return os.str();
}

}  // namespace detail

// Any state with `visit(v)` calling v(name, field&) for double, integer and
// std::vector<double> fields: writes the format version, the checksum and
// the fields.
template <class State>
void save_state(torch::serialize::OutputArchive& ar, State st, const std::string& prefix = "simic") {
  detail::write_int64(ar, detail::archive_key(prefix, detail::format_name), state_format_version);
  detail::write_int64(ar, detail::archive_key(prefix, detail::checksum_name),
                      static_cast<std::int64_t>(state_checksum(st)));
  st.visit(detail::archive_writer{ar, prefix});
}

// Checks the format version, reads into a copy and checks the checksum of
// what it read; only then assigns. Any failure throws archive_error and
// leaves `st` unchanged.
template <class State>
void load_state(torch::serialize::InputArchive& ar, State& st, const std::string& prefix = "simic") {
  detail::check_format(ar, prefix);
  const std::uint64_t saved = detail::read_checksum(ar, prefix);
  State copy = st;
  copy.visit(detail::archive_reader{ar, prefix});
  const std::uint64_t read = state_checksum(copy);
  if (read != saved)
    throw archive_error("simic::load_state: checksum of the fields under '" + prefix + "' is " + detail::hex64(read) +
                        ", the archive's '" + detail::archive_key(prefix, detail::checksum_name) + "' says " +
                        detail::hex64(saved) + ": the archive is damaged or was edited");
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

// Verified files. Reads all of `path`, verifies it as a zip (every CRC-32,
// offset and size) and each storage data.pkl declares against its record's
// size (check_pickled_storages), and only then lets LibTorch parse the
// verified bytes, so the file cannot change between check and load.
// Memory: the file's size once more while LibTorch loads. A LibTorch error
// on verified bytes (a valid zip that is no torch archive) is rethrown as
// archive_error.
namespace detail {

// LibTorch's messages rarely say which record they could not read. After it
// refused a verified zip, this names the record where simic can tell on its
// own: a missing or unreadable version record, a pickle simic cannot follow;
// failing those, the objects of data.pkl built from the classes in code/
// (a name edited in data.pkl, a class source damaged).
inline std::string libtorch_failure_record(std::span<const std::uint8_t> zip, const zip_listing& listing) {
  if (listing.entries.empty()) return "; the zip has no records";
  const std::string& first = listing.entries.front().name;
  const std::string root = first.substr(0, first.find('/') + 1);
  const zip_entry* version = nullptr;
  for (const zip_entry& e : listing.entries)
    if (e.name == root + "version" || e.name == root + ".data/version") version = &e;
  if (version == nullptr) return "; the zip has no record '" + root + "version'";
  std::vector<std::uint8_t> buffer;
  try {
    const auto v = entry_data(zip, *version, buffer);
    std::size_t digits = 0;
    while (digits < v.size() && v[digits] >= '0' && v[digits] <= '9') ++digits;
    if (digits == 0 || digits > 18)
      return "; record '" + version->name + "' holds no version number";
    for (const zip_entry& e : listing.entries) {
      const bool pickle = e.name.ends_with(".pkl") || e.name.ends_with("_pkl");
      if (!pickle) continue;
      try {
        pickled_storages(entry_data(zip, e, buffer));
      } catch (const archive_error& x) {
        return "; record '" + e.name + "' is no pickle LibTorch can follow (" + x.what() + ")";
      }
    }
  } catch (const archive_error&) {  // an entry that inflates differently now: verify_zip checked it
    return {};
  }
  return "; LibTorch was building the objects of '" + root + "data.pkl' from the classes in '" + root + "code/'";
}

}  // namespace detail

inline torch::serialize::InputArchive open_verified_archive(std::span<const std::uint8_t> bytes) {
  const zip_listing listing = verify_zip(bytes);
  check_pickled_storages(bytes, listing);
  torch::serialize::InputArchive ar;
  std::string why;
  try {
    ar.load_from(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return ar;
  } catch (const c10::Error& e) {  // its message without LibTorch's C++ backtrace
    why = e.what_without_backtrace();
  } catch (const std::exception& e) {
    why = e.what();
  }
  throw archive_error("simic::open_verified_archive: LibTorch cannot read the verified zip: " + why +
                      detail::libtorch_failure_record(bytes, listing));
}

inline std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw archive_error("simic::read_file_bytes: cannot open '" + path.string() + "'");
  const std::streamoff size = f.tellg();
  if (size < 0) throw archive_error("simic::read_file_bytes: cannot size '" + path.string() + "'");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  f.seekg(0);
  if (!f.read(reinterpret_cast<char*>(bytes.data()), size))
    throw archive_error("simic::read_file_bytes: read " + std::to_string(f.gcount()) + " of " + std::to_string(size) +
                        " bytes of '" + path.string() + "'");
  return bytes;
}

inline torch::serialize::InputArchive open_verified_archive(const std::filesystem::path& path) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  try {
    return open_verified_archive(std::span<const std::uint8_t>(bytes));
  } catch (const archive_error& e) {
    throw archive_error("'" + path.string() + "': " + e.what());
  }
}

// Saves `m` alone to `path`: written to "<path>.tmp" and renamed over
// `path`, so a crash while saving leaves the previous checkpoint whole.
template <class Monitor>
  requires requires(Monitor& m) { m.load(m.state()); }
void save_file(const std::filesystem::path& path, const Monitor& m, const std::string& prefix = "simic") {
  torch::serialize::OutputArchive ar;
  save(ar, m, prefix);
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  ar.save_to(tmp.string());
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw archive_error("simic::save_file: cannot rename '" + tmp.string() + "' to '" + path.string() + "': " + ec.message());
}

// Loads `m` from a file written by save_file (or any torch archive holding
// simic state under `prefix`), verified first; all or nothing.
template <class Monitor>
  requires requires(Monitor& m) { m.load(m.state()); }
void load_file(const std::filesystem::path& path, Monitor& m, const std::string& prefix = "simic") {
  torch::serialize::InputArchive ar = open_verified_archive(path);
  try {
    load(ar, m, prefix);
  } catch (const archive_error& e) {
    throw archive_error("'" + path.string() + "': " + e.what());
  }
}

}  // namespace v0
}  // namespace simic
