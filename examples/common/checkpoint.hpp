// Whole-run checkpoints of the example trainers (docs/trainer.md, "Recovery
// and resume"): one torch archive holding the model, the optimizer and the
// LibTorch RNG (simic::capture_training_state), the session
// (simic::save_session), the recovery guard (recovery::save) and the
// trainer's own state, written atomically (PATH.tmp, fsync, rename), and
// read back verified (zip CRCs, storages: simic::open_verified_archive)
// before anything of it is used. A checkpoint names its trainer and the
// options that define its run; a resumed run must have the same.
//
// The trainer's own state goes through state_writer / state_reader: one
// visit function a trainer writes once (`v(name, field)`, and
// `v.records(name, vector, fields)` for vectors of records, stored column
// by column) serves both directions. Doubles are stored as float64 and
// counters as int64, so a reload is exact; every read checks its type and
// size and throws simic::archive_error naming the key.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>  // complete IValue first: clang needs it for input-archive.h
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include "simic/archive/archive_error.hpp"
#include "simic/archive/torch_archive.hpp"
#include "simic/core/anomaly.hpp"
#include "simic/core/level.hpp"
#include "simic/recovery/training_state.hpp"
#include "simic/session_state.hpp"
#include "recovery_options.hpp"
#include "summary.hpp"
#include "text.hpp"

namespace examples_common {

// The format of the checkpoint's own entries ("checkpoint.*"); bumped when
// they or a trainer's state change.
inline constexpr std::int64_t checkpoint_format = 1;

// What a checkpoint says about itself.
struct checkpoint_header {
  std::string trainer;             // "char_lm", "ppo_lstm"
  std::uint64_t position = 0;      // steps (char_lm) or updates (ppo_lstm) done
  std::uint64_t events_before = 0; // events the writing process had emitted before it
  std::string events_file;         // that process's --events file, absolute ("" : none)
  run_definition definition;
};

// FNV-1a (64 bits) of the bytes of `tensors` in order (each as contiguous
// CPU memory): equal exactly when every weight is bitwise equal (barring a
// collision).
inline std::uint64_t weights_digest(const std::vector<at::Tensor>& tensors) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const at::Tensor& t : tensors) {
    const at::Tensor c = t.detach().cpu().contiguous();
    const auto* p = static_cast<const unsigned char*>(c.data_ptr());
    const std::size_t n = static_cast<std::size_t>(c.numel()) * c.element_size();
    for (std::size_t i = 0; i < n; ++i) {
      h ^= p[i];
      h *= 0x100000001b3ull;
    }
  }
  return h;
}

// "0x" and 16 hex digits.
inline std::string hex_digest(std::uint64_t d) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(d));
  return buf;
}

// Writes `bytes` to PATH.tmp, flushes it to the disk (fsync) and renames it
// over PATH, so that PATH is always a whole file: the previous one or this
// one. Returns "" or what failed (the tmp file removed, PATH untouched).
inline std::string write_file_atomically(const std::filesystem::path& path, std::string_view bytes) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  const auto failed = [&](const char* what) {
    const std::string msg = std::string(what) + " '" + tmp.string() + "': " + std::strerror(errno);
    return msg;
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return failed("cannot create");
  std::string err;
  std::size_t done = 0;
  while (done < bytes.size() && err.empty()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) err = failed("cannot write");
    else done += static_cast<std::size_t>(n);
  }
  if (err.empty() && ::fsync(fd) != 0) err = failed("cannot sync");
  if (::close(fd) != 0 && err.empty()) err = failed("cannot close");
  if (err.empty()) {
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) err = "cannot rename '" + tmp.string() + "' to '" + path.string() + "': " + ec.message();
  }
  if (!err.empty()) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
  }
  return err;
}

