// capture_training_state / restore_training_state: a restored run continues
// bit for bit like the run that was never interrupted (the reference), in
// the same objects and in new ones (as after a restart); every snapshot that
// does not fit, or is damaged, is refused with everything left as it was.
#include "recovery/recovery_test_support.hpp"

#include <functional>
#include <limits>
#include <stdexcept>
#include <string>

#include "simic/archive/archive_error.hpp"
#include "simic/recovery/training_state.hpp"

using namespace simic;
using namespace simic::test::recovery;

namespace {

using optimizer_ptr = std::unique_ptr<torch::optim::Optimizer>;
using make_optimizer = std::function<optimizer_ptr(net&)>;

bool has_state(const std::vector<tensors>& st) {
  for (const auto& f : st)
    if (!f.empty()) return true;
  return false;
}

// Trains 3 steps, captures, trains 3 more (the reference), restores into the
// same objects and into new ones, and trains the same 3 steps again.
void check_continuation(const make_optimizer& make, bool batch_norm = false) {
  const auto batches = make_batches(6);
  auto m = make_net(1, 8, false, batch_norm);
  auto opt = make(*m);
  for (int i = 0; i < 3; ++i) train_step(*m, *opt, batches[i]);
  const training_snapshot snap = capture_training_state(*m, *opt, 3, 48);
  CHECK(snap.update == 3);
  CHECK(snap.data_position == 48);
  CHECK(snap.size_bytes() == snap.bytes.size());
  const tensors at_capture = weights(*m);
  const std::vector<tensors> state_at_capture = optimizer_state(*opt);
  REQUIRE(has_state(state_at_capture));

  std::vector<tensors> reference;
  for (int i = 3; i < 6; ++i) {
    train_step(*m, *opt, batches[i]);
    reference.push_back(weights(*m));
  }
  const std::vector<tensors> state_after = optimizer_state(*opt);
  CHECK_FALSE(bitwise_equal(reference[0], at_capture));  // training moved the weights
  CHECK_FALSE(bitwise_equal(state_after, state_at_capture));

  // No SUBCASE: doctest runs a subcase of a loop (optimizer_cases) once.
  {
    INFO("into a new model and optimizer (after a restart)");
    auto m2 = make_net(99, 8, false, batch_norm);
    auto opt2 = make(*m2);
    CHECK_FALSE(bitwise_equal(weights(*m2), at_capture));
    restore_training_state(snap, *m2, *opt2);
    CHECK(bitwise_equal(weights(*m2), at_capture));
    CHECK(bitwise_equal(optimizer_state(*opt2), state_at_capture));
    for (int k = 3; k < 6; ++k) {
      train_step(*m2, *opt2, batches[k]);
      CHECK(bitwise_equal(weights(*m2), reference[k - 3]));
    }
    CHECK(bitwise_equal(optimizer_state(*opt2), state_after));
  }
  {
    INFO("from the bytes alone (read_snapshot_bytes)");
    const training_snapshot again = read_snapshot_bytes(snap.bytes);
    CHECK(again.update == 3);
    CHECK(again.data_position == 48);
    CHECK(again.bytes == snap.bytes);
    auto m2 = make_net(7, 8, false, batch_norm);
    auto opt2 = make(*m2);
    restore_training_state(again, *m2, *opt2);
    train_step(*m2, *opt2, batches[3]);
    CHECK(bitwise_equal(weights(*m2), reference[0]));
  }
  {
    INFO("into the same model and optimizer");
    std::vector<const void*> impls;
    for (const auto& p : m->parameters()) impls.push_back(p.unsafeGetTensorImpl());
    restore_training_state(snap, *m, *opt);
    std::size_t i = 0;
    for (const auto& p : m->parameters()) {
      CHECK(p.unsafeGetTensorImpl() == impls[i++]);  // the optimizer's references stay valid
      CHECK_FALSE(p.grad().defined());
    }
    CHECK(bitwise_equal(weights(*m), at_capture));
    CHECK(bitwise_equal(optimizer_state(*opt), state_at_capture));
    for (int k = 3; k < 6; ++k) {
      train_step(*m, *opt, batches[k]);
      CHECK(bitwise_equal(weights(*m), reference[k - 3]));
    }
    CHECK(bitwise_equal(optimizer_state(*opt), state_after));
  }
}

// Everything a failed restore must leave alone.
struct everything {
  tensors w, g;
  std::vector<tensors> st;
  std::vector<double> lrs;
  static everything of(net& m, torch::optim::Optimizer& opt) {
    return {weights(m), grads(opt), optimizer_state(opt), group_learning_rates(opt)};
  }
  bool operator==(const everything& o) const {
    return bitwise_equal(w, o.w) && bitwise_equal(g, o.g) && bitwise_equal(st, o.st) && lrs == o.lrs;
  }
};

// A trained model (3 Adam steps) with gradients, a snapshot of it, and 2
// more steps so that the current state differs from the snapshot.
struct trained {
  std::shared_ptr<net> m;
  optimizer_ptr opt;
  training_snapshot snap;
};
trained trained_adam(std::int64_t width = 8, bool deep = false) {
  const auto batches = make_batches(5);
  trained t{make_net(1, width, deep), nullptr, {}};
  t.opt = optimizer_ptr(new torch::optim::Adam(t.m->parameters(), torch::optim::AdamOptions(0.01)));
  for (int i = 0; i < 3; ++i) train_step(*t.m, *t.opt, batches[i]);
  t.snap = capture_training_state(*t.m, *t.opt, 3, 3);
  for (int i = 3; i < 5; ++i) train_step(*t.m, *t.opt, batches[i]);
  return t;
}

std::string restore_error(const training_snapshot& s, net& m, torch::optim::Optimizer& opt, const extra_state& extra = {}) {
  try {
    restore_training_state(s, m, opt, extra);
  } catch (const archive_error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("a restored run continues bit for bit: Adam, AdamW, SGD, RMSprop, Adagrad") {
  for (const auto& c : optimizer_cases()) {
    CAPTURE(c.name);
    check_continuation([&c](net& m) { return c.make(m.parameters()); });
  }
}

TEST_CASE("Adam's moments and step count are the snapshot's after a restore") {
  const auto batches = make_batches(5);
  auto m = make_net(1);
  torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(0.01));
  for (int i = 0; i < 3; ++i) train_step(*m, opt, batches[i]);
  const auto snap = capture_training_state(*m, opt, 3, 0);
  const auto* st = dynamic_cast<torch::optim::AdamParamState*>(simic::detail::optimizer_param_state(opt, m->fc1->weight));
  REQUIRE(st != nullptr);
  const at::Tensor exp_avg = st->exp_avg().clone();
  CHECK(st->step() == 3);
  for (int i = 3; i < 5; ++i) train_step(*m, opt, batches[i]);
  st = dynamic_cast<torch::optim::AdamParamState*>(simic::detail::optimizer_param_state(opt, m->fc1->weight));
  CHECK(st->step() == 5);
  restore_training_state(snap, *m, opt);
  st = dynamic_cast<torch::optim::AdamParamState*>(simic::detail::optimizer_param_state(opt, m->fc1->weight));
  REQUIRE(st != nullptr);
  CHECK(st->step() == 3);
  CHECK(bitwise_equal(st->exp_avg(), exp_avg));
  CHECK(opt.state().size() == m->parameters().size());
}

TEST_CASE("a snapshot taken before the first step restores an optimizer without state") {
  const auto batches = make_batches(3);
  auto m = make_net(1);
  torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(0.01));
  const auto snap = capture_training_state(*m, opt, 0, 0);
  CHECK(opt.state().empty());
  train_step(*m, opt, batches[0]);
  const tensors first_step = weights(*m);
  train_step(*m, opt, batches[1]);
  train_step(*m, opt, batches[2]);
  REQUIRE(opt.state().size() == m->parameters().size());

  restore_training_state(snap, *m, opt);
  CHECK(opt.state().empty());
  train_step(*m, opt, batches[0]);  // a first step again
  CHECK(bitwise_equal(weights(*m), first_step));
  const auto* st = dynamic_cast<torch::optim::AdamParamState*>(simic::detail::optimizer_param_state(opt, m->fc2->bias));
  REQUIRE(st != nullptr);
  CHECK(st->step() == 1);
}

TEST_CASE("learning rates: read, set, and restored with every group's options") {
  namespace o = torch::optim;
  const auto batches = make_batches(6);
  auto m = make_net(1);
  std::vector<o::OptimizerParamGroup> groups;
  groups.emplace_back(m->fc1->parameters(), std::make_unique<o::SGDOptions>(o::SGDOptions(0.1).momentum(0.9)));
  groups.emplace_back(m->fc2->parameters(), std::make_unique<o::SGDOptions>(o::SGDOptions(0.01).momentum(0.9)));
  o::SGD opt(std::move(groups), o::SGDOptions(0.5));
  CHECK(group_learning_rates(opt) == std::vector<double>{0.1, 0.01});

  const std::vector<double> set{0.2, 0.02};
  set_group_learning_rates(opt, set);
  CHECK(group_learning_rates(opt) == set);
  CHECK(static_cast<o::SGDOptions&>(opt.param_groups()[1].options()).lr() == 0.02);

  SUBCASE("a wrong size or value is refused and changes nothing") {
    const std::vector<double> three{1, 2, 3}, negative{0.3, -1}, nan{std::numeric_limits<double>::quiet_NaN(), 0.1};
    try {
      set_group_learning_rates(opt, three);
      FAIL("no error");
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      CHECK(what.find("lrs has 3 values") != std::string::npos);
      CHECK(what.find("exactly 2") != std::string::npos);
    }
    CHECK_THROWS_AS(set_group_learning_rates(opt, negative), std::invalid_argument);
    CHECK_THROWS_AS(set_group_learning_rates(opt, nan), std::invalid_argument);
    CHECK_THROWS_AS(set_group_learning_rates(opt, std::span<const double>{}), std::invalid_argument);
    CHECK(group_learning_rates(opt) == set);
  }

  SUBCASE("a restore brings back the snapshot's rates and options; the run continues") {
    for (int i = 0; i < 3; ++i) train_step(*m, opt, batches[i]);
    const auto snap = capture_training_state(*m, opt, 3, 0);
    std::vector<tensors> reference;
    for (int i = 3; i < 6; ++i) {
      train_step(*m, opt, batches[i]);
      reference.push_back(weights(*m));
    }
    const std::vector<double> spiked{5.0, 0.5};
    set_group_learning_rates(opt, spiked);
    static_cast<o::SGDOptions&>(opt.param_groups()[0].options()).momentum(0.3);
    restore_training_state(snap, *m, opt);
    CHECK(group_learning_rates(opt) == set);
    CHECK(static_cast<o::SGDOptions&>(opt.param_groups()[0].options()).momentum() == 0.9);
    for (int k = 3; k < 6; ++k) {
      train_step(*m, opt, batches[k]);
      CHECK(bitwise_equal(weights(*m), reference[k - 3]));
    }
  }
}

TEST_CASE("buffers (batch norm running statistics) are restored, and the run continues") {
  auto m = make_net(1, 8, false, true);
  m->train();
  torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(0.01));
  const auto batches = make_batches(5);
  for (int i = 0; i < 3; ++i) train_step(*m, opt, batches[i]);
  const auto snap = capture_training_state(*m, opt, 3, 0);
  const at::Tensor mean = m->bn->running_mean.clone(), var = m->bn->running_var.clone();
  const at::Tensor tracked = m->bn->num_batches_tracked.clone();
  CHECK(tracked.item<std::int64_t>() == 3);
  for (int i = 3; i < 5; ++i) train_step(*m, opt, batches[i]);
  CHECK_FALSE(bitwise_equal(m->bn->running_mean, mean));
  restore_training_state(snap, *m, opt);
  CHECK(bitwise_equal(m->bn->running_mean, mean));
  CHECK(bitwise_equal(m->bn->running_var, var));
  CHECK(bitwise_equal(m->bn->num_batches_tracked, tracked));

