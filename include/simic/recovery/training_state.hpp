// One captured training state (model parameters and buffers, the optimizer
// with its per-parameter state and options, the RNG states, and whatever the
// caller adds) as the bytes of a torch archive, and its all-or-nothing
// restore. The recovery layer keeps the last good ones in memory and on disk
// (recovery/snapshot_files.hpp) and restores one after a fault.
//
// A restore validates everything before it changes anything: a snapshot that
// does not fit the model and optimizer at hand (another width, another
// optimizer, another grouping) or whose bytes are damaged throws
// simic::archive_error naming the difference, and training goes on from where
// it was. The bytes are verified as a zip (archive/zip_verify.hpp) before
// LibTorch parses them: LibTorch's loader checks no CRC and can crash on a
// damaged archive.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/core/ivalue.h>  // complete IValue first: clang needs it for input-archive.h
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include "simic/archive/archive_error.hpp"
#include "simic/archive/torch_archive.hpp"
#include "simic/recovery/detail/tensor_text.hpp"
#include "simic/sensors/torch_compat.hpp"

namespace simic {
inline namespace v0 {

// What a snapshot holds besides the model and optimizer (the caller's state:
// the monitor's, the session's). save writes into the archive under the
// caller's own keys; stage reads and validates everything from the archive
// WITHOUT changing anything, throwing simic::archive_error on any problem, and
// returns a commit function that applies it and cannot fail. Either may be
// empty (nothing saved / nothing restored).
struct extra_state {
  std::function<void(torch::serialize::OutputArchive&)> save;
  std::function<std::function<void()>(torch::serialize::InputArchive&)> stage;
};

// One captured training state as the bytes of a torch archive (a zip), plus
// what describes it. The description is also inside the bytes
// (read_snapshot_bytes re-makes it from them).
struct training_snapshot {
  std::uint64_t update = 0;         // the caller's update number when taken
  std::uint64_t data_position = 0;  // the caller's data position when taken
  std::string bytes;                // the archive
  std::size_t size_bytes() const noexcept { return bytes.size(); }
};

// The format of the snapshot's own entries; bumped when they change.
inline constexpr std::int64_t snapshot_format_version = 1;

namespace detail::snapshot {

// Keys of the archive. The model's tensors: "model.param.<name>" and
// "model.buffer.<name>"; the optimizer's own archive: "optimizer"; the
// caller's (extra_state) keys: anything else.
inline const std::string k_format = "snapshot.format";
inline const std::string k_update = "snapshot.update";
inline const std::string k_data_position = "snapshot.data_position";
inline const std::string k_torch_version = "snapshot.torch_version";
inline const std::string k_optimizer_type = "snapshot.optimizer_type";
inline const std::string k_learning_rates = "snapshot.learning_rates";
inline const std::string k_group_sizes = "snapshot.group_sizes";
inline std::string k_group_shapes(std::size_t g) { return "snapshot.group." + std::to_string(g) + ".shapes"; }
inline std::string k_group_options(std::size_t g) { return "snapshot.group." + std::to_string(g) + ".options"; }
inline const std::string k_rng_cpu = "snapshot.rng.cpu";
inline const std::string k_rng_cuda_count = "snapshot.rng.cuda_count";
inline std::string k_rng_cuda(std::size_t d) { return "snapshot.rng.cuda." + std::to_string(d); }
inline const std::string k_param_names = "model.param_names";
inline const std::string k_buffer_names = "model.buffer_names";
inline std::string k_param(const std::string& name) { return "model.param." + name; }
inline std::string k_buffer(const std::string& name) { return "model.buffer." + name; }
inline const std::string k_optimizer = "optimizer";

// The model's defined tensors in registration order (recursive). Undefined
// entries (a Linear without bias registers one) are neither saved nor expected.
inline std::vector<std::pair<std::string, at::Tensor>> defined(const torch::OrderedDict<std::string, at::Tensor>& d) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : d)
    if (item.value().defined()) out.emplace_back(item.key(), item.value());
  return out;
}

inline at::Tensor int64_vector(const std::vector<std::int64_t>& v) {
  at::Tensor t = at::empty({static_cast<std::int64_t>(v.size())}, at::TensorOptions().dtype(at::kLong));
  for (std::size_t i = 0; i < v.size(); ++i) t.data_ptr<std::int64_t>()[i] = v[i];
  return t;
}
inline at::Tensor double_vector(const std::vector<double>& v) {
  at::Tensor t = at::empty({static_cast<std::int64_t>(v.size())}, at::TensorOptions().dtype(at::kDouble));
  for (std::size_t i = 0; i < v.size(); ++i) t.data_ptr<double>()[i] = v[i];
  return t;
}
inline c10::IValue string_list(const std::vector<std::string>& v) {
  c10::List<std::string> l;
  for (const auto& s : v) l.push_back(s);
  return c10::IValue(l);
}

// Whether every element `t` declares lies in its storage. A zip whose CRCs
// are all right can still have been edited (data.pkl rewritten, records
// renamed) so that a tensor declares more than its record holds; nothing
// may read such a tensor.
inline bool storage_holds(const at::Tensor& t) {
  if (t.numel() == 0) return true;
  if (!t.has_storage() || t.storage_offset() < 0) return false;
  std::uint64_t last = static_cast<std::uint64_t>(t.storage_offset()), step = 0;
  for (std::int64_t d = 0; d < t.dim(); ++d) {
    if (t.size(d) < 1 || t.stride(d) < 0) return false;
    if (__builtin_mul_overflow(static_cast<std::uint64_t>(t.size(d) - 1), static_cast<std::uint64_t>(t.stride(d)), &step) ||
        __builtin_add_overflow(last, step, &last))
      return false;
  }
  std::uint64_t bytes = 0;
  if (__builtin_add_overflow(last, 1, &last) ||
      __builtin_mul_overflow(last, static_cast<std::uint64_t>(t.element_size()), &bytes))
    return false;
  return bytes <= static_cast<std::uint64_t>(t.storage().nbytes());
}

// Every read names the function it serves (`who`) and the key. LibTorch's
// own errors (a wrong IValue type) become archive_error.
inline at::Tensor read_tensor(torch::serialize::InputArchive& ar, const std::string& key, const char* who) {
  at::Tensor t;  // undefined: a defined one would be overwritten in place by try_read
  bool found = false;
  try {
    found = ar.try_read(key, t);
  } catch (const std::exception& e) {
    throw archive_error(std::string(who) + ": cannot read '" + key + "': " + e.what());
  }
  if (!found || !t.defined()) throw archive_error(std::string(who) + ": the snapshot lacks '" + key + "'");
  if (!storage_holds(t))
    throw archive_error(std::string(who) + ": '" + key + "' declares elements beyond its stored bytes (shape " +
                        shape_text(t.sizes()) + "): the archive was edited");
  return t;
}

inline at::Tensor read_typed(torch::serialize::InputArchive& ar, const std::string& key, at::ScalarType type, int dims,
                             const char* who) {
  at::Tensor t = read_tensor(ar, key, who);
  if (t.scalar_type() != type || t.dim() != dims || !t.device().is_cpu())
    throw archive_error(std::string(who) + ": '" + key + "' is a " + std::string(c10::toString(t.scalar_type())) +
                        " tensor of " + std::to_string(t.dim()) + " dims on " + t.device().str() + "; expected a " +
                        std::string(c10::toString(type)) + (dims == 0 ? " scalar" : " vector") + " on cpu");
  return t.contiguous();
}

inline std::int64_t read_int64(torch::serialize::InputArchive& ar, const std::string& key, const char* who) {
  return read_typed(ar, key, at::kLong, 0, who).item<std::int64_t>();
}
inline std::vector<std::int64_t> read_int64_vector(torch::serialize::InputArchive& ar, const std::string& key,
                                                   const char* who) {
  const at::Tensor t = read_typed(ar, key, at::kLong, 1, who);
  return {t.data_ptr<std::int64_t>(), t.data_ptr<std::int64_t>() + t.numel()};
}
inline std::vector<double> read_double_vector(torch::serialize::InputArchive& ar, const std::string& key,
                                              const char* who) {
  const at::Tensor t = read_typed(ar, key, at::kDouble, 1, who);
  return {t.data_ptr<double>(), t.data_ptr<double>() + t.numel()};
}

inline c10::IValue read_ivalue(torch::serialize::InputArchive& ar, const std::string& key, const char* who) {
  c10::IValue v;
  bool found = false;
  try {
    found = ar.try_read(key, v);
  } catch (const std::exception& e) {
    throw archive_error(std::string(who) + ": cannot read '" + key + "': " + e.what());
  }
  if (!found) throw archive_error(std::string(who) + ": the snapshot lacks '" + key + "'");
  return v;
}
inline std::string read_string(torch::serialize::InputArchive& ar, const std::string& key, const char* who) {
  const c10::IValue v = read_ivalue(ar, key, who);
  if (!v.isString()) throw archive_error(std::string(who) + ": '" + key + "' is a " + v.tagKind() + ", not a string");
  return v.toStringRef();
}
inline std::vector<std::string> read_string_list(torch::serialize::InputArchive& ar, const std::string& key,
                                                 const char* who) {
  const c10::IValue v = read_ivalue(ar, key, who);
  if (!v.isList()) throw archive_error(std::string(who) + ": '" + key + "' is a " + v.tagKind() + ", not a list");
  const c10::List<c10::IValue> l = v.toList();
  std::vector<std::string> out;
  out.reserve(l.size());
  for (std::size_t i = 0; i < l.size(); ++i) {
    const c10::IValue e = l.get(i);
    if (!e.isString())
      throw archive_error(std::string(who) + ": '" + key + "' item " + std::to_string(i) + " is a " + e.tagKind() +
                          ", not a string");
    out.push_back(e.toStringRef());
  }
  return out;
}

inline torch::serialize::InputArchive read_nested(torch::serialize::InputArchive& ar, const std::string& key,
                                                  const char* who) {
  torch::serialize::InputArchive nested;
  bool found = false;
  try {
    found = ar.try_read(key, nested);
  } catch (const std::exception& e) {
    throw archive_error(std::string(who) + ": cannot read '" + key + "': " + e.what());
  }
  if (!found) throw archive_error(std::string(who) + ": the snapshot lacks the archive '" + key + "'");
  return nested;
}

// Every tensor under `v` (nested archives are objects; optimizer state may
// hold lists) must lie in its storage: the optimizer's loader and the
// caller's stage read tensors this header never sees by name.
inline void check_tensors(const c10::IValue& v, const std::string& where, int depth, const char* who) {
  if (depth > 64) throw archive_error(std::string(who) + ": '" + where + "' nests deeper than 64 levels");
  if (v.isTensor()) {
    const at::Tensor& t = v.toTensor();
    if (t.defined() && !storage_holds(t))
      throw archive_error(std::string(who) + ": '" + where + "' declares elements beyond its stored bytes (shape " +
                          shape_text(t.sizes()) + "): the archive was edited");
  } else if (v.isObject()) {
    const auto object = v.toObject();
    for (std::size_t i = 0; i < object->slots().size(); ++i)
      check_tensors(object->getSlot(i), where + "/" + object->type()->getAttributeName(i), depth + 1, who);
  } else if (v.isList()) {
    const c10::List<c10::IValue> list = v.toList();
    for (std::size_t i = 0; i < list.size(); ++i) check_tensors(list.get(i), where + "[" + std::to_string(i) + "]", depth + 1, who);
  } else if (v.isTuple()) {
    const auto tuple = v.toTuple();
    std::size_t i = 0;
    for (const auto& e : tuple->elements()) check_tensors(e, where + "(" + std::to_string(i++) + ")", depth + 1, who);
  } else if (v.isGenericDict()) {
    for (const auto& e : v.toGenericDict()) {
      check_tensors(e.key(), where + "{key}", depth + 1, who);
      check_tensors(e.value(), where + "{value}", depth + 1, who);
    }
  }
}

// Verified first: a damaged zip never reaches LibTorch's parser; then every
// tensor it holds is checked against its storage before anything reads one.
inline torch::serialize::InputArchive open(const std::string& bytes, const char* who) {
  torch::serialize::InputArchive ar;
  try {
    ar = open_verified_archive(
        std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
  } catch (const archive_error& e) {
    throw archive_error(std::string(who) + ": the snapshot's bytes are not a sound torch archive: " + e.what());
  }
  for (const std::string& key : ar.keys()) {
    c10::IValue v;
    try {
      if (!ar.try_read(key, v)) continue;
    } catch (const std::exception& e) {
      throw archive_error(std::string(who) + ": cannot read '" + key + "': " + e.what());
    }
    check_tensors(v, key, 0, who);
  }
  return ar;
}

// What the snapshot says about itself; everything here is checked for form
// (types, counts, ranges), none of it against a model.
struct header {
  std::uint64_t update = 0;
  std::uint64_t data_position = 0;
  std::string torch_version;
  std::string optimizer_type;
  std::vector<double> learning_rates;
  std::vector<std::int64_t> group_sizes;
};

inline header read_header(torch::serialize::InputArchive& ar, const char* who) {
  at::Tensor f;
  try {
    if (!ar.try_read(k_format, f)) f = at::Tensor();
  } catch (const std::exception&) {
    f = at::Tensor();
  }
  if (!f.defined())
    throw archive_error(std::string(who) + ": the archive lacks '" + k_format + "': it is no simic training snapshot");
  const std::int64_t format = read_int64(ar, k_format, who);
  if (format != snapshot_format_version)
    throw archive_error(std::string(who) + ": '" + k_format + "' = " + std::to_string(format) +
                        (format > snapshot_format_version ? ": written by a newer simic" : ": not a format this simic reads") +
                        " (this one reads " + std::to_string(snapshot_format_version) + ")");
  header h;
  // uint64 counters travel bit for bit in int64 tensors
  h.update = static_cast<std::uint64_t>(read_int64(ar, k_update, who));
  h.data_position = static_cast<std::uint64_t>(read_int64(ar, k_data_position, who));
  h.torch_version = read_string(ar, k_torch_version, who);
  h.optimizer_type = read_string(ar, k_optimizer_type, who);
  h.learning_rates = read_double_vector(ar, k_learning_rates, who);
  h.group_sizes = read_int64_vector(ar, k_group_sizes, who);
  if (h.group_sizes.empty()) throw archive_error(std::string(who) + ": '" + k_group_sizes + "' is empty");
  if (h.learning_rates.size() != h.group_sizes.size())
    throw archive_error(std::string(who) + ": '" + k_learning_rates + "' has " + std::to_string(h.learning_rates.size()) +
                        " values for " + std::to_string(h.group_sizes.size()) + " parameter groups");
  for (std::size_t g = 0; g < h.group_sizes.size(); ++g) {
    if (h.group_sizes[g] < 0)
      throw archive_error(std::string(who) + ": '" + k_group_sizes + "' says group " + std::to_string(g) + " has " +
                          std::to_string(h.group_sizes[g]) + " parameters");
    if (!std::isfinite(h.learning_rates[g]) || h.learning_rates[g] < 0)
      throw archive_error(std::string(who) + ": '" + k_learning_rates + "' holds " + std::to_string(h.learning_rates[g]) +
                          " for group " + std::to_string(g) + ": not a learning rate");
  }
  return h;
}

// A group's parameter shapes as one int64 vector: per parameter its number
// of dimensions, then its sizes.
inline std::vector<std::int64_t> encode_shapes(const std::vector<at::Tensor>& params) {
  std::vector<std::int64_t> out;
  for (const auto& p : params) {
    out.push_back(p.dim());
    for (const auto s : p.sizes()) out.push_back(s);
  }
  return out;
}
inline std::vector<std::vector<std::int64_t>> decode_shapes(const std::vector<std::int64_t>& enc, std::size_t count,
                                                            const std::string& key, const char* who) {
  std::vector<std::vector<std::int64_t>> out;
  std::size_t i = 0;
  while (out.size() < count) {
    if (i >= enc.size() || enc[i] < 0 || static_cast<std::uint64_t>(enc[i]) > enc.size() - i - 1)
      throw archive_error(std::string(who) + ": '" + key + "' is malformed (item " + std::to_string(out.size()) + ")");
    const auto n = static_cast<std::size_t>(enc[i]);
    out.emplace_back(enc.begin() + static_cast<std::ptrdiff_t>(i + 1), enc.begin() + static_cast<std::ptrdiff_t>(i + 1 + n));
    i += 1 + n;
  }
  if (i != enc.size()) throw archive_error(std::string(who) + ": '" + key + "' is malformed (trailing values)");
  return out;
}

// Every CUDA device's default generator when CUDA is available (none in a
// CPU-only LibTorch: hasCUDA() is false there).
inline std::size_t cuda_generator_count() { return at::hasCUDA() ? at::getNumGPUs() : 0; }
inline at::Generator cuda_generator(std::size_t d) {
  return at::globalContext().defaultGenerator(c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(d)));
}
inline at::Tensor generator_state(at::Generator gen) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}
inline void set_generator_state(at::Generator gen, const at::Tensor& state) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// A saved generator state must have the form of the generator's own.
inline at::Tensor staged_generator_state(torch::serialize::InputArchive& ar, const std::string& key,
                                         at::Generator gen, const char* who) {
  const at::Tensor now = generator_state(gen);
  at::Tensor t = read_tensor(ar, key, who);
  if (t.scalar_type() != now.scalar_type() || t.dim() != 1 || t.numel() != now.numel())
    throw archive_error(std::string(who) + ": '" + key + "' is a " + std::string(c10::toString(t.scalar_type())) +
                        " tensor of shape " + shape_text(t.sizes()) + "; this generator's state is " +
                        std::string(c10::toString(now.scalar_type())) + " " + shape_text(now.sizes()));
  return t.cpu().contiguous();
}

}  // namespace detail::snapshot