// --checkpoint's file must be writable: its directory exists (created if
// missing) and takes files. Else "--checkpoint: ..." (a usage error).
inline void check_checkpoint_path(const std::string& path) {
  if (path.empty()) throw std::invalid_argument("--checkpoint: the path is empty");
  const std::filesystem::path p(path);
  if (p.filename().empty()) throw std::invalid_argument("--checkpoint: '" + path + "' names a directory, not a file");
  std::error_code ec;
  if (std::filesystem::is_directory(p, ec))
    throw std::invalid_argument("--checkpoint: '" + path + "' is a directory; name a file");
  std::filesystem::path dir = p.parent_path();
  if (dir.empty()) dir = ".";
  std::filesystem::create_directories(dir, ec);
  if (!std::filesystem::is_directory(dir))
    throw std::invalid_argument("--checkpoint: cannot create the directory '" + dir.string() + "'" +
                                (ec ? ": " + ec.message() : std::string()));
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw std::invalid_argument("--checkpoint: cannot write in '" + dir.string() + "': " + std::strerror(errno));
}

// The absolute, normalised form of `path` ("" stays ""): how a checkpoint
// records its events file, and how a resumed run compares its own with it.
inline std::string absolute_path(const std::string& path) {
  if (path.empty()) return path;
  std::error_code ec;
  std::filesystem::path p = std::filesystem::weakly_canonical(std::filesystem::absolute(path), ec);
  if (ec) p = std::filesystem::absolute(path).lexically_normal();
  return p.string();
}

namespace detail {

inline at::Tensor int64_scalar(std::int64_t v) { return at::full({}, v, at::TensorOptions().dtype(at::kLong)); }
inline at::Tensor double_scalar(double v) { return at::full({}, v, at::TensorOptions().dtype(at::kDouble)); }

template <class T>
at::Tensor vector_tensor(const std::vector<T>& v, at::ScalarType type) {
  at::Tensor t = at::empty({static_cast<std::int64_t>(v.size())}, at::TensorOptions().dtype(type));
  if (!v.empty()) std::memcpy(t.data_ptr(), v.data(), v.size() * sizeof(T));
  return t;
}

inline c10::IValue string_list(const std::vector<std::string>& v) {
  c10::List<std::string> l;
  for (const auto& s : v) l.push_back(s);
  return c10::IValue(l);
}

template <class T>
inline constexpr bool is_integer_v = std::is_integral_v<T> && !std::is_same_v<T, bool>;

// Record fields stored as strings: what they name, not a number that could
// mean another thing in another build.
template <class T>
inline constexpr bool is_named_v = std::is_same_v<T, std::string> || std::is_same_v<T, simic::level> ||
                                   std::is_same_v<T, simic::severity> || std::is_same_v<T, simic::anomaly_kind>;

template <class T>
std::string name_of(const T& v) {
  if constexpr (std::is_same_v<T, std::string>) return v;
  else return std::string(simic::to_string(v));
}

template <class T>
T from_name(const std::string& s, const std::string& key) {
  if constexpr (std::is_same_v<T, std::string>) {
    return s;
  } else {
    try {
      if constexpr (std::is_same_v<T, simic::level>) return simic::parse_level(s);
      else if constexpr (std::is_same_v<T, simic::severity>) return simic::parse_severity(s);
      else return simic::parse_anomaly_kind(s);
    } catch (const std::exception& e) {
      throw simic::archive_error("'" + key + "' holds '" + s + "': " + e.what());
    }
  }
}

// A column of a vector of records: int64, float64 or text.
struct column {
  enum kind_t { none, integers, reals, texts } kind = none;
  std::vector<std::int64_t> i;
  std::vector<double> d;
  std::vector<std::string> s;
};

}  // namespace detail

// Writes a trainer's fields under "<prefix>.<name>".
class state_writer {
 public:
  state_writer(torch::serialize::OutputArchive& ar, std::string prefix) : ar_(ar), prefix_(std::move(prefix)) {}

