// simic's Python module (`simic._simic`): the C++ session, its presets and
// sinks, called from Python; it only turns Python values into signals and
// the check's result back (docs/python.md, docs/decisions/python.md).
#include <torch/extension.h>

#include <chrono>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "report.hpp"
#include "simic/emit/sink_jsonl.hpp"
#include "simic/emit/sink_tensorboard.hpp"
#include "simic/presets/ppo_session.hpp"
#include "simic/presets/reference.hpp"
#include "simic/presets/supervised_session.hpp"

namespace py = pybind11;

namespace {

using named = std::vector<std::pair<std::string, torch::Tensor>>;

// An event's fields as Python values, through the event's own describe():
// the same names as its JSONL line (one definition of each field's name).
class dict_writer final : public simic::field_writer {
 public:
  explicit dict_writer(py::dict root = {}) : root_(std::move(root)) { stack_.push_back(root_); }
  py::dict result() const { return root_; }

  void real(std::string_view k, double v, std::string_view = {}) override { put(k, py::float_(v)); }
  void count(std::string_view k, std::uint64_t v, std::string_view = {}) override { put(k, py::int_(v)); }
  void integer(std::string_view k, std::int64_t v) override { put(k, py::int_(v)); }
  void flag(std::string_view k, bool v, std::string_view = {}) override { put(k, py::bool_(v)); }
  void text(std::string_view k, std::string_view v) override { put(k, py::str(v.data(), v.size())); }
  void integers(std::string_view k, std::span<const std::int64_t> v) override {
    py::list l;
    for (const std::int64_t x : v) l.append(x);
    put(k, l);
  }
  void texts(std::string_view k, std::span<const std::string> v) override {
    py::list l;
    for (const std::string& x : v) l.append(py::str(x));
    put(k, l);
  }
  void begin_array(std::string_view k) override {
    py::list l;
    put(k, l);
    stack_.push_back(l);
  }
  void begin_object(std::string_view k = {}) override {
    py::dict d;
    put(k, d);
    stack_.push_back(d);
  }
  void end() override { stack_.pop_back(); }

 private:
  void put(std::string_view k, py::object v) {
    py::object& top = stack_.back();
    if (py::isinstance<py::list>(top))
      top.cast<py::list>().append(v);
    else
      top.cast<py::dict>()[py::str(k.data(), k.size())] = v;
  }
  py::dict root_;
  std::vector<py::object> stack_;
};

// simic.layer_gradients(...)["layers"]: a sequence whose items, one dict of
// a layer's fields each, are made when read; so the call costs what the C++
// sensor costs, however many layers (docs/python.md).
class layer_list {
 public:
  explicit layer_list(std::shared_ptr<const simic::layer_gradient_report> r) : r_(std::move(r)) {}
  std::size_t size() const noexcept { return r_->layers.size(); }
  py::dict at(std::ptrdiff_t i) const {
    const auto n = static_cast<std::ptrdiff_t>(size());
    if (i < -n || i >= n)
      throw py::index_error("simic.LayerList: index " + std::to_string(i) + " is out of range; valid: [" +
                            std::to_string(-n) + ", " + std::to_string(n) + ")");
    dict_writer w;
    simic::layer_gradients_event::describe_layer(w, r_->layers[static_cast<std::size_t>(i < 0 ? i + n : i)]);
    return w.result();
  }

