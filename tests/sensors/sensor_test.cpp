// The sensor concept and its helpers (sensors/sensor.hpp): when an interval
// is due, below / at / above it; which types are sensors; how a session
// routes options to its sensors.
#include "support/torch_doctest.hpp"

#include <cstdint>
#include <string_view>
#include <vector>

#include "simic/sensors/gradient_health.hpp"
#include "simic/sensors/memory.hpp"
#include "simic/sensors/parameter_update.hpp"
#include "simic/sensors/sensor.hpp"

using namespace simic;

TEST_CASE("due_every: updates 1, 1 + every, 1 + 2 every, ...; update 0 and every 0 never") {
  // by hand, for every = 1, 2, 3 over updates 0..7
  const std::vector<std::uint64_t> want1{1, 2, 3, 4, 5, 6, 7}, want2{1, 3, 5, 7}, want3{1, 4, 7};
  for (const auto& [every, want] : {std::pair{1u, want1}, {2u, want2}, {3u, want3}}) {
    CAPTURE(every);
    std::vector<std::uint64_t> got;
    for (std::uint64_t u = 0; u <= 7; ++u)
      if (due_every(u, every)) got.push_back(u);
    CHECK(got == want);
  }
  CHECK_FALSE(due_every(1, 0));
  CHECK(due_every(std::uint64_t{1} << 40, 1));
}

namespace {
struct no_name {
  using category = cat::debug;
  using options_type = int;
  explicit no_name(const int&) {}
  std::uint64_t measurements() const { return 0; }
};
struct no_category {
  static constexpr std::string_view name = "x";
  using options_type = int;
  explicit no_category(const int&) {}
  std::uint64_t measurements() const { return 0; }
};
struct not_constructible {
  static constexpr std::string_view name = "x";
  using category = cat::debug;
  using options_type = int;
  std::uint64_t measurements() const { return 0; }
};
}  // namespace

TEST_CASE("the Sensor concept: simic's sensors are sensors; a type missing a part is not") {
  static_assert(Sensor<gradient_health_sensor<>>);
  static_assert(Sensor<parameter_update_sensor>);
  static_assert(Sensor<memory_sensor>);
  static_assert(!Sensor<no_name>);
  static_assert(!Sensor<no_category>);
  static_assert(!Sensor<not_constructible>);
  CHECK(gradient_health_sensor<>::name == "gradient_health");
}

TEST_CASE("make_sensor: a sensor gets the options of its type (the last given), else its defaults") {
  const auto a = simic::detail::make_sensor<memory_sensor>();
  CHECK(a.options().every == 50);
  const auto b = simic::detail::make_sensor<memory_sensor>(gradient_health_options{.every = 9}, memory_sensor_options{.every = 2});
  CHECK(b.options().every == 2);
  const auto c = simic::detail::make_sensor<memory_sensor>(memory_sensor_options{.every = 2}, memory_sensor_options{.every = 3});
  CHECK(c.options().every == 3);
  const auto g = simic::detail::make_sensor<gradient_health_sensor<>>(memory_sensor_options{.every = 2},
                                                               gradient_health_options{.exploding = 20.0, .every = 4});
  CHECK(g.options().every == 4);
  CHECK(g.options().exploding == 20.0);
  // Bad options are refused by the sensor's own constructor, naming the field.
  CHECK_THROWS_WITH_AS(simic::detail::make_sensor<gradient_health_sensor<>>(gradient_health_options{.every = 0}),
                       doctest::Contains("every"), std::invalid_argument);
}