  template <class T>
  void operator()(const std::string& name, const T& v) {
    const std::string key = prefix_ + "." + name;
    if constexpr (std::is_same_v<T, bool> || detail::is_integer_v<T>) {
      ar_.write(key, detail::int64_scalar(static_cast<std::int64_t>(v)));
    } else if constexpr (std::is_same_v<T, double>) {
      ar_.write(key, detail::double_scalar(v));
    } else if constexpr (detail::is_named_v<T>) {
      ar_.write(key, c10::IValue(detail::name_of(v)));
    } else if constexpr (std::is_same_v<T, std::vector<double>>) {
      ar_.write(key, detail::vector_tensor(v, at::kDouble));
    } else if constexpr (std::is_same_v<T, std::deque<double>>) {
      ar_.write(key, detail::vector_tensor(std::vector<double>(v.begin(), v.end()), at::kDouble));
    } else if constexpr (std::is_same_v<T, std::vector<float>>) {
      ar_.write(key, detail::vector_tensor(v, at::kFloat));
    } else if constexpr (std::is_same_v<T, std::vector<int>>) {
      ar_.write(key, detail::vector_tensor(std::vector<std::int64_t>(v.begin(), v.end()), at::kLong));
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      ar_.write(key, detail::string_list(v));
    } else if constexpr (std::is_same_v<T, std::mt19937_64> || std::is_same_v<T, std::mt19937>) {
      std::ostringstream out;
      out << v;
      ar_.write(key, c10::IValue(out.str()));
    } else if constexpr (std::is_same_v<T, at::Tensor>) {
      ar_.write(key, v.detach().cpu().contiguous());
    } else {
      static_assert(sizeof(T) == 0, "state_writer: a field of a type it does not store");
    }
  }

  // A vector of records, column by column: `fields(v, record)` calls
  // v(name, field) for each field (integers, bools, doubles, strings,
  // levels, severities, anomaly kinds).
  template <class R, class F>
  void records(const std::string& name, std::vector<R>& rs, F&& fields) {
    std::map<std::string, detail::column> cols;
    std::vector<std::string> order;
    auto collect = [&](const std::string& field, const auto& x) {
      using T = std::decay_t<decltype(x)>;
      auto [it, added] = cols.try_emplace(field);
      if (added) order.push_back(field);
      detail::column& c = it->second;
      if constexpr (std::is_same_v<T, bool> || detail::is_integer_v<T>) {
        c.kind = detail::column::integers;
        c.i.push_back(static_cast<std::int64_t>(x));
      } else if constexpr (std::is_same_v<T, double>) {
        c.kind = detail::column::reals;
        c.d.push_back(x);
      } else if constexpr (detail::is_named_v<T>) {
        c.kind = detail::column::texts;
        c.s.push_back(detail::name_of(x));
      } else {
        static_assert(sizeof(T) == 0, "state_writer::records: a field of a type it does not store");
      }
    };
    for (R& r : rs) fields(collect, r);
    const std::string base = prefix_ + "." + name;
    ar_.write(base + ".count", detail::int64_scalar(static_cast<std::int64_t>(rs.size())));
    for (const std::string& field : order) {
      const detail::column& c = cols.at(field);
      const std::string key = base + "." + field;
      if (c.kind == detail::column::integers) ar_.write(key, detail::vector_tensor(c.i, at::kLong));
      else if (c.kind == detail::column::reals) ar_.write(key, detail::vector_tensor(c.d, at::kDouble));
      else ar_.write(key, detail::string_list(c.s));
    }
  }

 private:
  torch::serialize::OutputArchive& ar_;
  std::string prefix_;
};

// Reads what state_writer wrote, into the caller's fields: every read checks
// the entry's type and size and throws simic::archive_error naming it. Read
// into copies and assign them once everything was read (all or nothing).
class state_reader {
 public:
  state_reader(torch::serialize::InputArchive& ar, std::string prefix) : ar_(ar), prefix_(std::move(prefix)) {}

  template <class T>
  void operator()(const std::string& name, T& v) {
    const std::string key = prefix_ + "." + name;
    if constexpr (std::is_same_v<T, bool> || detail::is_integer_v<T>) {
      v = integer_as<T>(scalar(key, at::kLong).template item<std::int64_t>(), key);
    } else if constexpr (std::is_same_v<T, double>) {
      v = scalar(key, at::kDouble).template item<double>();
    } else if constexpr (detail::is_named_v<T>) {
      v = detail::from_name<T>(text(key), key);
    } else if constexpr (std::is_same_v<T, std::vector<double>>) {
      v = vector_of<double>(key, at::kDouble);
    } else if constexpr (std::is_same_v<T, std::deque<double>>) {
      const auto d = vector_of<double>(key, at::kDouble);
      v.assign(d.begin(), d.end());
    } else if constexpr (std::is_same_v<T, std::vector<float>>) {
      v = vector_of<float>(key, at::kFloat);
    } else if constexpr (std::is_same_v<T, std::vector<int>>) {
      std::vector<int> out;
      for (const std::int64_t x : vector_of<std::int64_t>(key, at::kLong)) out.push_back(integer_as<int>(x, key));
      v = std::move(out);
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      v = texts(key);
    } else if constexpr (std::is_same_v<T, std::mt19937_64> || std::is_same_v<T, std::mt19937>) {
      std::istringstream in(text(key));
      T g;
      in >> g;
      if (in.fail()) throw simic::archive_error("'" + key + "' is not the state of a Mersenne Twister");
      v = g;
    } else if constexpr (std::is_same_v<T, at::Tensor>) {
      v = tensor(key).clone();
    } else {
      static_assert(sizeof(T) == 0, "state_reader: a field of a type it does not read");
    }
  }