 private:
  std::shared_ptr<const simic::layer_gradient_report> r_;
};

template <class Event>
py::dict fields_of(const Event& e) {
  dict_writer w;
  e.describe(w);
  return w.result();
}

// One interface over the presets' session types (chosen at run time).
struct session_api {
  virtual ~session_api() = default;
  virtual const simic::check_result& step(const simic::signals& s) = 0;
  virtual void end_epoch(std::optional<double> performance) = 0;
  virtual void end_rollout(const simic::rollout_figures& f) = 0;
  virtual void lstm_state(const torch::Tensor& h, const torch::Tensor& c) = 0;
  virtual void begin_update() = 0;
  virtual void close() = 0;
  virtual simic::level level() const = 0;
};

// HasLstm: the preset's session has the LSTM sensor (takes simic::lstm_state).
template <class S, bool HasLstm>
struct session_impl final : session_api {
  template <class... A>
  explicit session_impl(A&&... a) : s(std::forward<A>(a)...) {}
  const simic::check_result& step(const simic::signals& x) override { return s.step(x); }
  void end_epoch(std::optional<double> p) override { s.end_epoch(p); }
  void end_rollout(const simic::rollout_figures& f) override { s.end_rollout(f); }
  void lstm_state(const torch::Tensor& h, const torch::Tensor& c) override {
    if constexpr (HasLstm)
      s.feed(simic::lstm_state{h, c});
    else
      throw py::value_error("simic.Session.lstm_state: this preset has no LSTM detector (use preset='ppo' or 'reference')");
  }
  void begin_update() override { s.begin_update(); }
  void close() override { s.close(); }
  simic::level level() const override { return s.level(); }
  S s;
};

// simic.JsonlSink(path), simic.TensorBoardSink(log_dir): what the session
// makes its C++ sinks from when it starts.
struct sink_spec {
  virtual ~sink_spec() = default;
  virtual std::shared_ptr<simic::sink> make() const = 0;
};
struct jsonl_sink_spec final : sink_spec {
  explicit jsonl_sink_spec(std::string p) : path(std::move(p)) {}
  std::shared_ptr<simic::sink> make() const override { return std::make_shared<simic::jsonl_sink>(path); }
  std::string path;
};
struct tensorboard_sink_spec final : sink_spec {
  explicit tensorboard_sink_spec(std::string d) : log_dir(std::move(d)) {}
  std::shared_ptr<simic::sink> make() const override { return std::make_shared<simic::tensorboard_sink>(log_dir); }
  std::string log_dir;
};
using sink_specs = std::vector<std::shared_ptr<sink_spec>>;

// A Python int or float, not a bool (which Python counts as an int).
bool is_number(const py::handle& v) {
  return !py::isinstance<py::bool_>(v) && (py::isinstance<py::float_>(v) || py::isinstance<py::int_>(v));
}

std::string type_name(const py::handle& v) { return py::str(py::type::of(v).attr("__name__")); }

// A module's named_parameters(), or a list of (name, tensor): floating-point
// tensors on a device with data (the sensors read every element).
named parameters_of(const py::object& source) {
  constexpr auto what = "simic: model_or_named_parameters";
  // A list or tuple is the parameters themselves; asked of a list, hasattr
  // would raise and clear an AttributeError at every call.
  const bool module = !PyList_Check(source.ptr()) && !PyTuple_Check(source.ptr()) && py::hasattr(source, "named_parameters");
  if (!module && (source.is_none() || !py::isinstance<py::iterable>(source)))
    throw py::type_error(std::string(what) + " must be a torch.nn.Module or a list of (name, tensor), not " +
                         type_name(source));
  // Read through the C API in place (no pybind11 cast per item): the sensor
  // functions make this list at every call.
  const py::object items = module ? source.attr("named_parameters")() : source;
  const py::object seq = py::reinterpret_steal<py::object>(PySequence_Fast(items.ptr(), "not iterable"));
  if (!seq) throw py::error_already_set();
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.ptr());
  named out;
  out.reserve(static_cast<std::size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* const it = PySequence_Fast_GET_ITEM(seq.ptr(), i);
    if (!PyTuple_Check(it) || PyTuple_GET_SIZE(it) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(it, 0)) ||
        !THPVariable_Check(PyTuple_GET_ITEM(it, 1)))
      throw py::type_error(std::string(what) + ": items must be (name, tensor), not " +
                           std::string(py::repr(py::handle(it))));
    Py_ssize_t size = 0;
    const char* const chars = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(it, 0), &size);
    if (!chars) throw py::error_already_set();
    const std::string name(chars, static_cast<std::size_t>(size));
    const torch::Tensor& t = THPVariable_Unpack(PyTuple_GET_ITEM(it, 1));
    if (!t.is_floating_point())
      throw py::value_error(std::string(what) + ": '" + name + "' has dtype " + std::string(c10::toString(t.scalar_type())) +
                            "; valid: a floating-point dtype");
    if (!t.device().is_cpu() && !t.device().is_cuda())
      throw py::value_error(std::string(what) + ": '" + name + "' is on device " + t.device().str() +
                            "; valid: cpu or cuda");
    out.emplace_back(name, t);
  }
  return out;
}

