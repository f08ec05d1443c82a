#include "support/torch_doctest.hpp"

#include <torch/version.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <sstream>

#include "simic/archive/module_archive.hpp"
#include "simic/presets/ppo.hpp"
#include "support/archive_corruption.hpp"
#include "support/temp_dir.hpp"

using namespace simic;
using simic::test::module_copies;
using simic::test::module_holds;
using simic::test::module_tensors;
using simic::test::probe_net;

namespace {

struct files {
  simic::test::remove_at_exit cleanup{"module_archive"};
  std::filesystem::path dir = simic::test::fresh_dir("module_archive", "files");
  files() { std::filesystem::create_directories(dir); }
};

// The probe's storages in data.pkl's order (Module::save: its own
// parameters, its own buffers, then each child's).
const char* const probe_keys[] = {"scale", "steps", "fc1.weight", "fc1.bias", "head.1.weight", "head.1.bias"};
constexpr std::size_t scale_ = 0, fc1_weight = 2, fc1_bias = 3;

// `bytes` written to `dir/name`, loaded into a fresh probe_net(2, width):
// must throw archive_error whose message holds the file and every one of
// `parts`, and leave the module's values as they were (float64 copies).
void refused(const files& f, const std::string& name, const std::vector<std::uint8_t>& bytes,
             const std::vector<std::string>& parts, std::int64_t width = 3) {
  const auto path = f.dir / name;
  simic::test::write_bytes(path, bytes);
  probe_net net(2, width);
  const auto before = module_copies(*net, true);
  std::string message;
  try {
    load_verified(path, net);
    FAIL("loaded " << name);
  } catch (const archive_error& e) {
    message = e.what();
  }
  CAPTURE(message);
  CHECK(message.find("'" + path.string() + "'") != std::string::npos);
  for (const std::string& p : parts) {
    CAPTURE(p);
    CHECK(message.find(p) != std::string::npos);
  }
  CHECK(module_holds(*net, before, true));
}

}  // namespace

TEST_CASE("load_verified: a torch::save checkpoint loads bit for bit into the module's own tensors") {
  files f;
  probe_net saved(1), net(2);
  {  // a signed zero and a NaN with a payload survive bit for bit
    torch::NoGradGuard no_grad;
    saved->fc1->weight[0][0] = -0.0;
    saved->scale[1] = std::nan("7");
  }
  const auto path = f.dir / "net.pt";
  torch::save(saved, path.string());
  REQUIRE(!module_holds(*net, module_copies(*saved, false), false));
  const void* data = net->fc1->weight.data_ptr();
  load_verified(path, net);
  const auto want = module_tensors(*saved), got = module_tensors(*net);
  REQUIRE(want.size() == 6);
  REQUIRE(got.size() == 6);
  for (std::size_t i = 0; i < want.size(); ++i) {
    CAPTURE(want[i].first);
    CHECK(got[i].first == want[i].first);
    CHECK(simic::test::bitwise_equal(got[i].second, want[i].second));
  }
  CHECK(std::signbit(net->fc1->weight[0][0].item<float>()));
  // copied into the module's tensors (torch::load would swap in the archive's)
  CHECK(net->fc1->weight.data_ptr() == data);
  CHECK(net->fc1->weight.requires_grad());
  CHECK(!net->scale.requires_grad());
}

TEST_CASE("load_module: a model kept under a key of the user's own checkpoint, beside simic's state") {
  files f;
  probe_net saved(1), net(2);
  default_monitor m;
  m.check(simic::test::history_signals(0));
  torch::serialize::OutputArchive out, model;
  saved->save(model);
  out.write("model", model);
  save(out, m);
  const auto path = f.dir / "ckpt.pt";
  out.save_to(path.string());

  torch::serialize::InputArchive in = open_verified_archive(path);
  torch::serialize::InputArchive model_in;
  in.read("model", model_in);
  load_module(model_in, net);  // the holder overload
  CHECK(module_holds(*net, module_copies(*saved, false), false));
  default_monitor back;
  load(in, back);
  CHECK(back.state() == m.state());
  // the top level is no probe_net: refused by key, nothing changed
  probe_net other(3);
  const auto keep = module_copies(*other, true);
  CHECK_THROWS_WITH_AS(load_module(in, *other), "simic::load_module: archive lacks the module's buffer 'scale'",
                       archive_error);
  CHECK(module_holds(*other, keep, true));
}