  // What state_writer::records wrote, into `rs` (replaced).
  template <class R, class F>
  void records(const std::string& name, std::vector<R>& rs, F&& fields) {
    const std::string base = prefix_ + "." + name;
    const std::int64_t n = scalar(base + ".count", at::kLong).template item<std::int64_t>();
    if (n < 0 || n > (std::int64_t{1} << 32))
      throw simic::archive_error("'" + base + ".count' = " + std::to_string(n) + " is not a record count");
    std::map<std::string, detail::column> cols;
    std::size_t row = 0;
    auto read = [&](const std::string& field, auto& x) {
      using T = std::decay_t<decltype(x)>;
      const std::string key = base + "." + field;
      auto it = cols.find(field);
      if (it == cols.end()) {
        detail::column c;
        if constexpr (std::is_same_v<T, bool> || detail::is_integer_v<T>) c.i = vector_of<std::int64_t>(key, at::kLong);
        else if constexpr (std::is_same_v<T, double>) c.d = vector_of<double>(key, at::kDouble);
        else c.s = texts(key);
        const std::size_t size = c.i.size() + c.d.size() + c.s.size();
        if (size != static_cast<std::size_t>(n))
          throw simic::archive_error("'" + key + "' holds " + std::to_string(size) + " values; '" + base +
                                     ".count' says " + std::to_string(n));
        it = cols.emplace(field, std::move(c)).first;
      }
      const detail::column& c = it->second;
      if constexpr (std::is_same_v<T, bool> || detail::is_integer_v<T>) x = integer_as<T>(c.i[row], key);
      else if constexpr (std::is_same_v<T, double>) x = c.d[row];
      else if constexpr (detail::is_named_v<T>) x = detail::from_name<T>(c.s[row], key);
      else static_assert(sizeof(T) == 0, "state_reader::records: a field of a type it does not read");
    };
    std::vector<R> out(static_cast<std::size_t>(n));
    for (row = 0; row < out.size(); ++row) fields(read, out[row]);
    rs = std::move(out);
  }

 private:
  template <class T>
  static T integer_as(std::int64_t x, const std::string& key) {
    if constexpr (std::is_same_v<T, bool>) {
      if (x != 0 && x != 1) throw simic::archive_error("'" + key + "' = " + std::to_string(x) + " is not 0 or 1");
      return x != 0;
    } else if constexpr (std::is_same_v<T, std::uint64_t>) {
      return static_cast<std::uint64_t>(x);  // stored bit for bit
    } else {
      if (!std::in_range<T>(x))
        throw simic::archive_error("'" + key + "' = " + std::to_string(x) + " is out of the field's range");
      return static_cast<T>(x);
    }
  }