// The learning rate of every parameter group, in order
// (OptimizerOptions::get_lr).
inline std::vector<double> group_learning_rates(const torch::optim::Optimizer& optimizer) {
  std::vector<double> out;
  const auto& groups = optimizer.param_groups();
  for (std::size_t g = 0; g < groups.size(); ++g) {
    if (!groups[g].has_options())
      throw std::invalid_argument("simic::group_learning_rates: parameter group " + std::to_string(g) +
                                  " has no options");
    try {
      out.push_back(groups[g].options().get_lr());
    } catch (const c10::Error& e) {
      throw std::invalid_argument("simic::group_learning_rates: the options of parameter group " + std::to_string(g) +
                                  " have no learning rate (OptimizerOptions::get_lr): " + e.what_without_backtrace());
    }
  }
  return out;
}

// Sets every group's learning rate; all or nothing: `lrs` must hold one
// finite, non-negative value per group.
inline void set_group_learning_rates(torch::optim::Optimizer& optimizer, std::span<const double> lrs) {
  auto& groups = optimizer.param_groups();
  if (lrs.size() != groups.size())
    throw std::invalid_argument("simic::set_group_learning_rates: lrs has " + std::to_string(lrs.size()) +
                                " values; the optimizer has " + std::to_string(groups.size()) +
                                " parameter groups (lrs must hold exactly " + std::to_string(groups.size()) + ")");
  for (std::size_t g = 0; g < lrs.size(); ++g) {
    if (!std::isfinite(lrs[g]) || lrs[g] < 0)
      throw std::invalid_argument("simic::set_group_learning_rates: lrs[" + std::to_string(g) + "] = " +
                                  std::to_string(lrs[g]) + " is not a learning rate (want finite and >= 0)");
    if (!groups[g].has_options())
      throw std::invalid_argument("simic::set_group_learning_rates: parameter group " + std::to_string(g) +
                                  " has no options");
  }
  for (std::size_t g = 0; g < lrs.size(); ++g) groups[g].options().set_lr(lrs[g]);
}