  check_continuation([](net& n) {
    return optimizer_ptr(new torch::optim::Adam(n.parameters(), torch::optim::AdamOptions(0.01)));
  }, /*batch_norm=*/true);
}

TEST_CASE("the RNG state is restored: torch::rand after a restore repeats torch::rand after the capture") {
  auto m = make_net(1);
  torch::optim::SGD opt(m->parameters(), torch::optim::SGDOptions(0.1));
  torch::manual_seed(42);
  torch::randn({3});  // a normal draw in flight is part of the state too
  const auto snap = capture_training_state(*m, opt, 0, 0);
  const at::Tensor u = torch::rand({8}, torch::kDouble), n = torch::randn({5}, torch::kDouble);
  torch::rand({100});
  torch::manual_seed(7);
  restore_training_state(snap, *m, opt);
  CHECK(bitwise_equal(torch::rand({8}, torch::kDouble), u));
  CHECK(bitwise_equal(torch::randn({5}, torch::kDouble), n));
}

TEST_CASE("the caller's extra state is saved, staged and committed") {
  auto m = make_net(1);
  torch::optim::SGD opt(m->parameters(), torch::optim::SGDOptions(0.1));
  std::int64_t counter = 42;
  const extra_state extra{
      [&](torch::serialize::OutputArchive& ar) { ar.write("caller.counter", at::full({}, counter, at::kLong)); },
      [&](torch::serialize::InputArchive& ar) -> std::function<void()> {
        at::Tensor t;
        if (!ar.try_read("caller.counter", t)) throw archive_error("caller: no counter");
        const std::int64_t v = t.item<std::int64_t>();
        return [&counter, v] { counter = v; };
      }};
  const auto snap = capture_training_state(*m, opt, 1, 2, extra);
  counter = 7;
  restore_training_state(snap, *m, opt, extra);
  CHECK(counter == 42);

  SUBCASE("a snapshot without the caller's keys: stage refuses, nothing changes") {
    const auto bare = capture_training_state(*m, opt, 1, 2);
    counter = 7;
    const auto before = everything::of(*m, opt);
    CHECK(restore_error(bare, *m, opt, extra).find("caller: no counter") != std::string::npos);
    CHECK(counter == 7);
    CHECK(everything::of(*m, opt) == before);
  }
}