  // ar_.try_read(key, out), what LibTorch throws an archive_error naming the key.
  template <class T>
  bool try_read(const std::string& key, T& out) {
    try {
      return ar_.try_read(key, out);
    } catch (const std::exception& e) {
      throw simic::archive_error("cannot read '" + key + "': " + first_line(e.what()));
    }
  }
  at::Tensor tensor(const std::string& key) {
    at::Tensor t;
    if (!try_read(key, t) || !t.defined()) throw simic::archive_error("the checkpoint lacks '" + key + "'");
    // A tensor must lie in its stored bytes (the file may have been edited).
    if (t.numel() > 0 && (!t.has_storage() || !t.is_contiguous() || t.storage_offset() != 0 ||
                          static_cast<std::size_t>(t.numel()) * t.element_size() > t.storage().nbytes()))
      throw simic::archive_error("'" + key + "' declares elements beyond its stored bytes");
    return t;
  }
  at::Tensor scalar(const std::string& key, at::ScalarType type) {
    at::Tensor t = tensor(key);
    if (t.scalar_type() != type || t.dim() != 0)
      throw simic::archive_error("'" + key + "' is not a " + std::string(c10::toString(type)) + " scalar");
    return t;
  }
  template <class T>
  std::vector<T> vector_of(const std::string& key, at::ScalarType type) {
    at::Tensor t = tensor(key);
    if (t.scalar_type() != type || t.dim() != 1)
      throw simic::archive_error("'" + key + "' is not a " + std::string(c10::toString(type)) + " vector");
    std::vector<T> out(static_cast<std::size_t>(t.numel()));
    if (!out.empty()) std::memcpy(out.data(), t.data_ptr(), out.size() * sizeof(T));
    return out;
  }
  c10::IValue ivalue(const std::string& key) {
    c10::IValue v;
    if (!try_read(key, v)) throw simic::archive_error("the checkpoint lacks '" + key + "'");
    return v;
  }
  std::string text(const std::string& key) {
    const c10::IValue v = ivalue(key);
    if (!v.isString()) throw simic::archive_error("'" + key + "' is not a string");
    return v.toStringRef();
  }
  std::vector<std::string> texts(const std::string& key) {
    const c10::IValue v = ivalue(key);
    if (!v.isList()) throw simic::archive_error("'" + key + "' is not a list of strings");
    std::vector<std::string> out;
    const c10::List<c10::IValue> l = v.toList();
    for (std::size_t i = 0; i < l.size(); ++i) {
      const c10::IValue e = l.get(i);
      if (!e.isString()) throw simic::archive_error("'" + key + "' is not a list of strings");
      out.push_back(e.toStringRef());
    }
    return out;
  }

  torch::serialize::InputArchive& ar_;
  std::string prefix_;
};

// The fields both trainers' anomaly records share (what was reported, not
// where), for state_writer::records / state_reader::records.
template <class V, class Record>
void anomaly_fields(V& v, Record& r) {
  v("kind", r.kind);
  v("detail", r.detail);
  v("severity", r.severity);
  v("value", r.value);
  v("threshold", r.threshold);
}

// A checkpoint read from a file and checked for its trainer and its run's
// options; restore_checkpoint() applies it.
struct loaded_checkpoint {
  std::string path;
  checkpoint_header header;
  simic::training_snapshot snapshot;
};

namespace detail {

// The header's fields after "format" (checked first, alone), for
// state_writer (Header: const checkpoint_header) and state_reader; its
// options as two lists, names and values.
template <class V, class Header>
void header_fields(V& v, Header& h, std::vector<std::string>& names, std::vector<std::string>& values) {
  v("trainer", h.trainer);
  v("position", h.position);
  v("events_before", h.events_before);
  v("events_file", h.events_file);
  v("option_names", names);
  v("option_values", values);
}

inline void write_header(torch::serialize::OutputArchive& ar, const checkpoint_header& h) {
  std::vector<std::string> names, values;
  for (const auto& [n, v] : h.definition) {
    names.push_back(n);
    values.push_back(v);
  }
  state_writer w(ar, "checkpoint");
  w("format", checkpoint_format);
  header_fields(w, h, names, values);
}

inline checkpoint_header read_header(torch::serialize::InputArchive& ar) {
  state_reader r(ar, "checkpoint");
  std::int64_t format = 0;
  r("format", format);
  if (format != checkpoint_format)
    throw simic::archive_error("'checkpoint.format' = " + std::to_string(format) + "; this build reads format " +
                               std::to_string(checkpoint_format));
  checkpoint_header h;
  std::vector<std::string> names, values;
  header_fields(r, h, names, values);
  if (names.size() != values.size())
    throw simic::archive_error("'checkpoint.option_names' and 'checkpoint.option_values' differ in length");
  for (std::size_t i = 0; i < names.size(); ++i) h.definition.emplace_back(names[i], values[i]);
  return h;
}

}  // namespace detail

