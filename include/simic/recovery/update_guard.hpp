// simic::update_guard: keeps a bad update out of the weights on the device,
// with no host round trip. Before the optimizer's step it copies what the
// step changes (the parameters that have a gradient and their optimizer
// state tensors); after it, each of them becomes where(ok, new, old), `ok`
// a bool scalar on the device: no NaN/Inf among the step's gradients and,
// with max_norm, their total norm at most max_norm, taken from the packed
// rows of the one gradient read the session's check judges. A kept step is
// bitwise the plain optimizer.step(); a kept-out one leaves the parameters
// and the state tensors bitwise as they were. Nothing in the step reads a
// device value on the host (no item(), no copy to the host that waits).
//
// What the device cannot undo is host state: an optimizer's int64 step
// counter (Adam, AdamW, RMSprop, Adagrad) and the state entries a first
// step creates. The verdict is copied to the host behind the step
// (reduce/host_copy.hpp) and read one step later, by the next step() or by
// settle(), which sets the counters of a kept-out step back and removes the
// entries it created. undo() takes a kept update back (a deferred
// skip_step, docs/guide.md "A deferred check").
//
//   simic::update_guard guard(optimizer, {.max_norm = 10.0});
//   const simic::step_result& r = tel.step(s);  // deferred: the previous step's verdict
//   if (r.resp.act == simic::action::stop) break;
//   if (r.resp.act == simic::action::skip_step && guard.undo(r.judged)) continue;  // and drop this step
//   guard.step(tel);                            // instead of optimizer.step()
//
// Memory: one copy of what a step changes, kept between steps (undo() needs
// it); Adam: the parameters with a gradient and two moments, 3 x their
// bytes. Traffic per step: that copy (read and written once) and the
// where (both read, the result written): 5 x its bytes, besides the
// optimizer's own (docs/recovery.md, "The device-side guard").
//
// Optimizers: torch::optim Adam, AdamW, SGD, RMSprop and Adagrad, whose
// state tensors the guard knows by type. LBFGS is refused (its step reads
// values to the host itself), as is an optimizer of another type.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/optim/adagrad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/optimizer.h>
#include <torch/optim/rmsprop.h>
#include <torch/optim/sgd.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "simic/core/error.hpp"
#include "simic/reduce/auto_backend.hpp"
#include "simic/reduce/backend.hpp"
#include "simic/reduce/host_copy.hpp"
#include "simic/reduce/stat_layout.hpp"
#include "simic/recovery/detail/tensor_text.hpp"
#include "simic/sensors/torch_compat.hpp"

