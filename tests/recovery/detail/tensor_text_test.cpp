// The recovery layer's spelling of tensors and optimizers
// (recovery/detail/tensor_text.hpp), against strings written by hand.
#include "support/torch_doctest.hpp"

#include <torch/torch.h>

#include <string>

#include "simic/recovery/detail/tensor_text.hpp"

using simic::detail::optimizer_type_name;
using simic::detail::shape_text;
using simic::detail::tensor_text;

TEST_CASE("shape_text: 0, 1, 2 and 4 dimensions, zero-sized and large extents") {
  CHECK(shape_text(at::IntArrayRef{}) == "[]");
  CHECK(shape_text({7}) == "[7]");
  CHECK(shape_text({2, 3}) == "[2, 3]");
  CHECK(shape_text({0, 5}) == "[0, 5]");
  CHECK(shape_text({1, 2, 3, 4}) == "[1, 2, 3, 4]");
  CHECK(shape_text({std::int64_t{1} << 40}) == "[1099511627776]");
}

TEST_CASE("tensor_text: dtype, shape and device; an undefined tensor") {
  CHECK(tensor_text(at::Tensor{}) == "undefined");
  CHECK(tensor_text(at::zeros({2, 3})) == "Float [2, 3] on cpu");
  CHECK(tensor_text(at::zeros({}, at::kBool)) == "Bool [] on cpu");
  CHECK(tensor_text(at::zeros({0}, at::kDouble)) == "Double [0] on cpu");
  CHECK(tensor_text(at::zeros({4}, at::kLong)) == "Long [4] on cpu");
}

TEST_CASE("optimizer_type_name: the dynamic type, through a base reference") {
  torch::nn::Linear m(2, 1);
  torch::optim::Adam adam(m->parameters());
  torch::optim::SGD sgd(m->parameters(), torch::optim::SGDOptions(0.1));
  const torch::optim::Optimizer& base_adam = adam;
  const torch::optim::Optimizer& base_sgd = sgd;
  CHECK(optimizer_type_name(base_adam) == "torch::optim::Adam");
  CHECK(optimizer_type_name(base_sgd) == "torch::optim::SGD");
}