// A checkpoint of `model`, `optimizer`, the LibTorch RNG, the header and
// what `save` writes (the session, the guard, the trainer's state), as the
// bytes of one torch archive.
inline std::string make_checkpoint(torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                                   const checkpoint_header& h, std::uint64_t data_position,
                                   const std::function<void(torch::serialize::OutputArchive&)>& save) {
  simic::training_snapshot s = simic::capture_training_state(
      model, optimizer, h.position, data_position,
      simic::extra_state{.save = [&](torch::serialize::OutputArchive& ar) {
                           detail::write_header(ar, h);
                           save(ar);
                         },
                         .stage = {}});
  return std::move(s.bytes);
}

// Reads `path` and verifies it (zip CRCs and sizes, every storage against its
// record) before LibTorch parses it, then checks that it is a checkpoint of
// `trainer` written by a run with the options `now`. Every refusal is a
// std::invalid_argument "--resume: 'PATH' ..." (a usage error, exit code 2).
inline loaded_checkpoint read_checkpoint(const std::string& path, std::string_view trainer, const run_definition& now) {
  const std::string where = "--resume: '" + path + "'";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw std::invalid_argument(where + " does not exist");
  if (!std::filesystem::is_regular_file(path, ec)) throw std::invalid_argument(where + " is not a regular file");
  loaded_checkpoint c;
  c.path = path;
  try {
    const std::vector<std::uint8_t> bytes = simic::read_file_bytes(path);
    torch::serialize::InputArchive ar = simic::open_verified_archive(std::span<const std::uint8_t>(bytes));
    try {
      c.header = detail::read_header(ar);
    } catch (const simic::archive_error& e) {
      throw simic::archive_error(std::string("not a trainer checkpoint (") + e.what() + ")");
    }
    c.snapshot = simic::read_snapshot_bytes(std::string(bytes.begin(), bytes.end()));
  } catch (const simic::archive_error& e) {
    throw std::invalid_argument(where + " cannot be used: " + e.what());
  }
  if (c.header.trainer != trainer)
    throw std::invalid_argument(where + " is a checkpoint of " + c.header.trainer + ", not of " + std::string(trainer));
  const run_definition& then = c.header.definition;
  for (std::size_t i = 0; i < std::max(then.size(), now.size()); ++i) {
    if (i < then.size() && i < now.size() && then[i] == now[i]) continue;
    if (i < then.size() && i < now.size() && then[i].first == now[i].first)
      throw std::invalid_argument(where + " was written by a run with " + then[i].first + " " + then[i].second +
                                  "; this run has " + now[i].first + " " + now[i].second +
                                  " (a resumed run takes the options of the run it resumes)");
    throw std::invalid_argument(where + " records other options (" +
                                (i < then.size() ? then[i].first : std::string("none")) + " where this run has " +
                                (i < now.size() ? now[i].first : std::string("none")) +
                                "): written by another version of the trainer");
  }
  return c;
}

// A resumed run's events go to a new file: not to the events file of the run
// that wrote the checkpoint, whose first lines are the events before it.
// Else "--events: ..." (a usage error), before any file is touched.
inline void check_resumed_events(const loaded_checkpoint& c, const std::string& events_path) {
  if (events_path.empty() || c.header.events_file.empty()) return;
  std::error_code ec;
  if (absolute_path(events_path) == c.header.events_file && std::filesystem::exists(events_path, ec))
    throw std::invalid_argument("--events: '" + events_path + "' is the events file of the run that wrote '" + c.path +
                                "' (its first " + std::to_string(c.header.events_before) +
                                " lines are the events before the checkpoint); a resumed run writes its events to "
                                "a new file: name another");
}

// Applies `c` to `model`, `optimizer` and the LibTorch RNG, and `stage`'s
// part (stage reads and checks everything, returns what applies it): all
// or nothing. A checkpoint that does not fit (another model, a damaged
// entry) is a std::invalid_argument "--resume: 'PATH' cannot be restored:
// ..." and changes nothing.
inline void restore_checkpoint(const loaded_checkpoint& c, torch::nn::Module& model,
                               torch::optim::Optimizer& optimizer,
                               const std::function<std::function<void()>(torch::serialize::InputArchive&)>& stage) {
  try {
    simic::restore_training_state(c.snapshot, model, optimizer, simic::extra_state{.save = {}, .stage = stage});
  } catch (const simic::archive_error& e) {
    throw std::invalid_argument("--resume: '" + c.path + "' cannot be restored: " + e.what());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("--resume: '" + c.path + "' cannot be restored: " + e.what());
  }
}

