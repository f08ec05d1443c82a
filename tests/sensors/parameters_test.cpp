// The one way sensors take their inputs (sensors/parameters.hpp): which
// types are parameter sources, and what watch / watch_tensors make of each.
#include "support/torch_doctest.hpp"

#include <span>
#include <string>
#include <utility>
#include <vector>

#include "simic/sensors/gradient_health.hpp"
#include "simic/sensors/parameter_update.hpp"
#include "simic/sensors/parameters.hpp"

namespace {

using named_list = std::vector<std::pair<std::string, at::Tensor>>;

struct fake_module {
  named_list params;
  named_list named_parameters(bool /*recurse*/) const { return params; }
};

named_list make_named() {
  named_list named;
  for (int i = 0; i < 3; ++i) {
    at::Tensor w = at::full({4}, static_cast<double>(i + 1)).set_requires_grad(true);
    if (i != 1) w.mutable_grad() = at::full({4}, 0.5 * (i + 1));  // "b" has no gradient
    named.emplace_back(std::string(1, static_cast<char>('a' + i)), w);
  }
  return named;
}

}  // namespace

static_assert(simic::parameter_source<std::vector<at::Tensor>>);
static_assert(simic::parameter_source<std::span<const at::Tensor>>);
static_assert(simic::parameter_source<named_list>);
static_assert(simic::parameter_source<fake_module>);
static_assert(simic::named_parameter_source<fake_module>);
static_assert(!simic::named_parameter_source<std::vector<at::Tensor>>);
static_assert(!simic::parameter_source<int>);
static_assert(!simic::parameter_source<std::vector<int>>);

TEST_CASE("watch_tensors: a list as given, named parameters and modules filtered, values or gradients") {
  const named_list named = make_named();
  const fake_module module{named};
  simic::param_filter filter;
  filter.exclude("c");

  std::vector<at::Tensor> list{named[0].second, at::Tensor(), named[2].second};
  const simic::watched_tensors from_list = simic::watch_tensors(list, filter, simic::parameter_tensor::gradient);
  CHECK(from_list.names.empty());  // a list has no names and is not filtered
  REQUIRE(from_list.tensors.size() == 3);
  CHECK(from_list.tensors[0].is_same(list[0]));
  CHECK_FALSE(from_list.tensors[1].defined());

  for (const simic::watched_tensors& w :
       {simic::watch_tensors(named, filter, simic::parameter_tensor::gradient),
        simic::watch_tensors(module, filter, simic::parameter_tensor::gradient)}) {
    CHECK(w.names == std::vector<std::string>{"a", "b"});
    REQUIRE(w.tensors.size() == 2);
    CHECK(w.tensors[0].is_same(named[0].second.grad()));
    CHECK_FALSE(w.tensors[1].defined());  // no gradient: undefined, for the sensor to skip and count
  }
  const simic::watched_tensors values = simic::watch_tensors(module, filter, simic::parameter_tensor::value);
  REQUIRE(values.tensors.size() == 2);
  CHECK(values.tensors[1].is_same(named[1].second));

  const simic::watched_parameters w = simic::watch(module, filter);
  CHECK(w.filtered_out == 1);
  CHECK(w.weights.size() == 2);
}

TEST_CASE("every form reaches the same sensor result; measure({}) is an empty list") {
  const named_list named = make_named();
  const fake_module module{named};
  std::vector<at::Tensor> grads;
  for (const auto& [name, p] : named) grads.push_back(p.grad());
  const simic::gradient_health_sensor<> sensor;
  const simic::gradient_health_report by_list = sensor.measure(grads);
  const simic::gradient_health_report by_span = sensor.measure(std::span<const at::Tensor>(grads));
  const simic::gradient_health_report by_named = sensor.measure(named);
  const simic::gradient_health_report by_module = sensor.measure(module);
  for (const auto* r : {&by_span, &by_named, &by_module}) {
    CHECK(r->param_norms == by_list.param_norms);
    CHECK(r->skipped_without_grad == 1);
    CHECK(r->total_norm == by_list.total_norm);
  }
  CHECK(by_list.names.empty());
  CHECK(by_module.names == std::vector<std::string>{"a", "c"});
  CHECK(sensor.measure({}).parameters == 0);
  CHECK(sensor.measure_async({}).materialize().health == 1.0);

  simic::parameter_update_sensor update;
  CHECK_FALSE(update.measure(module).has_value());  // the first call takes the copy
  CHECK(update.measure(named).has_value());
  CHECK_FALSE(update.measure({}).has_value());
}