namespace simic {
inline namespace v0 {

struct update_guard_options {
  // Also keep out an update whose gradients' total L2 norm (clip_grad_norm_'s,
  // over the gradients judged) is above this: (0, inf]. None: only
  // non-finite gradients keep an update out.
  std::optional<double> max_norm{};
};

class update_guard {
 public:
  explicit update_guard(torch::optim::Optimizer& optimizer, update_guard_options o = {})
      : opt_(optimizer), opts_(o), kind_(kind_of(optimizer)) {
    const char* who = "simic::update_guard";
    detail::require(!opts_.max_norm || *opts_.max_norm > 0.0, who, "max_norm", opts_.max_norm.value_or(0.0),
                    "(0, inf] (none: no norm limit)");
    std::size_t n = 0;
    for (const auto& g : opt_.param_groups()) n += g.params().size();
    detail::require(n > 0, who, "optimizer", "no parameters", "an optimizer with at least one parameter");
  }
  update_guard(const update_guard&) = delete;
  update_guard& operator=(const update_guard&) = delete;

  // The verdict on the device from packed gradient rows (reduce/backend.hpp):
  // a bool scalar on their device, true when they count no NaN and no Inf
  // and, with max_norm, sqrt(sum of their sums of squares) <= max_norm.
  at::Tensor judge(const at::Tensor& rows) const {
    detail::require(rows.defined() && rows.dim() == 2 && rows.size(1) == stat::count &&
                        rows.scalar_type() == at::kDouble,
                    "simic::update_guard::judge", "rows", detail::tensor_text(rows),
                    "packed stats rows: a [tensors, stat::count] float64 tensor (reduce/backend.hpp)");
    static_assert(stat::infs == stat::nans + 1, "the NaN and Inf counts are adjacent columns");
    at::NoGradGuard no_grad;
    at::Tensor ok = rows.narrow(1, stat::nans, 2).sum().eq(0);  // counts: exact in float64
    if (opts_.max_norm) ok = ok.logical_and(rows.select(1, stat::sumsq).sum().sqrt().le(*opts_.max_norm));
    return ok;
  }

  // optimizer.step() with its changes to the parameters and to the state
  // tensors of entries that existed kept only where `ok` (a 0-dim bool
  // tensor on the parameters' device). The previous step is settled first.
  void step(const at::Tensor& ok) {
    std::vector<at::Tensor> params = stepped();
    check_ok(ok, params);
    step_checked(ok, std::move(params));
  }

  // The same, judged from the gradients that `s`'s latest step() read (the
  // read its check judges, gradient_health_sensor::step_stats()), or, when
  // that step read none (not due, OFF), from a read of the optimizer's
  // gradients of its own. Call it after the step's session.step(). Every
  // parameter of the optimizer that has a gradient must be watched by the
  // session (std::invalid_argument otherwise, nothing changed).
  template <class Session>
  void step(Session& s) {
    const char* where = "simic::update_guard::step";
    std::vector<at::Tensor> params = stepped();
    if (seen_steps_ && *seen_steps_ == s.steps())
      throw std::logic_error(std::string(where) + ": the session has not stepped since the guard's last step; "
                             "call session.step(...) for this step's gradients first");
    covered(s, params, where);
    at::Tensor rows;
    s.for_each_sensor([&](const auto& x) {
      if constexpr (requires { x.step_stats(); })
        if (!rows.defined()) rows = x.step_stats();
    });
    if (!rows.defined() || (rows.size(0) == 0 && !params.empty())) {
      std::vector<at::Tensor> grads;
      for (const at::Tensor& p : params) grads.push_back(p.grad());
      rows = auto_backend{}.reduce(reduce_request{grads, stat_set::basic});
    }
    const at::Tensor ok = judge(rows);
    check_ok(ok, params);
    step_checked(ok, std::move(params));
    last_->check = s.pending() ? s.pending()->check : s.checks();  // the step whose verdict may undo this
    seen_steps_ = s.steps();
  }

  // The latest step's verdict on the host (nullopt: no step yet). Waits for
  // its copy only if it has not arrived (host_copy_waits()); the first call
  // after a kept-out step sets the host state the device could not: each
  // step counter back by one, the state entries the step created removed.
  // step() and undo() call it first.
  std::optional<bool> settle() {
    if (!last_) return std::nullopt;
    latest& l = *last_;
    if (!l.settled) {
      const bool kept = !l.ok.defined() || l.ok.wait().data_ptr<bool>()[0];
      if (!kept) revert_host(l);
      l.kept = kept;
      l.settled = true;
      if (!kept) ++kept_out_;
    }
    return l.kept;
  }

  // Takes the update of the step a (late) verdict judged back, when that is
  // the guard's latest step (step(session) records which) and it was kept:
  // the parameters and the optimizer's state as before it, bitwise. False
  // when there is nothing to take back: the step was kept out on the
  // device, or its update was never taken (a step the trainer dropped),
  // or it was undone already, or `judged` is empty.
  template <class Judged>
  bool undo(const std::optional<Judged>& judged) {
    if (!judged || !last_ || last_->check != judged->check) return false;
    return undo();
  }
  // The same for the guard's latest step, whichever it was.
  bool undo() {
    if (!last_ || last_->undone || !settle().value_or(false)) return false;
    latest& l = *last_;
    revert_host(l);  // checks first: throws before any tensor changes
    at::NoGradGuard no_grad;
    for (std::size_t i = 0; i < l.targets.size(); ++i) l.targets[i].copy_(backups_[i]);
    l.undone = true;
    ++undone_;
    return true;
  }

  // Forgets the latest step (nothing to settle or undo): after the
  // parameters and the optimizer's state were restored from elsewhere (a
  // rollback, a checkpoint load), which a later settle() must not touch.
  void reset() noexcept { last_.reset(); }

  std::uint64_t steps() const noexcept { return steps_; }           // guarded steps
  std::uint64_t kept_out() const noexcept { return kept_out_; }     // of them, settled as kept out
  std::uint64_t undone() const noexcept { return undone_; }         // updates taken back by undo()
  // Bytes held between steps: the copy of what the latest step changed.
  std::uint64_t backup_bytes() const noexcept {
    std::uint64_t n = 0;
    for (const at::Tensor& b : backups_) n += static_cast<std::uint64_t>(b.numel()) * b.element_size();
    return n;
  }
  const update_guard_options& options() const noexcept { return opts_; }

 private:
  enum class kind : unsigned char { adam, adamw, sgd, rmsprop, adagrad };

  // What the latest step changed, for settle() and undo().
  struct latest {
    std::vector<at::Tensor> params;         // stepped (had a gradient)
    std::vector<bool> had_state;            // an optimizer state entry before the step
    std::vector<std::int64_t> counter;      // each entry's step counter right after it (-1: none)
    std::vector<at::Tensor> targets;        // the parameters, then the existing entries' state tensors (as backups_)
    host_copy ok;                           // the verdict, on its way to the host
    std::uint64_t check = 0;                // the session's check of this step (0: stepped without one)
    bool settled = false, kept = true, undone = false;
  };

  static kind kind_of(torch::optim::Optimizer& o) {
    if (dynamic_cast<torch::optim::Adam*>(&o)) return kind::adam;
    if (dynamic_cast<torch::optim::AdamW*>(&o)) return kind::adamw;
    if (dynamic_cast<torch::optim::SGD*>(&o)) return kind::sgd;
    if (dynamic_cast<torch::optim::RMSprop*>(&o)) return kind::rmsprop;
    if (dynamic_cast<torch::optim::Adagrad*>(&o)) return kind::adagrad;
    detail::throw_invalid("simic::update_guard", "optimizer", detail::optimizer_type_name(o),
                          "torch::optim Adam, AdamW, SGD, RMSprop or Adagrad (LBFGS reads values to the host in "
                          "its own step; another type's state tensors are unknown to the guard)");
  }

  // Calls f(state) with the entry as its concrete type.
  template <class F>
  void visit(torch::optim::OptimizerParamState& st, F&& f) const {
    switch (kind_) {
      case kind::adam: return f(static_cast<torch::optim::AdamParamState&>(st));
      case kind::adamw: return f(static_cast<torch::optim::AdamWParamState&>(st));
      case kind::sgd: return f(static_cast<torch::optim::SGDParamState&>(st));
      case kind::rmsprop: return f(static_cast<torch::optim::RMSpropParamState&>(st));
      case kind::adagrad: return f(static_cast<torch::optim::AdagradParamState&>(st));
    }
  }
  // The entry's defined state tensors, in a fixed order.
  void state_tensors(torch::optim::OptimizerParamState& st, std::vector<at::Tensor>& out) const {
    auto add = [&](const at::Tensor& t) {
      if (t.defined()) out.push_back(t);
    };
    visit(st, [&](auto& s) {
      using S = std::decay_t<decltype(s)>;
      if constexpr (std::is_same_v<S, torch::optim::AdamParamState> || std::is_same_v<S, torch::optim::AdamWParamState>) {
        add(s.exp_avg());
        add(s.exp_avg_sq());
        add(s.max_exp_avg_sq());
      } else if constexpr (std::is_same_v<S, torch::optim::SGDParamState>) {
        add(s.momentum_buffer());
      } else if constexpr (std::is_same_v<S, torch::optim::RMSpropParamState>) {
        add(s.square_avg());
        add(s.momentum_buffer());
        add(s.grad_avg());
      } else {
        add(s.sum());
      }
    });
  }
  // The entry's step counter (-1: its type keeps none).
  std::int64_t counter(torch::optim::OptimizerParamState& st) const {
    std::int64_t c = -1;
    visit(st, [&](auto& s) {
      if constexpr (requires { s.step(); }) c = s.step();
    });
    return c;
  }
  void set_counter(torch::optim::OptimizerParamState& st, std::int64_t c) const {
    visit(st, [&](auto& s) {
      if constexpr (requires { s.step(); }) s.step(c);
    });
  }

  // The optimizer's parameters that have a gradient: what its step changes.
  std::vector<at::Tensor> stepped() const {
    std::vector<at::Tensor> out;
    for (const auto& g : opt_.param_groups())
      for (const at::Tensor& p : g.params())
        if (p.grad().defined()) out.push_back(p);
    return out;
  }

  void check_ok(const at::Tensor& ok, const std::vector<at::Tensor>& params) const {
    const char* where = "simic::update_guard::step";
    const at::Device device = params.empty() ? (ok.defined() ? ok.device() : at::Device(at::kCPU)) : params[0].device();
    for (std::size_t i = 1; i < params.size(); ++i)
      detail::require(params[i].device() == device, where, "parameter " + std::to_string(i) + " (with a gradient)",
                      params[i].device(), "one device for every parameter (" + device.str() + ")");
    detail::require(ok.defined() && ok.scalar_type() == at::kBool && ok.dim() == 0 && ok.device() == device, where,
                    "ok", detail::tensor_text(ok), "a 0-dim bool tensor on the parameters' device (" + device.str() + ")");
  }

  // Every optimizer parameter with a gradient is watched by the session, so
  // that the read the guard judges by is the one its check judges.
  template <class Session>
  void covered(const Session& s, const std::vector<at::Tensor>& params, const char* where) {
    const auto w = s.weights();
    if (w.data() != watched_of_ || w.size() != watched_.size()) {
      watched_.clear();
      for (const at::Tensor& t : w) watched_.insert(t.unsafeGetTensorImpl());
      watched_of_ = w.data();
    }
    for (std::size_t i = 0; i < params.size(); ++i)
      if (!watched_.count(params[i].unsafeGetTensorImpl()))
        detail::throw_invalid(where, "session", "watches " + std::to_string(w.size()) + " parameters, not the optimizer's " +
                                                     "parameter " + std::to_string(i) + " with a gradient",
                              "a session that watches every parameter the optimizer steps (session_options::watch)");
  }

  void step_checked(const at::Tensor& ok, std::vector<at::Tensor> params) {
    settle();  // the previous step's host state, from its verdict (arrived by now)
    at::NoGradGuard no_grad;
    latest l;
    l.params = std::move(params);
    std::vector<torch::optim::OptimizerParamState*> before;
    l.targets = l.params;
    for (const at::Tensor& p : l.params) {
      torch::optim::OptimizerParamState* st = detail::optimizer_param_state(opt_, p);
      before.push_back(st);
      l.had_state.push_back(st != nullptr);
      if (st) state_tensors(*st, l.targets);
    }
    // The copy of what the step changes, in buffers kept from step to step.
    backups_.resize(l.targets.size());
    for (std::size_t i = 0; i < l.targets.size(); ++i) {
      const at::Tensor& t = l.targets[i];
      at::Tensor& b = backups_[i];
      if (!b.defined() || b.sizes() != t.sizes() || b.strides() != t.strides() || b.scalar_type() != t.scalar_type() ||
          b.device() != t.device())
        b = at::empty_like(t);
      b.copy_(t);
    }
    opt_.step();
    // The entries as they are now (a step may have replaced a state tensor).
    std::vector<at::Tensor> now = l.params;
    for (std::size_t i = 0; i < l.params.size(); ++i) {
      torch::optim::OptimizerParamState* st = detail::optimizer_param_state(opt_, l.params[i]);
      l.counter.push_back(st ? counter(*st) : -1);
      if (l.had_state[i] && st) state_tensors(*st, now);
    }
    if (now.size() != l.targets.size())
      throw std::logic_error("simic::update_guard::step: the optimizer's step changed which state tensors an entry "
                             "holds; the guard cannot restore them");
    for (std::size_t i = 0; i < now.size(); ++i) at::where_out(now[i], ok, now[i], backups_[i]);
    l.targets = std::move(now);
    l.ok = host_copy(ok);
    last_ = std::move(l);
    ++steps_;
  }

  // The host state of a step taken back (kept out on the device, or undone):
  // counters back by one, the entries it created removed. All checked first.
  void revert_host(const latest& l) {
    for (std::size_t i = 0; i < l.params.size(); ++i) {
      torch::optim::OptimizerParamState* st = detail::optimizer_param_state(opt_, l.params[i]);
      if (l.had_state[i] && (!st || counter(*st) != l.counter[i]))
        throw std::logic_error("simic::update_guard: the optimizer's state changed since the guard's step (a step or "
                               "a load outside the guard?); call reset() after restoring it from elsewhere");
    }
    for (std::size_t i = 0; i < l.params.size(); ++i) {
      if (!l.had_state[i]) {
        detail::erase_optimizer_param_state(opt_, l.params[i]);
        continue;
      }
      torch::optim::OptimizerParamState* st = detail::optimizer_param_state(opt_, l.params[i]);
      if (l.counter[i] >= 0) set_counter(*st, l.counter[i] - 1);
    }
  }

  torch::optim::Optimizer& opt_;
  update_guard_options opts_;
  kind kind_;
  std::vector<at::Tensor> backups_;  // the copy of the latest step's targets
  std::optional<latest> last_;
  std::optional<std::uint64_t> seen_steps_;  // the session's steps() at the guard's last step(session)
  std::unordered_set<const void*> watched_;  // the session's watched parameters (TensorImpl)
  const at::Tensor* watched_of_ = nullptr;
  std::uint64_t steps_ = 0, kept_out_ = 0, undone_ = 0;
};

}  // namespace v0
}  // namespace simic