// Captures the state of `model` (parameters and buffers), `optimizer` (its
// own archive: per-parameter state and every group's options), the RNG
// states and `extra`, with the caller's `update` and `data_position`.
// Throws std::invalid_argument for an optimizer without parameter groups or
// parameters, or a model without parameters.
inline training_snapshot capture_training_state(torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                                                std::uint64_t update, std::uint64_t data_position,
                                                const extra_state& extra = {}) {
  namespace s = detail::snapshot;
  const auto& groups = optimizer.param_groups();
  if (groups.empty())
    throw std::invalid_argument("simic::capture_training_state: the optimizer has no parameter groups");
  std::size_t optimized = 0;
  for (const auto& g : groups) optimized += g.params().size();
  if (optimized == 0) throw std::invalid_argument("simic::capture_training_state: the optimizer holds no parameters");
  const auto params = s::defined(model.named_parameters(/*recurse=*/true));
  const auto buffers = s::defined(model.named_buffers(/*recurse=*/true));
  if (params.empty()) throw std::invalid_argument("simic::capture_training_state: the model has no parameters");
  std::vector<double> lrs = group_learning_rates(optimizer);

  torch::serialize::OutputArchive ar;
  ar.write(s::k_format, at::full({}, snapshot_format_version, at::TensorOptions().dtype(at::kLong)));
  ar.write(s::k_update, at::full({}, static_cast<std::int64_t>(update), at::TensorOptions().dtype(at::kLong)));
  ar.write(s::k_data_position,
           at::full({}, static_cast<std::int64_t>(data_position), at::TensorOptions().dtype(at::kLong)));
  ar.write(s::k_torch_version, c10::IValue(detail::torch_version_string()));
  ar.write(s::k_optimizer_type, c10::IValue(detail::optimizer_type_name(optimizer)));
  ar.write(s::k_learning_rates, s::double_vector(lrs));
  std::vector<std::int64_t> sizes;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    sizes.push_back(static_cast<std::int64_t>(groups[g].params().size()));
    ar.write(s::k_group_shapes(g), s::int64_vector(s::encode_shapes(groups[g].params())));
    // The options again, apart from the optimizer's archive: LibTorch 1.13's
    // Optimizer::load reads them but does not apply them.
    torch::serialize::OutputArchive options(ar.compilation_unit());
    groups[g].options().serialize(options);
    ar.write(s::k_group_options(g), options);
  }
  ar.write(s::k_group_sizes, s::int64_vector(sizes));

  std::vector<std::string> names;
  for (const auto& [name, t] : params) {
    names.push_back(name);
    ar.write(s::k_param(name), t.detach());
  }
  ar.write(s::k_param_names, s::string_list(names));
  names.clear();
  for (const auto& [name, t] : buffers) {
    names.push_back(name);
    ar.write(s::k_buffer(name), t.detach());
  }
  ar.write(s::k_buffer_names, s::string_list(names));

  torch::serialize::OutputArchive opt(ar.compilation_unit());
  optimizer.save(opt);
  ar.write(s::k_optimizer, opt);

  ar.write(s::k_rng_cpu, s::generator_state(at::detail::getDefaultCPUGenerator()));
  const std::size_t cuda = s::cuda_generator_count();
  ar.write(s::k_rng_cuda_count, at::full({}, static_cast<std::int64_t>(cuda), at::TensorOptions().dtype(at::kLong)));
  for (std::size_t d = 0; d < cuda; ++d) ar.write(s::k_rng_cuda(d), s::generator_state(s::cuda_generator(d)));

  if (extra.save) extra.save(ar);

  training_snapshot snap;
  snap.update = update;
  snap.data_position = data_position;
  ar.save_to([&snap](const void* data, std::size_t n) -> std::size_t {
    snap.bytes.append(static_cast<const char*>(data), n);
    return n;
  });
  return snap;
}

