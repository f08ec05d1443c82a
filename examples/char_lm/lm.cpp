// The byte-level transformer LM trainer: random windows of the training text
// per step, next-byte cross-entropy, Adam with linear warm-up then cosine
// decay (set through the optimizer's param_groups each step), gradients
// clipped to a total norm of 1.0, the validation loss every --eval-every
// steps. Telemetry call sites (simic's supervised session, telemetry.hpp) are
// marked "telemetry:", fault injection (faults.hpp) "fault".
#include "lm.hpp"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <optional>
#include <random>

#include "../common/summary.hpp"
#include "../common/text.hpp"
#include "data.hpp"
#include "faults.hpp"
#include "model.hpp"
#include "simic/core/signal_guard.hpp"
#include "simic/emit/sink_callback.hpp"
#include "telemetry.hpp"

namespace char_lm {
namespace {

using examples_common::first_line;
using examples_common::format;

bool stop_requested() noexcept { return simic::signal_guard::requested(); }

// The bytes of `text` as an int64 tensor (the embedding's index type).
torch::Tensor bytes_of(const std::string& text) {
  auto t = torch::empty({static_cast<std::int64_t>(text.size())}, torch::kUInt8);
  std::copy(text.begin(), text.end(), reinterpret_cast<char*>(t.data_ptr<std::uint8_t>()));
  return t.to(torch::kLong);
}

template <class Monitor>
class trainer {
 public:
  trainer(const run_options& o, corpus data, std::shared_ptr<simic::jsonl_sink> events,
          std::shared_ptr<simic::tensorboard_sink> tensorboard)
      : o_(o),
        seeded_(seed(o)),
        model_(model_options{.vocab = vocab, .d_model = o.d_model, .heads = o.heads, .layers = o.layers,
                             .context = o.context}),
        opt_(model_->parameters(), torch::optim::AdamOptions(o.lr)),
        params_(model_->parameters()),
        train_(bytes_of(data.train)),
        valid_(bytes_of(data.valid)),
        data_rng_(o.seed * 0x9E3779B97F4A7C15ull + 1),
        event_counts_(std::make_shared<std::map<std::string, std::uint64_t>>()),
        events_(events),
        tel_(make_telemetry<Monitor>(o, *model_, sinks(std::move(events), std::move(tensorboard)))) {
    sum_.events_path = o.events_path;
    if (tensorboard_) sum_.tensorboard_file = tensorboard_->path().string();
    sum_.train_bytes = data.train.size();
    sum_.valid_bytes = data.valid.size();
    sum_.files = data.files.size();
    for (const auto& p : params_) sum_.parameters += static_cast<std::uint64_t>(p.numel());
    if (train_.size(0) <= o.context + 1 || valid_.size(0) <= o.context + 1)
      throw std::invalid_argument(format("--data: %lld training and %lld validation bytes, too few for --context %d",
                                         static_cast<long long>(train_.size(0)),
                                         static_cast<long long>(valid_.size(0)), o.context));
    valid_windows_ = validation_windows();
  }

  run_summary run() {
    const auto t0 = std::chrono::steady_clock::now();
    double epoch_loss = 0.0;
    std::uint64_t epoch_n = 0;
    for (std::uint64_t step = 1; step <= o_.steps && !sum_.stopped && !stop_requested(); ++step) {
      step_record rec = train_step(step);
      if (std::isfinite(rec.loss) && !rec.skipped) {
        epoch_loss += rec.loss;
        ++epoch_n;
      }
      sum_.steps_done = step;
      if (o_.progress_lines && (rec.anomalies > 0 || rec.skipped)) print_step(rec);
      sum_.steps.push_back(rec);
      if (sum_.stopped) break;
      if (step % o_.eval_every == 0 || step == o_.steps) {
        end_epoch(step, epoch_n > 0 ? epoch_loss / static_cast<double>(epoch_n) : nan);
        epoch_loss = 0.0;
        epoch_n = 0;
      }
    }
    examples_common::note_interruption(sum_);
    finish();
    examples_common::settle_exit_code(sum_);  // the first of: signal, events lost, stopped by the monitor
    sum_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::move(sum_);
  }

 private:
  static bool seed(const run_options& o) {
    at::set_num_threads(o.threads);
    torch::manual_seed(o.seed);
    return true;
  }

  std::vector<std::shared_ptr<simic::sink>> sinks(std::shared_ptr<simic::jsonl_sink> events,
                                                  std::shared_ptr<simic::tensorboard_sink> tensorboard) {
    std::vector<std::shared_ptr<simic::sink>> out;
    if (events) out.push_back(std::move(events));
    auto counts = event_counts_;
    out.push_back(std::make_shared<simic::callback_sink>(
        [counts](const simic::event& e) { ++(*counts)[std::string(e.name())]; }, simic::callback_sink::finish_fn{},
        "event_counts"));
    if (tensorboard) {
      tensorboard_ = tensorboard;
      out.push_back(std::move(tensorboard));
    }
    return out;
  }