// A whole number >= `least` for the session option `name`.
template <class T>
T whole_option(const py::handle& v, const std::string& name, long long least) {
  if (py::isinstance<py::bool_>(v) || !py::isinstance<py::int_>(v))
    throw py::type_error("simic.Session: " + name + " must be an integer");
  const auto big = v.cast<py::int_>();
  if (big < py::int_(least) || big > py::int_(std::numeric_limits<T>::max()))
    throw py::value_error("simic.Session: " + name + " = " + std::string(py::str(v)) + " is out of range; valid: [" +
                          std::to_string(least) + ", " + std::to_string(std::numeric_limits<T>::max()) + "]");
  return v.cast<T>();
}

bool flag_option(const py::handle& v, const std::string& name) {
  if (!py::isinstance<py::bool_>(v)) throw py::type_error("simic.Session: " + name + " must be True or False");
  return v.cast<bool>();
}

std::vector<std::string> names_option(const py::handle& v, const std::string& name) {
  if (py::isinstance<py::str>(v) || !py::isinstance<py::sequence>(v))
    throw py::type_error("simic.Session: " + name + " must be a list of str");
  std::vector<std::string> out;
  for (const py::handle x : v.cast<py::sequence>()) {
    if (!py::isinstance<py::str>(x)) throw py::type_error("simic.Session: " + name + " must be a list of str");
    out.push_back(x.cast<std::string>());
  }
  return out;
}

std::vector<simic::anomaly_kind> kinds_option(const py::handle& v, const std::string& name) {
  std::vector<simic::anomaly_kind> out;
  for (const std::string& k : names_option(v, name)) {
    try {
      out.push_back(simic::parse_anomaly_kind(k));
    } catch (const std::invalid_argument& e) {
      throw py::value_error("simic.Session: " + name + ": " + e.what());
    }
  }
  return out;
}

// Session(**options): the C++ session_options a Python user sets, by the
// C++ field's name (docs/python.md lists them); anything else is refused.
simic::session_options session_options_of(const py::kwargs& kw) {
  simic::session_options o;
  for (const auto& [k, v] : kw) {
    const std::string key = k.cast<std::string>();
    if (key == "level") {
      if (!py::isinstance<py::str>(v)) throw py::type_error("simic.Session: level must be a str");
      try {
        o.config.configured = simic::parse_level(v.cast<std::string>());
      } catch (const std::invalid_argument& e) {
        throw py::value_error(std::string("simic.Session: ") + e.what());
      }
    } else if (key == "auto_escalate") {
      o.config.auto_escalate = flag_option(v, key);
    } else if (key == "escalation_epochs") {
      o.config.escalation_epochs = whole_option<std::uint32_t>(v, key, 0);
    } else if (key == "escalation_checks") {
      o.config.escalation_checks = whole_option<std::uint32_t>(v, key, 0);
    } else if (key == "missing_signal_checks") {
      o.config.missing_signal_checks = whole_option<std::uint32_t>(v, key, 0);
    } else if (key == "max_consecutive_skips") {
      o.max_consecutive_skips = whole_option<std::uint32_t>(v, key, 1);
    } else if (key == "skip_critical") {
      o.skip.critical = flag_option(v, key);
    } else if (key == "skip_on") {
      o.skip.skip_on = kinds_option(v, key);
    } else if (key == "pass_on") {
      o.skip.pass_on = kinds_option(v, key);
    } else if (key == "watch") {
      for (std::string& g : names_option(v, key)) o.watch.include(std::move(g));
    } else if (key == "ignore") {
      for (std::string& g : names_option(v, key)) o.watch.exclude(std::move(g));
    } else if (key == "queue_capacity") {
      o.hub.capacity = whole_option<std::uint32_t>(v, key, 1);
    } else if (key == "close_deadline_ms") {
      o.close_deadline = std::chrono::milliseconds(whole_option<std::uint32_t>(v, key, 0));
    } else {
      throw py::type_error("simic.Session: unknown option '" + key +
                           "'; valid: level, auto_escalate, escalation_epochs, escalation_checks, "
                           "missing_signal_checks, max_consecutive_skips, skip_critical, skip_on, pass_on, watch, "
                           "ignore, queue_capacity, close_deadline_ms");
    }
  }
  return o;
}