// What a run continues from and where its checkpoints go.
struct continuity {
  std::optional<loaded_checkpoint> resume;  // --resume (none: a new run)
  run_definition definition;                // the run's, recorded in each checkpoint
  std::string checkpoint_path;              // "" : no checkpoints
};

// A run's continuity from its options: --resume read and checked against
// `definition` and --events (read_checkpoint, check_resumed_events), the
// checkpoint file's directory made (check_checkpoint_path); each refusal a
// usage error before any file of the run is touched.
inline continuity open_continuity(const recovery_settings& r, std::string_view trainer, run_definition definition,
                                  const std::string& events_path) {
  continuity c;
  c.definition = std::move(definition);
  if (!r.resume_path.empty()) {
    c.resume = read_checkpoint(r.resume_path, trainer, c.definition);
    check_resumed_events(*c.resume, events_path);
  }
  if (r.checkpoint_every != 0) {
    c.checkpoint_path = r.checkpoint_file(events_path);
    check_checkpoint_path(c.checkpoint_path);
  }
  return c;
}

// A trainer's whole-run checkpoint (make_checkpoint): the session, the guard
// (none without --recover) and the trainer's own state (`own(writer)`, under
// "trainer."), written to `path` atomically. A failure keeps the previous
// file, is counted in `sum` and printed ("TRAINER: checkpoint at UNIT N
// failed ..."); training goes on.
template <class Session, class Guard, class Own>
void write_run_checkpoint(checkpoint_summary& sum, const std::string& path, const char* unit,
                          const checkpoint_header& h, std::uint64_t data_position, torch::nn::Module& model,
                          torch::optim::Optimizer& optimizer, const Session& session, const std::optional<Guard>& guard,
                          Own&& own) {
  std::string error;
  try {
    const std::string bytes =
        make_checkpoint(model, optimizer, h, data_position, [&](torch::serialize::OutputArchive& ar) {
          simic::save_session(ar, session);
          if (guard) guard->save(ar);
          state_writer w(ar, "trainer");
          own(w);
        });
    error = write_file_atomically(path, bytes);
  } catch (const std::exception& e) {
    error = first_line(e.what());
  }
  if (error.empty()) {
    ++sum.written;
    sum.last_at = h.position;
  } else {
    ++sum.failed;
    sum.last_error = error;
    std::fprintf(stderr, "%s: checkpoint at %s %llu failed (the previous one is kept): %s\n", h.trainer.c_str(), unit,
                 static_cast<unsigned long long>(h.position), error.c_str());
  }
}

// --resume: restores `c` (restore_checkpoint) with the session, the guard
// (none without --recover) and the trainer's own state: `stage_own(reader)`
// reads and checks it ("trainer.") and returns what applies it. Everything
// is read and checked before anything is applied. Then `sum` records where
// the run resumed and, with progress lines, a line says so.
template <class Session, class Guard, class StageOwn>
void restore_run(const loaded_checkpoint& c, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                 Session& session, std::optional<Guard>& guard, StageOwn&& stage_own, checkpoint_summary& sum,
                 const char* unit, bool progress_lines) {
  restore_checkpoint(c, model, optimizer, [&](torch::serialize::InputArchive& ar) {
    std::function<void()> session_part = simic::stage_session(ar, session);
    std::function<void()> guard_part = guard ? guard->stage(ar) : std::function<void()>{};
    state_reader r(ar, "trainer");
    std::function<void()> own_part = stage_own(r);
    return std::function<void()>([session_part, guard_part, own_part] {
      session_part();
      if (guard_part) guard_part();
      own_part();
    });
  });
  sum.resumed_from = c.path;
  sum.resumed_at = c.header.position;
  sum.events_before = c.header.events_before;
  sum.events_file_before = c.header.events_file;
  if (progress_lines) {
    std::printf("resumed from %s at %s %llu (the events before it: the first %llu lines of %s)\n", c.path.c_str(),
                unit, static_cast<unsigned long long>(c.header.position),
                static_cast<unsigned long long>(c.header.events_before),
                c.header.events_file.empty() ? "no file" : c.header.events_file.c_str());
    std::fflush(stdout);
  }
}

}  // namespace examples_common
