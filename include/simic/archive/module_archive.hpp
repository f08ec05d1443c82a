// Verified loads of a user's torch::nn::Module checkpoint, as written by
// torch::save(module, path) (or module->save(archive)).
//
// torch::load(module, path) trusts the file: LibTorch 1.13 checks no CRC,
// takes a storage's size from data.pkl and backs it with whatever record has
// its key, and Module::load replaces each parameter's tensor by the one read
// (InputArchive::read calls set_), so a file of another shape silently gives
// the module that shape, and a failure half-way leaves it half loaded.
// load_verified() instead
//   1. verifies the file as open_verified_archive does (whole zip and every
//      CRC-32; each storage data.pkl declares against its record's size;
//      every referenced record present; no record referenced by two
//      storages: archive/torch_pickle.hpp);
//   2. reads every parameter and buffer the module has, recursively as
//      Module::load does, and checks each against the module's tensor: the
//      key present, the same dtype and shape, its sizes, strides and offset
//      inside its storage, and no storage read by two tensors that the
//      module keeps apart (an edited data.pkl's memo);
//   3. only then copies the values in, under NoGradGuard, into the module's
//      own tensors (their device, requires_grad and identity are kept).
// Any failure throws simic::archive_error naming the file and the record or
// key, and the module is left as it was. Keys in the file that the module
// lacks are ignored, as torch::load ignores them.
//
// What no check can see: a torch::save checkpoint holds no checksum of its
// values, so two records of the same byte size swapped (or two same-shaped
// tensors' keys swapped in data.pkl) load as the other's values. simic's own
// archives carry a checksum of their fields that catches this.
#pragma once

#include <concepts>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/utils.h>

#include "simic/archive/archive_error.hpp"
#include "simic/archive/torch_archive.hpp"

namespace simic {
inline namespace v0 {
namespace detail {

struct staged_tensor {
  std::string key;   // dotted, as named_parameters() names it: "head.1.weight"
  at::Tensor target;  // the module's tensor
  at::Tensor loaded;  // what the archive holds, checked against it
};

// An exception's message; LibTorch's without the C++ backtrace it appends.
inline std::string load_module_what(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

// Reads and checks every tensor of `module` (and its serializable children)
// from `ar`, changing nothing.
inline void stage_module(torch::serialize::InputArchive& ar, torch::nn::Module& module, const std::string& prefix,
                         std::vector<staged_tensor>& out) {
  constexpr const char* who = "simic::load_module";
  auto stage = [&](const std::string& name, const at::Tensor& target, bool buffer) {
    if (!target.defined()) return;  // an unset optional tensor (a Linear without bias): Module::save writes none
    const std::string key = prefix + name;
    const char* kind = buffer ? "buffer" : "parameter";
    at::Tensor t;
    bool found = false;
    try {
      found = ar.try_read(name, t, buffer);
    } catch (const std::exception& e) {
      throw archive_error(std::string(who) + ": " + kind + " '" + key + "' cannot be read: " + load_module_what(e));
    }
    if (!found || !t.defined())
      throw archive_error(std::string(who) + ": archive lacks the module's " + kind + " '" + key + "'");
    if (t.scalar_type() != target.scalar_type())
      throw archive_error(std::string(who) + ": " + kind + " '" + key + "' is " +
                          std::string(c10::toString(target.scalar_type())) + " in the module but " +
                          std::string(c10::toString(t.scalar_type())) + " in the archive");
    if (t.sizes() != target.sizes())
      throw archive_error(std::string(who) + ": " + kind + " '" + key + "' has shape " + int_list(target.sizes()) +
                          " in the module but " + int_list(t.sizes()) + " in the archive");
    check_storage(t, key, who);
    out.push_back({key, target, t});
  };
  for (const auto& p : module.named_parameters(/*recurse=*/false)) stage(p.key(), p.value(), false);
  for (const auto& b : module.named_buffers(/*recurse=*/false)) stage(b.key(), b.value(), true);
  for (const auto& c : module.named_children()) {
    if (!c.value()->is_serializable()) continue;  // as Module::load: such a child was not saved
    const std::string key = prefix + c.key();
    torch::serialize::InputArchive child;
    bool found = false;
    try {
      found = ar.try_read(c.key(), child);
    } catch (const std::exception& e) {
      throw archive_error(std::string(who) + ": submodule '" + key + "' cannot be read: " + load_module_what(e));
    }
    if (!found) throw archive_error(std::string(who) + ": archive lacks the module's submodule '" + key + "'");
    stage_module(child, *c.value(), key + ".", out);
  }
}

// Two tensors read from one storage are the module's business only where
// the module's own tensors share theirs (tied weights, saved once); anywhere
// else data.pkl was edited to point one tensor at another's data.
inline void check_shared_storages(const std::vector<staged_tensor>& staged) {
  std::map<const void*, const staged_tensor*> by_storage;
  for (const staged_tensor& s : staged) {
    if (s.loaded.storage().nbytes() == 0) continue;
    const auto [first, fresh] = by_storage.emplace(s.loaded.storage().unsafeGetStorageImpl(), &s);
    if (fresh) continue;
    const staged_tensor& f = *first->second;
    if (f.target.storage().unsafeGetStorageImpl() != s.target.storage().unsafeGetStorageImpl())
      throw archive_error("simic::load_module: '" + s.key + "' and '" + f.key +
                          "' read one storage of the archive, but are separate tensors of the module: the "
                          "archive's data.pkl was edited");
  }
}

}  // namespace detail

// Loads `module` from `ar` (an archive a module's save() wrote; for a model
// kept under a key of the user's own checkpoint, the InputArchive read from
// that key), with the checks of steps 2 and 3 above: all or nothing. The
// file itself is verified only where `ar` came from open_verified_archive.
inline void load_module(torch::serialize::InputArchive& ar, torch::nn::Module& module) {
  std::vector<detail::staged_tensor> staged;
  detail::stage_module(ar, module, "", staged);
  detail::check_shared_storages(staged);
  torch::NoGradGuard no_grad;
  for (detail::staged_tensor& s : staged) s.target.copy_(s.loaded);
}

// A checkpoint file of `module` (torch::save(module, path)), verified, then
// loaded all or nothing; every failure names `path`.
inline void load_verified(const std::filesystem::path& path, torch::nn::Module& module) {
  torch::serialize::InputArchive ar = open_verified_archive(path);  // its errors name the file
  try {
    load_module(ar, module);
  } catch (const archive_error& e) {
    throw archive_error("'" + path.string() + "': " + e.what());
  }
}

// The same for a module holder (TORCH_MODULE's Net, torch::nn::Linear, ...)
// or a shared_ptr to a module, as torch::load takes them.
template <class Holder>
  requires requires(Holder& h) {
    { *h } -> std::convertible_to<torch::nn::Module&>;
  }
void load_module(torch::serialize::InputArchive& ar, Holder& module) {
  load_module(ar, static_cast<torch::nn::Module&>(*module));
}
template <class Holder>
  requires requires(Holder& h) {
    { *h } -> std::convertible_to<torch::nn::Module&>;
  }
void load_verified(const std::filesystem::path& path, Holder& module) {
  load_verified(path, static_cast<torch::nn::Module&>(*module));
}

}  // namespace v0
}  // namespace simic