  // `batch` random windows of context + 1 bytes of the training text.
  torch::Tensor sample_batch() {
    const std::int64_t T = o_.context, last = train_.size(0) - (T + 1);
    std::uniform_int_distribution<std::int64_t> start(0, last);
    auto starts = torch::empty({o_.batch, 1}, torch::kLong);
    auto* s = starts.data_ptr<std::int64_t>();
    for (int b = 0; b < o_.batch; ++b) s[b] = start(data_rng_);
    return train_.index_select(0, (starts + torch::arange(T + 1, torch::kLong)).view({-1})).view({o_.batch, T + 1});
  }

  // eval_batches * batch windows spread evenly over the validation text.
  torch::Tensor validation_windows() const {
    const std::int64_t T = o_.context, n = static_cast<std::int64_t>(o_.eval_batches) * o_.batch;
    const std::int64_t last = valid_.size(0) - (T + 1);
    auto starts = torch::empty({n, 1}, torch::kLong);
    auto* s = starts.data_ptr<std::int64_t>();
    for (std::int64_t i = 0; i < n; ++i) s[i] = n == 1 ? 0 : last * i / (n - 1);
    return valid_.index_select(0, (starts + torch::arange(T + 1, torch::kLong)).view({-1})).view({n, T + 1});
  }

  double validation_loss() {
    torch::NoGradGuard ng;
    const std::int64_t T = o_.context;
    double total = 0.0;
    for (int b = 0; b < o_.eval_batches; ++b) {
      const auto w = valid_windows_.narrow(0, static_cast<std::int64_t>(b) * o_.batch, o_.batch);
      const torch::Tensor logits = model_->forward(w.narrow(1, 0, T));
      total += torch::cross_entropy_loss(logits.reshape({-1, vocab}), w.narrow(1, 1, T).reshape({-1}))
                   .item<double>();
    }
    return total / o_.eval_batches;
  }

  double mlp_norm() {
    torch::NoGradGuard ng;
    const block b = model_->layer(dead_layer_block);
    double sq = 0.0;
    for (const torch::Tensor& t : {b->fc1->weight, b->fc1->bias, b->fc2->weight, b->fc2->bias})
      sq += t.to(torch::kDouble).pow(2).sum().item<double>();
    return std::sqrt(sq);
  }