// Re-makes a snapshot from its bytes alone (a file read back): verifies the
// zip and reads the snapshot's own description (format version, update, data
// position, LibTorch version, optimizer type, groups and learning rates).
// Throws archive_error when any of it is missing or malformed. It does not
// check the model's tensors against a model: restore_training_state does.
inline training_snapshot read_snapshot_bytes(std::string bytes) {
  constexpr const char* who = "simic::read_snapshot_bytes";
  torch::serialize::InputArchive ar = detail::snapshot::open(bytes, who);
  const detail::snapshot::header h = detail::snapshot::read_header(ar, who);
  training_snapshot s;
  s.update = h.update;
  s.data_position = h.data_position;
  s.bytes = std::move(bytes);
  return s;
}

// All or nothing: parses and validates everything first, then commits.
// Validated: the snapshot's format and LibTorch version; the optimizer's
// concrete type, its number of parameter groups, each group's number of
// parameters and their shapes; the model's parameters and buffers (the same
// names, count, shapes and dtypes as the model has now); the options of each
// group; the RNG states; the optimizer's archive (loaded with the previous
// state kept aside, put back if the load fails); extra.stage. Committed: the
// parameters and buffers copied in place (tensor identity is kept, so the
// optimizer's references stay valid), every parameter's .grad undefined, the
// optimizer's state replaced by the snapshot's (a snapshot taken before the
// first step leaves none), every group's options (learning rate included) set
// to the snapshot's, the RNG states set, extra's commit run. Any failure
// throws archive_error naming what differs, and changes nothing.
inline void restore_training_state(const training_snapshot& snap, torch::nn::Module& model,
                                   torch::optim::Optimizer& optimizer, const extra_state& extra = {}) {
  namespace s = detail::snapshot;
  constexpr const char* who = "simic::restore_training_state";
  const std::string w = who;
  torch::serialize::InputArchive ar = s::open(snap.bytes, who);
  const s::header h = s::read_header(ar, who);
  if (!detail::optimizer_archive_compatible(h.torch_version))
    throw archive_error(w + ": the snapshot was written with LibTorch " + h.torch_version + "; this is LibTorch " +
                        detail::torch_version_string() +
                        ", whose optimizer archive maps parameter state differently (a snapshot is restored by the "
                        "LibTorch major.minor that wrote it)");

  // The model: names, count, shapes, dtypes; staged on each tensor's device.
  struct staged_tensor {
    at::Tensor target, value;
  };
  std::vector<staged_tensor> tensors;
  const auto stage_tensors = [&](const std::vector<std::pair<std::string, at::Tensor>>& now, const std::string& names_key,
                                 std::string (*key_of)(const std::string&), const char* what, const char* whats) {
    const std::vector<std::string> names = s::read_string_list(ar, names_key, who);
    if (names.size() != now.size())
      throw archive_error(w + ": the model has " + std::to_string(now.size()) + " " + whats + "; the snapshot holds " +
                          std::to_string(names.size()));
    for (std::size_t i = 0; i < now.size(); ++i) {
      const auto& [name, t] = now[i];
      if (names[i] != name)
        throw archive_error(w + ": the model's " + what + " " + std::to_string(i) + " is '" + name +
                            "'; the snapshot's is '" + names[i] + "'");
      at::Tensor v = s::read_tensor(ar, key_of(name), who);
      if (v.sizes() != t.sizes())
        throw archive_error(w + ": " + what + " '" + name + "' has shape " + detail::shape_text(t.sizes()) +
                            "; the snapshot holds " + detail::shape_text(v.sizes()));
      if (v.scalar_type() != t.scalar_type())
        throw archive_error(w + ": " + what + " '" + name + "' has dtype " + c10::toString(t.scalar_type()) +
                            "; the snapshot holds " + c10::toString(v.scalar_type()));
      try {
        v = v.to(t.device());
      } catch (const std::exception& e) {
        throw archive_error(w + ": cannot move the snapshot's " + what + " '" + name + "' to " + t.device().str() +
                            ": " + e.what());
      }
      tensors.push_back({t, std::move(v)});
    }
  };
  stage_tensors(s::defined(model.named_parameters(true)), s::k_param_names, &s::k_param, "parameter", "parameters");
  stage_tensors(s::defined(model.named_buffers(true)), s::k_buffer_names, &s::k_buffer, "buffer", "buffers");

  // The optimizer: type and group structure.
  const std::string type = detail::optimizer_type_name(optimizer);
  if (type != h.optimizer_type)
    throw archive_error(w + ": the optimizer is " + type + "; the snapshot was taken of " + h.optimizer_type);
  auto& groups = optimizer.param_groups();
  if (groups.size() != h.group_sizes.size())
    throw archive_error(w + ": the optimizer has " + std::to_string(groups.size()) + " parameter groups; the snapshot holds " +
                        std::to_string(h.group_sizes.size()));
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const auto& ps = groups[g].params();
    if (static_cast<std::int64_t>(ps.size()) != h.group_sizes[g])
      throw archive_error(w + ": parameter group " + std::to_string(g) + " has " + std::to_string(ps.size()) +
                          " parameters; the snapshot's has " + std::to_string(h.group_sizes[g]));
    const auto shapes = s::decode_shapes(s::read_int64_vector(ar, s::k_group_shapes(g), who), ps.size(),
                                         s::k_group_shapes(g), who);
    for (std::size_t i = 0; i < ps.size(); ++i)
      if (ps[i].sizes() != at::IntArrayRef(shapes[i]))
        throw archive_error(w + ": parameter " + std::to_string(i) + " of group " + std::to_string(g) + " has shape " +
                            detail::shape_text(ps[i].sizes()) + "; the snapshot's has " + detail::shape_text(shapes[i]));
    if (!groups[g].has_options())
      throw archive_error(w + ": the optimizer's parameter group " + std::to_string(g) + " has no options");
  }

  // Each group's options, read into a copy of the group's own (their
  // concrete type) and checked against the recorded learning rate.
  std::vector<std::unique_ptr<torch::optim::OptimizerOptions>> options;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    torch::serialize::InputArchive in = s::read_nested(ar, s::k_group_options(g), who);
    std::unique_ptr<torch::optim::OptimizerOptions> o = groups[g].options().clone();
    double lr = 0;
    try {
      o->serialize(in);
      lr = o->get_lr();
    } catch (const std::exception& e) {
      throw archive_error(w + ": cannot read the options of parameter group " + std::to_string(g) + ": " + e.what());
    }
    if (!(lr == h.learning_rates[g]))
      throw archive_error(w + ": the options of parameter group " + std::to_string(g) + " hold learning rate " +
                          std::to_string(lr) + "; '" + s::k_learning_rates + "' says " +
                          std::to_string(h.learning_rates[g]));
    options.push_back(std::move(o));
  }

  // RNG states: the CPU generator's, and those of the CUDA devices the
  // snapshot recorded (there must be at least as many now).
  const at::Tensor rng_cpu = s::staged_generator_state(ar, s::k_rng_cpu, at::detail::getDefaultCPUGenerator(), who);
  const std::int64_t cuda_saved = s::read_int64(ar, s::k_rng_cuda_count, who);
  const std::size_t cuda_now = s::cuda_generator_count();
  if (cuda_saved < 0 || static_cast<std::uint64_t>(cuda_saved) > cuda_now)
    throw archive_error(w + ": the snapshot holds the RNG states of " + std::to_string(cuda_saved) +
                        " CUDA devices; this process has " + std::to_string(cuda_now));
  std::vector<at::Tensor> rng_cuda;
  for (std::size_t d = 0; d < static_cast<std::size_t>(cuda_saved); ++d)
    rng_cuda.push_back(s::staged_generator_state(ar, s::k_rng_cuda(d), s::cuda_generator(d), who));

  torch::serialize::InputArchive opt = s::read_nested(ar, s::k_optimizer, who);

  std::function<void()> extra_commit;
  if (extra.stage) extra_commit = extra.stage(ar);

  // The optimizer's own load, the last step that may fail: its state map is
  // set aside first (so that state of parameters the snapshot had none for
  // does not survive) and put back, with the options, if the load throws.
  {
    std::vector<std::unique_ptr<torch::optim::OptimizerOptions>> previous_options;
    for (auto& g : groups) previous_options.push_back(g.options().clone());
    auto previous_state = std::move(optimizer.state());
    optimizer.state().clear();
    try {
      optimizer.load(opt);
    } catch (const std::exception& e) {
      optimizer.state() = std::move(previous_state);
      for (std::size_t g = 0; g < groups.size(); ++g) groups[g].set_options(std::move(previous_options[g]));
      throw archive_error(w + ": the optimizer cannot load the snapshot's optimizer archive: " + e.what());
    }
  }

  // Commit: nothing below fails on a validated snapshot.
  {
    torch::NoGradGuard no_grad;
    for (auto& t : tensors) t.target.copy_(t.value);
  }
  for (const auto& [name, p] : s::defined(model.named_parameters(true))) p.mutable_grad() = at::Tensor();
  for (auto& g : groups)
    for (auto& p : g.params()) p.mutable_grad() = at::Tensor();
  for (std::size_t g = 0; g < groups.size(); ++g) groups[g].set_options(std::move(options[g]));
  s::set_generator_state(at::detail::getDefaultCPUGenerator(), rng_cpu);
  for (std::size_t d = 0; d < rng_cuda.size(); ++d) s::set_generator_state(s::cuda_generator(d), rng_cuda[d]);
  if (extra_commit) extra_commit();
}

}  // namespace v0
}  // namespace simic