TEST_CASE("load_verified refuses a lying checkpoint by file and record or key; the module keeps its values") {
  files f;
  probe_net saved(1);
  const auto good = simic::test::saved_module(*saved);
  const simic::test::structure_target t(good);
  const std::string root = t.zip.root();
  REQUIRE(t.storages.size() == 6);
  for (std::size_t i = 0; i < 6; ++i) {  // the layout the cases below name
    const std::string key = probe_keys[i];
    CHECK(t.storages[i].field == key.substr(key.rfind('.') + 1));
  }
  auto record = [&](std::size_t s) { return root + "data/" + t.storages[s].key; };
  auto entry = [&](std::size_t s) { return t.zip.index_of(record(s)); };
  using sc = simic::test::structure_corruption;
  const std::string lie = ": the archive's entries were renamed or its data.pkl edited";

  SUBCASE("the file truncated to two thirds") {
    auto cut = good;
    cut.resize(good.size() * 2 / 3);
    refused(f, "cut.pt", cut, {"simic::verify_zip: no end of central directory record"});
  }
  SUBCASE("fc1.weight's record renamed") {
    const sc c{sc::rename_record, entry(fc1_weight), 0, 0, root + "data/99"};
    refused(f, "renamed.pt", c.apply(t.zip),
            {"simic::check_pickled_storages: 'weight' (data.pkl's storage '" + t.storages[fc1_weight].key +
             "': 15 x Float, 4 bytes each): the zip has no record '" + record(fc1_weight) + "'"});
  }
  SUBCASE("fc1.weight's record (60 bytes) and fc1.bias's (12) swapped") {
    const sc c{sc::swap_records, entry(fc1_weight), entry(fc1_bias), 0, {}};
    refused(f, "swapped.pt", c.apply(t.zip),
            {"'weight' (data.pkl's storage '" + t.storages[fc1_weight].key +
             "': 15 x Float, 4 bytes each) needs 60 bytes; its record '" + record(fc1_weight) + "' holds 12" + lie});
  }
  SUBCASE("fc1.bias's declared size edited from 3 to 4 elements: past its 12-byte record") {
    const sc c{sc::storage_numel, fc1_bias, 0, 4, {}};
    refused(f, "numel4.pt", c.apply(t.zip),
            {"'bias' (data.pkl's storage '" + t.storages[fc1_bias].key + "': 4 x Float, 4 bytes each) needs 16 bytes; "
             "its record '" + record(fc1_bias) + "' holds 12"});
  }
  SUBCASE("fc1.bias's declared size edited from 3 to 2 elements: its record holds more than that") {
    const sc c{sc::storage_numel, fc1_bias, 0, 2, {}};
    refused(f, "numel2.pt", c.apply(t.zip),
            {"simic::check_pickled_storages: 'bias' (data.pkl's storage '" + t.storages[fc1_bias].key +
             "': 2 x Float, 4 bytes each) is 8 bytes; its record '" + record(fc1_bias) +
             "' holds 12, more than a writer puts there" + lie});
  }
  SUBCASE("fc1.bias's storage offset edited from 0 to 1: its tensor reaches past the storage") {
    auto z = t.zip;
    auto& pkl = z.entries.at(z.index_of(root + "data.pkl"));
    std::string p = pkl.data();
    const std::size_t at = t.storages[fc1_bias].at;  // BINPERSID, BINPUT n, then the offset as BININT1
    REQUIRE(p.substr(at + 3, 2) == std::string("K\0", 2));
    p[at + 4] = 1;
    pkl.set_data(p);
#if TORCH_VERSION_MAJOR >= 2  // LibTorch 2.x's unpickler refuses it while it loads
    refused(f, "offset.pt", simic::test::write_zip_records(z),
            {"simic::open_verified_archive: LibTorch cannot read the verified zip: ",
             "require a storage of at least 16 bytes, but storage only has 12 bytes"});
#else
    refused(f, "offset.pt", simic::test::write_zip_records(z),
            {"simic::load_module: 'fc1.bias' (Float, sizes [3], strides [1], offset 1) needs 16 bytes of storage; "
             "its storage holds 12" + lie});
#endif
  }
  SUBCASE("fc1.bias's storage key edited to fc1.weight's: two storages, one record") {
    const sc c{sc::storage_key, fc1_bias, fc1_weight, 0, t.storages[fc1_weight].key};
    refused(f, "twice.pt", c.apply(t.zip),
            {"simic::check_pickled_storages: 'bias' and 'weight' both declare data.pkl's storage '" +
             t.storages[fc1_weight].key + "' (record '" + record(fc1_weight) + "'",
             "of '" + root + "data.pkl'): the archive's data.pkl was edited"});
  }
  SUBCASE("fc1.bias's persistent id replaced by the memo of fc1.weight's storage: one storage, two tensors") {
    // LibTorch's pickler puts each storage in the memo right after its
    // BINPERSID (BINPUT n); a BINGET n where bias's id was makes bias a view
    // of weight's first 3 floats, within the storage, so only the sharing shows
    auto z = t.zip;
    auto& pkl = z.entries.at(z.index_of(root + "data.pkl"));
    std::string p = pkl.data();
    const std::size_t w_at = t.storages[fc1_weight].at, b_at = t.storages[fc1_bias].at;
    REQUIRE(p.at(w_at + 1) == 'q');
    const auto ops = simic::test::pickle_ops(p);  // memo puts left out
    std::size_t i = 0;
    while (ops.at(i).at != b_at) ++i;
    const std::size_t mark = ops.at(i - 7).at;  // MARK 'storage' type key device numel TUPLE, then BINPERSID
    // (the only memo put inside is of bias's key string, which nothing gets later)
    p.replace(mark, b_at + 1 - mark, std::string("h") + p.at(w_at + 2));
    pkl.set_data(p);
    refused(f, "alias.pt", simic::test::write_zip_records(z),
            {"simic::load_module: 'fc1.bias' and 'fc1.weight' read one storage of the archive, but are separate "
             "tensors of the module: the archive's data.pkl was edited"});
  }
  SUBCASE("a checkpoint of a wider module: refused by parameter, with both shapes") {
    refused(f, "wide.pt", simic::test::saved_module(*probe_net(1, 4)),
            {"simic::load_module: parameter 'fc1.weight' has shape [3, 5] in the module but [4, 5] in the archive"});
    // and of a narrower one, into this
    refused(f, "narrow.pt", good, {"parameter 'fc1.weight' has shape [4, 5] in the module but [3, 5] in the archive"}, 4);
  }
  SUBCASE("fc1.weight's name in data.pkl edited: the module's parameter is missing") {
    const sc c{sc::field_name, fc1_weight, 0, 0, "weightx"};
    const auto bytes = c.apply(t.zip);
    // LibTorch's own loader may refuse the renamed attribute first (its
    // class declares 'weight'); either way the file is named
    const auto path = f.dir / "field.pt";
    simic::test::write_bytes(path, bytes);
    probe_net net(2);
    const auto before = module_copies(*net, true);
    CHECK_THROWS_WITH_AS(load_verified(path, net), doctest::Contains(("'" + path.string() + "': ").c_str()),
                         archive_error);
    CHECK(module_holds(*net, before, true));
  }
  (void)scale_;
}

