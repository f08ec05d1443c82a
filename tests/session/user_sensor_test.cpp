// A user's sensor (user_sensor/weight_norm_sensor.hpp, one header written
// outside simic) plugs into a session beside simic's own: it reads when it
// is due, its event goes to the sinks with its own name and fields, JSON and
// TensorBoard write it, and the session names no sensor to make that so.
#include "support/torch_doctest.hpp"

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "simic/emit/sink_memory.hpp"
#include "simic/presets/ppo.hpp"
#include "simic/sensors/gradient_health.hpp"
#include "simic/session.hpp"
#include "support/written_event.hpp"
#include "session/user_sensor/weight_norm_sensor.hpp"

using namespace simic;

namespace {
using user_session = session<ppo_monitor, gradient_health_sensor<>, weight_norm_sensor>;

struct two_layers {
  std::vector<std::pair<std::string, at::Tensor>> params;
  two_layers() {
    torch::manual_seed(11);
    for (const char* name : {"a.w", "b.w"}) {
      at::Tensor p = torch::randn({7}).set_requires_grad(true);
      p.mutable_grad() = torch::randn_like(p) * 0.1;
      params.emplace_back(name, p);
    }
  }
  // The weights' L2 norm, by a plain float64 loop.
  double norm() const {
    double sq = 0.0;
    for (const auto& [n, p] : params) {
      const at::Tensor d = p.detach().to(at::kDouble).contiguous();
      for (std::int64_t i = 0; i < d.numel(); ++i) sq += d.data_ptr<double>()[i] * d.data_ptr<double>()[i];
    }
    return std::sqrt(sq);
  }
};
}  // namespace

TEST_CASE("a user's sensor: due in updates 1, 1 + every, ...; its event written with its own fields") {
  two_layers net;
  auto sink = std::make_shared<memory_sink>();
  user_session tel({}, net.params, {sink}, weight_norm_options{.every = 3});
  std::vector<std::uint64_t> at;
  std::vector<double> want;  // the reference norm at each update
  for (std::uint64_t u = 1; u <= 7; ++u) {
    want.push_back(net.norm());
    tel.begin_update();
    tel.step({});
    tel.step({});  // a second step in the update: read once per update
    net.params[0].second.data().mul_(1.5);  // the weights change between updates
  }
  tel.close();
  std::vector<double> norms;
  for (const event& e : sink->events())
    if (const auto* w = e.get_if<weight_norm_event>()) {
      at.push_back(e.update());
      norms.push_back(w->norm);
    }
  CHECK(at == std::vector<std::uint64_t>{1, 4, 7});
  CHECK(tel.sensor<weight_norm_sensor>().measurements() == 3);
  CHECK(tel.sensor<gradient_health_sensor<>>().measurements() == 14);  // simic's sensor beside it, every step
  // Each reading against the float64 reference of the weights in its update.
  REQUIRE(norms.size() == 3);
  CHECK(norms[0] == doctest::Approx(want[0]).epsilon(1e-12));
  CHECK(norms[1] == doctest::Approx(want[3]).epsilon(1e-12));
  CHECK(norms[2] == doctest::Approx(want[6]).epsilon(1e-12));

  const event e(7, 1, weight_norm_event{.norm = 2.5});
  const auto j = simic::test::json_of(e);
  CHECK(j["event"] == "weight_norm");
  CHECK(j["norm"].get<double>() == 2.5);
  CHECK(simic::test::scalars_of(e) == std::vector<tensorboard_scalar>{{"weights/norm", 2.5}});
}

TEST_CASE("a user's sensor follows the level like simic's: none below its category's level") {
  two_layers net;
  auto sink = std::make_shared<memory_sink>();
  session_options o;
  o.config.configured = level::minimal;  // below NORMAL, the sensor's category
  user_session tel(o, net.params, {sink}, weight_norm_options{.every = 1});
  tel.begin_update();
  tel.step({});
  CHECK(tel.sensor<weight_norm_sensor>().measurements() == 0);
  CHECK(tel.sensor<gradient_health_sensor<>>().measurements() == 1);  // critical: read at MINIMAL
}

TEST_CASE("a user's sensor's bad options are refused by the session's constructor, naming the field") {
  two_layers net;
  CHECK_THROWS_WITH_AS(user_session({}, net.params, {}, weight_norm_options{.every = 0}), doctest::Contains("every"),
                       std::invalid_argument);
  static_assert(Sensor<weight_norm_sensor>);
}