TEST_CASE("capture refuses an optimizer without groups or parameters and a model without parameters") {
  namespace o = torch::optim;
  auto m = make_net(1);
  const auto what = [](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  o::SGD no_groups(std::vector<o::OptimizerParamGroup>{}, o::SGDOptions(0.1));
  CHECK(what([&] { capture_training_state(*m, no_groups, 0, 0); }).find("no parameter groups") != std::string::npos);
  o::SGD no_params(std::vector<torch::Tensor>{}, o::SGDOptions(0.1));
  CHECK(what([&] { capture_training_state(*m, no_params, 0, 0); }).find("holds no parameters") != std::string::npos);
  torch::nn::Module empty;
  o::SGD opt(m->parameters(), o::SGDOptions(0.1));
  CHECK(what([&] { capture_training_state(empty, opt, 0, 0); }).find("the model has no parameters") != std::string::npos);
}

TEST_CASE("a snapshot that does not fit is refused by name and changes nothing") {
  namespace o = torch::optim;
  trained t = trained_adam();
  bool committed = false;
  const extra_state extra{nullptr, [&](torch::serialize::InputArchive&) -> std::function<void()> {
                            return [&] { committed = true; };
                          }};

  const auto refused = [&](net& m, o::Optimizer& opt, const std::string& expected, const extra_state& x) {
    const everything before = everything::of(m, opt);
    const std::string what = restore_error(t.snap, m, opt, x);
    CHECK_MESSAGE(what.find(expected) != std::string::npos, what);
    CHECK(everything::of(m, opt) == before);
    CHECK_FALSE(committed);
  };

  SUBCASE("a parameter of another shape (a wider model)") {
    auto wide = make_net(2, 9);
    o::Adam opt(wide->parameters(), o::AdamOptions(0.01));
    train_step(*wide, opt, make_batches(1)[0]);
    refused(*wide, opt, "parameter 'fc1.weight' has shape [9, 3]; the snapshot holds [8, 3]", extra);
  }
  SUBCASE("another number of parameters") {
    auto deep = make_net(2, 8, true);
    o::Adam opt(deep->parameters(), o::AdamOptions(0.01));
    train_step(*deep, opt, make_batches(1)[0]);
    refused(*deep, opt, "the model has 6 parameters; the snapshot holds 4", extra);
  }
  SUBCASE("another dtype") {
    auto f = make_net(2);
    f->to(torch::kFloat);
    o::Adam opt(f->parameters(), o::AdamOptions(0.01));
    refused(*f, opt, "parameter 'fc1.weight' has dtype Float; the snapshot holds Double", extra);
  }
  SUBCASE("buffers the snapshot does not hold") {
    auto bn = make_net(2, 8, false, true);
    o::Adam opt(bn->parameters(), o::AdamOptions(0.01));
    refused(*bn, opt, "the model has 6 parameters; the snapshot holds 4", extra);
  }
  SUBCASE("an optimizer of another type") {
    o::SGD sgd(t.m->parameters(), o::SGDOptions(0.1).momentum(0.9));
    train_step(*t.m, sgd, make_batches(1)[0]);
    refused(*t.m, sgd, "the optimizer is torch::optim::SGD; the snapshot was taken of torch::optim::Adam", extra);
  }
  SUBCASE("another number of parameter groups") {
    std::vector<o::OptimizerParamGroup> groups;
    groups.emplace_back(t.m->fc1->parameters());
    groups.emplace_back(t.m->fc2->parameters());
    o::Adam two(std::move(groups), o::AdamOptions(0.01));
    refused(*t.m, two, "the optimizer has 2 parameter groups; the snapshot holds 1", extra);
  }
  SUBCASE("a group of another size") {
    trained split = trained_adam();
    std::vector<o::OptimizerParamGroup> groups;
    groups.emplace_back(split.m->fc1->parameters());
    groups.emplace_back(split.m->fc2->parameters());
    o::Adam two(std::move(groups), o::AdamOptions(0.01));
    const auto snap2 = capture_training_state(*split.m, two, 1, 1);
    std::vector<o::OptimizerParamGroup> other;
    other.emplace_back(std::vector<torch::Tensor>{split.m->fc1->weight});
    other.emplace_back(std::vector<torch::Tensor>{split.m->fc1->bias, split.m->fc2->weight, split.m->fc2->bias});
    o::Adam uneven(std::move(other), o::AdamOptions(0.01));
    const everything before = everything::of(*split.m, uneven);
    const std::string what = restore_error(snap2, *split.m, uneven, extra);
    CHECK_MESSAGE(what.find("parameter group 0 has 1 parameters; the snapshot's has 2") != std::string::npos, what);
    CHECK(everything::of(*split.m, uneven) == before);
  }
  SUBCASE("a group whose parameters have other shapes") {
    // 2 + 2 parameters in both, but the groups hold other tensors
    trained split = trained_adam();
    std::vector<o::OptimizerParamGroup> groups;
    groups.emplace_back(split.m->fc1->parameters());
    groups.emplace_back(split.m->fc2->parameters());
    o::Adam two(std::move(groups), o::AdamOptions(0.01));
    const auto snap2 = capture_training_state(*split.m, two, 1, 1);
    std::vector<o::OptimizerParamGroup> swapped;
    swapped.emplace_back(split.m->fc2->parameters());
    swapped.emplace_back(split.m->fc1->parameters());
    o::Adam other(std::move(swapped), o::AdamOptions(0.01));
    const std::string what = restore_error(snap2, *split.m, other, extra);
    CHECK_MESSAGE(what.find("parameter 0 of group 0 has shape [2, 8]; the snapshot's has [8, 3]") != std::string::npos,
                  what);
  }
  SUBCASE("extra.stage throws") {
    const extra_state throwing{nullptr, [](torch::serialize::InputArchive&) -> std::function<void()> {
                                 throw archive_error("caller: the monitor's state is damaged");
                               }};
    refused(*t.m, *t.opt, "caller: the monitor's state is damaged", throwing);
  }
  SUBCASE("the snapshot fits: extra is committed") {
    restore_training_state(t.snap, *t.m, *t.opt, extra);
    CHECK(committed);
  }
}

TEST_CASE("damaged snapshot bytes are refused (archive_error, never a crash) and change nothing") {
  trained t = trained_adam();
  const training_snapshot now = capture_training_state(*t.m, *t.opt, 5, 5);
  const everything before = everything::of(*t.m, *t.opt);
  const std::string& good = t.snap.bytes;

  SUBCASE("truncated") {
    for (const std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{30}, good.size() / 3, good.size() / 2,
                                good.size() - 22, good.size() - 1}) {
      CAPTURE(n);
      training_snapshot s = t.snap;
      s.bytes.resize(n);
      CHECK_THROWS_AS(restore_training_state(s, *t.m, *t.opt), archive_error);
      CHECK(everything::of(*t.m, *t.opt) == before);
    }
  }
  SUBCASE("a byte of a parameter's data flipped") {
    // The snapshot's fc1.weight, as a restore into another model reads it,
    // lies in the zip as its raw doubles (torch archives are not compressed).
    auto m2 = make_net(50);
    torch::optim::Adam opt2(m2->parameters(), torch::optim::AdamOptions(0.01));
    restore_training_state(t.snap, *m2, opt2);
    const at::Tensor w = m2->fc1->weight.detach().contiguous();
    const std::string data(static_cast<const char*>(w.data_ptr()), w.numel() * w.element_size());
    const std::size_t at = good.find(data);
    REQUIRE(at != std::string::npos);
    training_snapshot s = t.snap;
    s.bytes[at + 13] = static_cast<char>(s.bytes[at + 13] ^ 0x01);
    const std::string what = restore_error(s, *t.m, *t.opt);
    CHECK_MESSAGE(what.find("CRC-32 of its data") != std::string::npos, what);
    CHECK(what.find("simic::restore_training_state") == 0);
    CHECK(everything::of(*t.m, *t.opt) == before);
  }
  SUBCASE("bytes flipped all over: refused unchanged, or (a byte no check covers) the snapshot exactly") {
    restore_training_state(t.snap, *t.m, *t.opt);
    const everything snapshot_state = everything::of(*t.m, *t.opt);
    restore_training_state(now, *t.m, *t.opt);
    const everything current = everything::of(*t.m, *t.opt);
    std::size_t threw = 0, tried = 0;
    for (std::size_t at = 0; at < good.size(); at += 1 + good.size() / 400) {
      CAPTURE(at);
      training_snapshot s = t.snap;
      s.bytes[at] = static_cast<char>(s.bytes[at] ^ 0x10);
      ++tried;
      try {
        restore_training_state(s, *t.m, *t.opt);
      } catch (const archive_error&) {
        ++threw;
        CHECK(everything::of(*t.m, *t.opt) == current);
        continue;
      }
      CHECK(everything::of(*t.m, *t.opt) == snapshot_state);
      restore_training_state(now, *t.m, *t.opt);
    }
    // Some bytes no check covers: the extra field with which LibTorch pads
    // each zip record to 64 bytes, and header fields such as file times
    // (about 15 % of this small archive). Flips there load the snapshot
    // exactly, as checked above; most flips hit checked bytes.
    CHECK(threw > tried / 2);
  }
}