  step_record train_step(std::uint64_t step) {
    const std::int64_t T = o_.context;
    const step_faults f = step_faults::at(o_, step);  // fault
    step_record rec;
    rec.step = step;
    f.kill(model_);                                   // fault: dead-layer
    const auto batch = f.batch(sample_batch());       // fault: bad-batch
    const auto x = batch.narrow(1, 0, T);
    const auto y = f.targets(batch.narrow(1, 1, T));  // fault: label-shuffle
    rec.lr = f.learning_rate(scheduled_lr(o_, step)); // fault: lr-spike, lr-ramp, lr-collapse
    for (auto& g : opt_.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(rec.lr);

    const torch::Tensor logits = model_->forward_embedded(f.embedded(model_->embed(x)));  // fault: nan-batch
    const torch::Tensor ce = torch::cross_entropy_loss(logits.reshape({-1, vocab}), y.reshape({-1}));
    const torch::Tensor loss = f.loss(ce);            // fault: loss-scale
    opt_.zero_grad();
    loss.backward();
    rec.loss = loss.item<double>();
    rec.mlp_norm = mlp_norm();

    // telemetry: the loss and where training is; the session reads the
    // gradients (before clipping) and the update ratio, checks, emits
    simic::signals s;
    s.loss = rec.loss;
    s.progress = simic::training_progress(step, o_.steps);
    const simic::level before = tel_->level();
    const simic::check_result& r =
        tel_->step(s, simic::update_metrics{.learning_rate = rec.lr}, simic::step_loss{loss});
    for (const auto& a : r.report) {
      sum_.anomalies.push_back({step, a.kind, a.detail, a.severity, a.value, a.threshold});
      ++rec.anomalies;
    }
    if (tel_->level() != before) sum_.level_changes.push_back({step, before, tel_->level()});
    if (const auto& g = tel_->template sensor<simic::gradient_health_sensor<>>().last()) rec.grad_norm = g->total_norm;
    if (r.resp.act == simic::action::proceed) {
      torch::nn::utils::clip_grad_norm_(params_, o_.clip);
      opt_.step();
      ++sum_.optimizer_steps;
    } else {
      opt_.zero_grad();  // skip_step: no step, nothing of these gradients kept
      rec.skipped = true;
      sum_.skips.push_back({step, r.resp.reason});
      if (r.resp.act == simic::action::stop) {
        sum_.stopped = true;
        sum_.stop_reason = r.resp.reason;
        sum_.exit_code = exit_stopped;
      }
    }
    return rec;
  }

  // telemetry: an epoch ends with the validation loss as its performance (higher is better)
  void end_epoch(std::uint64_t step, double train_loss) {
    epoch_record e;
    e.step = step;
    e.train_loss = train_loss;
    e.valid_loss = validation_loss();
    const simic::level before = tel_->level();
    tel_->end_epoch(std::isfinite(e.valid_loss) ? std::optional<double>(-e.valid_loss) : std::nullopt);
    e.level = tel_->level();
    if (e.level != before) sum_.level_changes.push_back({step, before, e.level});
    ++sum_.epochs;
    sum_.final_train_loss = train_loss;
    sum_.final_valid_loss = e.valid_loss;
    if (o_.progress_lines) {
      std::size_t anomalies = 0;
      for (auto it = sum_.anomalies.rbegin(); it != sum_.anomalies.rend() && it->step > last_epoch_step_; ++it)
        ++anomalies;
      const step_record& last = sum_.steps.back();
      std::printf("step %6llu  loss %6.3f  valid %6.3f (%.3f bits/byte)  lr %9.3g  grad %9.4g  level %-7s  "
                  "anomalies %zu\n",
                  static_cast<unsigned long long>(step), train_loss, e.valid_loss, e.valid_loss / std::log(2.0),
                  last.lr, last.grad_norm, std::string(simic::to_string(e.level)).c_str(), anomalies);
      std::fflush(stdout);
    }
    last_epoch_step_ = step;
    sum_.epoch_log.push_back(e);
  }

  void print_step(const step_record& rec) {
    std::string kinds;
    for (auto it = sum_.anomalies.end() - static_cast<std::ptrdiff_t>(rec.anomalies); it != sum_.anomalies.end(); ++it)
      kinds.append(kinds.empty() ? "" : ",").append(simic::to_string(it->kind));
    std::printf("step %6llu  loss %9.4g  lr %9.3g  grad %9.4g  level %-7s  anomalies %zu%s%s\n",
                static_cast<unsigned long long>(rec.step), rec.loss, rec.lr, rec.grad_norm,
                std::string(simic::to_string(tel_->level())).c_str(), rec.anomalies,
                kinds.empty() ? "" : (" (" + kinds + ")").c_str(), rec.skipped ? "  skipped" : "");
    std::fflush(stdout);
  }

  void finish() {
    examples_common::note_events(sum_, tel_->close(close_deadline), events_);
    sum_.event_counts = *event_counts_;
    sum_.checks = tel_->checks();
    tel_->for_each_sensor([&](const auto& s) {
      if (s.measurements() > 0) sum_.sensor_events[std::string(s.name)] = s.measurements();
    });
    torch::NoGradGuard ng;
    for (const auto& p : params_) sum_.weights_finite = sum_.weights_finite && torch::isfinite(p).all().item<bool>();
  }

  const run_options& o_;
  bool seeded_;
  run_summary sum_;
  lm model_;
  torch::optim::Adam opt_;
  std::vector<torch::Tensor> params_;
  torch::Tensor train_, valid_, valid_windows_;
  std::mt19937_64 data_rng_;  // the training windows (apart from LibTorch's generator, which faults draw on)
  std::shared_ptr<std::map<std::string, std::uint64_t>> event_counts_;
  std::shared_ptr<simic::jsonl_sink> events_;
  std::shared_ptr<simic::tensorboard_sink> tensorboard_;
  std::unique_ptr<telemetry<Monitor>> tel_;
  std::uint64_t last_epoch_step_ = 0;
};

template <class Monitor>
run_summary run_with(const run_options& o, corpus data, std::shared_ptr<simic::jsonl_sink> events,
                     std::shared_ptr<simic::tensorboard_sink> tensorboard) {
  trainer<Monitor> t(o, std::move(data), std::move(events), std::move(tensorboard));
  return t.run();
}

}  // namespace

run_summary run(const run_options& o) {
  // Everything that can be refused is refused before a file is touched:
  // options, the data, then the events file and the TensorBoard directory.
  o.validate();
  corpus data = load_fortunes(o.data_dir);
  std::shared_ptr<simic::jsonl_sink> events = open_events(o);
  std::shared_ptr<simic::tensorboard_sink> tensorboard = open_tensorboard(o);
  try {
    return o.preset == detector_preset::reference
               ? run_with<reference_monitor_type>(o, std::move(data), std::move(events), std::move(tensorboard))
               : run_with<monitor_type>(o, std::move(data), std::move(events), std::move(tensorboard));
  } catch (const c10::Error& e) {
    throw std::runtime_error("LibTorch: " + first_line(e.what_without_backtrace()));
  }
}

std::string describe(const run_summary& s) {
  using ull = unsigned long long;
  const double ln2 = std::log(2.0);
  std::string out;
  out += format("steps %llu, %.1f s; train loss %.3f (%.3f bits/byte), validation loss %.3f (%.3f bits/byte); "
                "uniform bytes: %.3f\n",
                static_cast<ull>(s.steps_done), s.seconds, s.final_train_loss, s.final_train_loss / ln2,
                s.final_valid_loss, s.final_valid_loss / ln2, std::log(256.0));
  out += format("optimizer steps %llu, skipped %zu, checks %llu, epochs %llu\n", static_cast<ull>(s.optimizer_steps),
                s.skips.size(), static_cast<ull>(s.checks), static_cast<ull>(s.epochs));
  out += examples_common::describe_anomalies(s, "step", [](const anomaly_record& a) { return a.step; });
  out += "\n";
  out += examples_common::describe_ending(s);
  return out;
}

}  // namespace char_lm