TEST_CASE("load_verified: dtype, a missing parameter, tied weights") {
  files f;
  SUBCASE("a float64 checkpoint into a float32 module") {
    torch::nn::Linear saved(5, 3), net(5, 3);
    saved->to(torch::kDouble);
    const auto path = f.dir / "double.pt";
    torch::save(saved, path.string());
    const auto keep = module_copies(*net, true);
    CHECK_THROWS_WITH_AS(load_verified(path, net),
                         ("'" + path.string() + "': simic::load_module: parameter 'weight' is Float in the module but "
                          "Double in the archive").c_str(),
                         archive_error);
    CHECK(module_holds(*net, keep, true));
  }
  SUBCASE("a checkpoint without bias into a module with one") {
    torch::nn::Linear saved(torch::nn::LinearOptions(5, 3).bias(false)), net(5, 3);
    const auto path = f.dir / "nobias.pt";
    torch::save(saved, path.string());
    const auto keep = module_copies(*net, true);
    CHECK_THROWS_WITH_AS(load_verified(path, net),
                         ("'" + path.string() + "': simic::load_module: archive lacks the module's parameter 'bias'").c_str(),
                         archive_error);
    CHECK(module_holds(*net, keep, true));
    // the other way round: the module has no bias, the archive's is ignored (as torch::load does)
    torch::nn::Linear with_bias(5, 3), without(torch::nn::LinearOptions(5, 3).bias(false));
    torch::save(with_bias, (f.dir / "bias.pt").string());
    load_verified(f.dir / "bias.pt", without);
    CHECK(simic::test::bitwise_equal(without->weight, with_bias->weight));
  }
  SUBCASE("one tensor registered twice (tied) is saved once and loads into both names") {
    struct tied : torch::nn::Module {
      explicit tied(std::uint64_t seed) {
        torch::manual_seed(seed);
        a = register_parameter("a", torch::rand({4}));
        b = register_parameter("b", a);
      }
      at::Tensor a, b;
    };
    auto saved = std::make_shared<tied>(1);
    auto net = std::make_shared<tied>(2);
    const auto path = f.dir / "tied.pt";
    torch::save(saved, path.string());
    load_verified(path, net);
    CHECK(simic::test::bitwise_equal(net->a, saved->a));
    CHECK(net->a.data_ptr() == net->b.data_ptr());
  }
}

TEST_CASE("what no check sees: two same-sized records of a torch::save checkpoint swapped load swapped") {
  // a torch::save checkpoint has no checksum of its values; simic's own
  // archives do (their load refuses this swap: torch_archive_test.cpp)
  files f;
  torch::nn::Sequential saved(torch::nn::Linear(3, 3), torch::nn::Linear(3, 3)),
      net(torch::nn::Linear(3, 3), torch::nn::Linear(3, 3));
  const simic::test::structure_target t(simic::test::saved_module(*saved));
  const std::string root = t.zip.root();
  REQUIRE(t.storages[0].numel == 9);
  REQUIRE(t.storages[2].numel == 9);
  using sc = simic::test::structure_corruption;
  const sc c{sc::swap_records, t.zip.index_of(root + "data/" + t.storages[0].key),
             t.zip.index_of(root + "data/" + t.storages[2].key), 0, {}};
  simic::test::write_bytes(f.dir / "same.pt", c.apply(t.zip));
  load_verified(f.dir / "same.pt", net);
  CHECK(simic::test::bitwise_equal(net[0]->as<torch::nn::Linear>()->weight, saved[1]->as<torch::nn::Linear>()->weight));
  CHECK(simic::test::bitwise_equal(net[1]->as<torch::nn::Linear>()->weight, saved[0]->as<torch::nn::Linear>()->weight));
}