class py_session {
 public:
  py_session(const py::object& model, const sink_specs& sinks, const std::string& preset, const py::kwargs& options) {
    const named params = parameters_of(model);
    const simic::session_options o = session_options_of(options);
    std::vector<std::shared_ptr<simic::sink>> out;
    for (const auto& s : sinks) {
      if (!s) throw py::type_error("simic.Session: sinks: None is not a sink");
      out.push_back(s->make());
    }
    if (preset == "supervised")
      impl_ = std::make_unique<session_impl<simic::supervised_session<>, false>>(o, params, out);
    else if (preset == "ppo")
      impl_ = std::make_unique<session_impl<simic::ppo_session<>, true>>(o, params, out);
    else if (preset == "ppo_feedforward")
      impl_ = std::make_unique<session_impl<simic::ppo_feedforward_session<>, false>>(o, params, out);
    else if (preset == "reference")
      impl_ = std::make_unique<session_impl<simic::ppo_sensor_session<simic::reference_monitor>, true>>(
          simic::make_reference_monitor(), o, params, out);
    else
      throw py::value_error("simic.Session: preset: '" + preset +
                            "' is not one of 'ppo', 'ppo_feedforward', 'supervised', 'reference'");
  }

  py::dict step(const py::kwargs& kw) {
    session_api& impl = open("step");
    simic::signals s;
    std::vector<std::string> names;
    std::vector<simic::user_signal> user;
    std::vector<std::string> heads;  // entropy's head names, owned here while the step runs
    std::vector<simic::head_entropy> entropy;
    for (const auto& [k, v] : kw) {
      const std::string key = k.cast<std::string>();
      if (key == "user") {
        if (v.is_none()) continue;
        if (!py::isinstance<py::dict>(v)) throw py::type_error("simic.Session.step: user must be a dict {name: number}");
        for (const auto& [uk, uv] : v.cast<py::dict>()) {
          if (!py::isinstance<py::str>(uk)) throw py::type_error("simic.Session.step: user's names must be str");
          names.push_back(uk.cast<std::string>());
          user.push_back({{}, number(uv, "user['" + names.back() + "']")});
        }
        continue;
      }
      if (key == "entropy") {  // {head: normalised entropy}
        if (v.is_none()) continue;
        if (!py::isinstance<py::dict>(v))
          throw py::type_error("simic.Session.step: entropy must be a dict {head: normalised entropy}");
        for (const auto& [hk, hv] : v.cast<py::dict>()) {
          if (!py::isinstance<py::str>(hk)) throw py::type_error("simic.Session.step: entropy's heads must be str");
          heads.push_back(hk.cast<std::string>());
          entropy.push_back({{}, number(hv, "entropy['" + heads.back() + "']")});
        }
        continue;
      }
      if (key == "progress") {  // (step, total): where training is, 1 <= step <= total
        if (v.is_none()) continue;
        const auto whole = [](const py::handle& x) {
          return py::isinstance<py::int_>(x) && !py::isinstance<py::bool_>(x) && x.cast<py::int_>() >= py::int_(0);
        };
        if (!py::isinstance<py::tuple>(v) || py::len(v) != 2 || !whole(v.cast<py::tuple>()[0]) ||
            !whole(v.cast<py::tuple>()[1]))
          throw py::type_error("simic.Session.step: progress must be (step, total), two integers >= 0");
        const auto t = v.cast<py::tuple>();
        s.progress.emplace(t[0].cast<std::uint64_t>(), t[1].cast<std::uint64_t>());
        continue;
      }
      std::optional<double>* field = nullptr;  // the scalar signals by their one name (core/signals.hpp)
      for (const simic::scalar_signal& d : simic::scalar_signals)
        if (d.name() == key) field = &(s.*d.member);
      if (!field) throw py::type_error("simic.Session.step: unknown argument '" + key + "'");
      if (!v.is_none()) *field = number(v, key);
    }
    for (std::size_t i = 0; i < user.size(); ++i) user[i].name = names[i];
    s.user = user;
    for (std::size_t i = 0; i < entropy.size(); ++i) entropy[i].head = heads[i];
    s.entropy = entropy;
    const simic::check_result& r = impl.step(s);
    py::list anomalies;
    for (const simic::anomaly& a : r.report) {
      py::dict d;
      d["kind"] = std::string(simic::to_string(a.kind));
      d["severity"] = std::string(simic::to_string(a.severity));
      d["value"] = a.value;
      d["threshold"] = a.threshold;
      d["baseline"] = a.baseline ? py::cast(*a.baseline) : py::none();
      d["detail"] = a.detail;
      anomalies.append(d);
    }
    py::dict out;
    out["action"] = r.resp.act == simic::action::proceed ? "proceed" : r.resp.act == simic::action::skip_step ? "skip" : "stop";
    out["anomalies"] = anomalies;
    out["level"] = std::string(simic::to_string(impl.level()));
    return out;
  }