TEST_CASE("read_snapshot_bytes re-makes a snapshot's description and refuses what is not one") {
  auto m = make_net(1);
  torch::optim::SGD opt(m->parameters(), torch::optim::SGDOptions(0.1));
  const std::uint64_t big = std::numeric_limits<std::uint64_t>::max();
  const auto snap = capture_training_state(*m, opt, big, big - 1);
  const auto back = read_snapshot_bytes(snap.bytes);
  CHECK(back.update == big);  // 64-bit counters bit for bit
  CHECK(back.data_position == big - 1);
  CHECK(back.bytes == snap.bytes);

  const auto error_of = [](std::string bytes) {
    try {
      read_snapshot_bytes(std::move(bytes));
    } catch (const archive_error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  const auto archive_bytes = [](const std::function<void(torch::serialize::OutputArchive&)>& fill) {
    torch::serialize::OutputArchive ar;
    fill(ar);
    std::string out;
    ar.save_to([&out](const void* d, std::size_t n) -> std::size_t {
      out.append(static_cast<const char*>(d), n);
      return n;
    });
    return out;
  };
  CHECK(error_of("").find("not a sound torch archive") != std::string::npos);
  CHECK(error_of("garbage").find("not a sound torch archive") != std::string::npos);
  std::string noise(4096, '\0');
  for (std::size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<char>((i * 2654435761u) >> 13);
  CHECK(error_of(noise).find("not a sound torch archive") != std::string::npos);
  const std::string other = archive_bytes([](auto& ar) { ar.write("weights", at::ones({2})); });
  CHECK(error_of(other).find("lacks 'snapshot.format': it is no simic training snapshot") != std::string::npos);
  const std::string newer = archive_bytes([](auto& ar) { ar.write("snapshot.format", at::full({}, 2, at::kLong)); });
  CHECK(error_of(newer).find("written by a newer simic") != std::string::npos);
  const std::string as_double =
      archive_bytes([](auto& ar) { ar.write("snapshot.format", at::full({}, 1.0, at::kDouble)); });
  CHECK(error_of(as_double).find("expected a Long scalar") != std::string::npos);
  const std::string only_format = archive_bytes([](auto& ar) { ar.write("snapshot.format", at::full({}, 1, at::kLong)); });
  CHECK(error_of(only_format).find("lacks 'snapshot.update'") != std::string::npos);
  const std::string bad_type = archive_bytes([](auto& ar) {
    ar.write("snapshot.format", at::full({}, 1, at::kLong));
    ar.write("snapshot.update", at::full({}, 1, at::kLong));
    ar.write("snapshot.data_position", at::full({}, 1, at::kLong));
    ar.write("snapshot.torch_version", at::full({}, 1, at::kLong));
  });
  CHECK(error_of(bad_type).find("'snapshot.torch_version' is a Tensor, not a string") != std::string::npos);
}

namespace {
// A view of `base`'s storage with the given metadata, as an edited data.pkl could declare it.
at::Tensor declared(const at::Tensor& base, std::vector<std::int64_t> sizes, std::vector<std::int64_t> strides,
                    std::int64_t offset = 0) {
  at::Tensor t = base.view({base.numel()}).detach();
  t.unsafeGetTensorImpl()->set_sizes_and_strides(at::IntArrayRef(sizes), at::IntArrayRef(strides));
  t.unsafeGetTensorImpl()->set_storage_offset(offset);
  return t;
}
}  // namespace

TEST_CASE("a tensor that declares more elements than its storage holds is caught before it is read") {
  using simic::detail::snapshot::storage_holds;
  const at::Tensor base = at::zeros({4, 3}, at::kDouble);
  CHECK(storage_holds(base));
  CHECK(storage_holds(base.slice(0, 2, 4)));       // an offset view inside the storage
  CHECK(storage_holds(base.t()));                  // transposed strides
  CHECK(storage_holds(base.slice(0, 0, 0)));       // no elements
  CHECK(storage_holds(at::zeros({}, at::kLong)));  // a scalar
  CHECK(storage_holds(declared(base, {12}, {1})));
  CHECK_FALSE(storage_holds(declared(base, {13}, {1})));
  CHECK(storage_holds(declared(base, {11}, {1}, 1)));
  CHECK_FALSE(storage_holds(declared(base, {12}, {1}, 1)));
  CHECK(storage_holds(declared(base, {3, 4}, {4, 1})));
  CHECK_FALSE(storage_holds(declared(base, {3, 4}, {5, 1})));
  CHECK(storage_holds(declared(base, {5, 2}, {0, 1}, 10)));  // broadcast (stride 0) rows, the last 2 elements
  CHECK_FALSE(storage_holds(declared(base, {2}, {std::numeric_limits<std::int64_t>::max()}, 0)));
}