  void end_epoch(const py::object& performance) {
    open("end_epoch").end_epoch(performance.is_none() ? std::nullopt
                                                      : std::optional(number(performance, "performance")));
  }
  void end_rollout(const py::object& reward_rate, const py::object& explained_variance) {
    simic::rollout_figures f;
    if (!reward_rate.is_none()) f.reward_rate = number(reward_rate, "reward_rate");
    if (!explained_variance.is_none()) f.explained_variance = number(explained_variance, "explained_variance");
    open("end_rollout").end_rollout(f);
  }
  void lstm_state(const py::object& h, const py::object& c) {
    session_api& impl = open("lstm_state");
    for (const auto& [v, name] : {std::pair{&h, "h"}, std::pair{&c, "c"}})
      if (!THPVariable_Check(v->ptr()))
        throw py::type_error(std::string("simic.Session.lstm_state: ") + name + " must be a torch.Tensor, not " +
                             type_name(*v));
    impl.lstm_state(h.cast<torch::Tensor>(), c.cast<torch::Tensor>());
  }
  void begin_update() { open("begin_update").begin_update(); }

  void close() {
    if (impl_) impl_->close();
    impl_.reset();
  }

 private:
  session_api& open(const char* method) {
    if (!impl_) throw py::value_error(std::string("simic.Session.") + method + ": the session is closed");
    return *impl_;
  }
  static double number(const py::handle& v, const std::string& name) {
    if (!is_number(v))
      throw py::type_error("simic.Session: " + name + " must be a number, not " + type_name(v));
    return v.cast<double>();
  }
  std::unique_ptr<session_api> impl_;
};

}  // namespace

PYBIND11_MODULE(_simic, m) {
  py::class_<sink_spec, std::shared_ptr<sink_spec>>(m, "Sink", "Where a session's events go (JsonlSink, TensorBoardSink).");
  py::class_<jsonl_sink_spec, sink_spec, std::shared_ptr<jsonl_sink_spec>>(
      m, "JsonlSink", "Events as JSON lines in a file (docs/events.md); the session opens it when it starts.")
      .def(py::init<std::string>(), py::arg("path"));
  py::class_<tensorboard_sink_spec, sink_spec, std::shared_ptr<tensorboard_sink_spec>>(
      m, "TensorBoardSink", "Events as TensorBoard scalars in an event file under log_dir.")
      .def(py::init<std::string>(), py::arg("log_dir"));
  py::class_<layer_list>(m, "LayerList",
                         "The layers of simic.layer_gradients(): a sequence of dicts, each made when read.")
      .def("__len__", &layer_list::size)
      .def("__getitem__", &layer_list::at, py::arg("index"));
  py::class_<py_session>(m, "Session",
                         "The C++ session of a preset ('ppo', 'ppo_feedforward', 'supervised', 'reference') over a model's named "
                         "parameters: its sensors read the gradients at each step, its monitor judges the signals, "
                         "its sinks receive the events. Options (docs/python.md): level, auto_escalate, "
                         "escalation_epochs, escalation_checks, missing_signal_checks, max_consecutive_skips, "
                         "skip_critical, skip_on, pass_on, watch, ignore, queue_capacity, close_deadline_ms.")
      .def(py::init<const py::object&, const sink_specs&, const std::string&, const py::kwargs&>(),
           py::arg("model_or_named_parameters"), py::arg("sinks") = sink_specs{}, py::arg("preset") = "ppo")
      .def("step", &py_session::step,
           "One check after backward(): signals as keywords (loss, approx_kl, ratio_max, ratio_min, "
           "explained_variance, performance, reward_rate, update_ratio, host_module_ratio, "
           "entropy={head: normalised entropy}, progress=(step, total), user={name: number}). "
           "Returns {'action': 'proceed'|'skip'|'stop', 'anomalies': [...], 'level': ...}; on 'skip' do not "
           "apply the step, on 'stop' end training.")
      .def("end_epoch", &py_session::end_epoch, py::arg("performance") = py::none(),
           "Ends an epoch, with its performance (e.g. accuracy or mean return) if known.")
      .def("end_rollout", &py_session::end_rollout, py::arg("reward_rate") = py::none(),
           py::arg("explained_variance") = py::none(), "A rollout's figures, read by the next check.")
      .def("lstm_state", &py_session::lstm_state, py::arg("h"), py::arg("c"),
           "The policy's LSTM hidden and cell state, read by the 'ppo' and 'reference' presets' LSTM sensor.")
      .def("begin_update", &py_session::begin_update,
           "Starts the next update (without it, each step is an update).")
      .def("close", &py_session::close, "Flushes and closes the sinks; the session refuses further calls.")
      .def("__enter__", [](py_session& s) -> py_session& { return s; }, py::return_value_policy::reference)
      .def("__exit__", [](py_session& s, py::args) { s.close(); });
  m.def(
      "gradient_health",
      [](const py::object& source) {
        const named params = parameters_of(source);
        const simic::gradient_health_report r = simic::gradient_health_sensor<>{}.measure(params);
        return fields_of(simic::gradient_health_event{.gradients = r.signal()});
      },
      py::arg("model_or_named_parameters"),
      "Gradient health of a module or (name, tensor) list in one fused read: total_norm, min/max_param_norm, "
      "parameters, vanishing, exploding, nan_count, inf_count, health.");
  m.def(
      "layer_gradients",
      [](const py::object& source) {
        const named params = parameters_of(source);
        auto r = std::make_shared<const simic::layer_gradient_report>(simic::layer_gradient_sensor<>{}.measure(params));
        py::dict out;
        out["layers"] = layer_list(r);
        dict_writer w(out);
        simic::layer_gradients_event::describe_summary(w, *r);
        return out;
      },
      py::arg("model_or_named_parameters"),
      "Per-parameter gradient statistics (norm, mean, std, min, max, zero/small/large fractions, NaN/Inf counts, "
      "health, dead, exploding) with dead_layers, exploding_layers and skipped_without_grad.");
  m.def(
      "nan_inf_scan",
      [](const py::object& source, const py::object& loss) {
        const named params = parameters_of(source);
        const simic::nan_inf_scanner<> scanner;
        if (loss.is_none()) return fields_of(simic::nan_inf_scan_event{.report = scanner.scan(params)});
        if (!is_number(loss)) throw py::type_error("simic.nan_inf_scan: loss must be a number or None");
        return fields_of(simic::nan_inf_scan_event{.report = scanner.scan(params, loss.cast<double>())});
      },
      py::arg("model_or_named_parameters"), py::arg("loss") = py::none(),
      "The parameters whose weight or gradient holds a NaN or an Inf, by name; the largest |weight| and "
      "|gradient|; loss_finite when a loss is given; clean.");
  m.def(
      "report",
      [](const std::string& events_path, const std::string& html_path) {
        try {
          simic::report::write_report(events_path, html_path, {});
        } catch (const simic::report::error& e) {
          throw py::value_error(std::string("simic.report: ") + e.what());
        }
      },
      py::arg("events_path"), py::arg("html_path"),
      "Draws a JSONL events file as the HTML page of simic-report; ValueError names the file and line it cannot "
      "read.");
  py::tuple measured(simic::process_measured_fields.size());
  for (std::size_t i = 0; i < simic::process_measured_fields.size(); ++i)
    measured[i] = py::str(simic::process_measured_fields[i].data(), simic::process_measured_fields[i].size());
  m.attr("process_measured_fields") = measured;  // what two runs' events may differ in (time, process bytes)
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
}
