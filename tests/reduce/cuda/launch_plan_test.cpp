// Launch metadata (simic/reduce/cuda/launch_plan.hpp): pieces tile every tensor
// exactly once, in order; blocks get equal bytes within the rounding of one
// granule per boundary; the packed buffer reads back; bad input is refused.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "simic/reduce/cuda/launch_plan.hpp"

namespace cd = simic::cuda::detail;

namespace {

// Checks every structural promise of a plan for inputs `in`.
void check_plan(const std::vector<cd::plan_input>& in, const cd::plan_options& o) {
  const cd::launch_plan p = cd::make_launch_plan(in, o);
  std::int64_t total = 0;
  for (const auto& t : in) total += t.numel * cd::dtype_bytes(t.dtype);
  CHECK(p.total_bytes == total);
  REQUIRE(p.tensors.size() == in.size());
  int nonempty = 0;
  for (const auto& t : in) nonempty += t.numel > 0 ? 1 : 0;
  CHECK(p.active_tensors == nonempty);  // the kernel's count of tensors to finish
  CHECK(p.grid() == std::max(p.blocks(), 1));
  // The completion counters follow the tables, one per tensor and one more, all zero.
  {
    CHECK(p.counters_offset() % 16 == 0);
    CHECK(p.counters_offset() >= p.blocks_offset() + p.block_first_piece.size() * sizeof(int));
    CHECK(p.packed_bytes() >= p.counters_offset() + (in.size() + 1) * sizeof(int));
    std::vector<unsigned char> buf(p.packed_bytes(), 0xab);
    p.pack(buf.data());
    for (std::size_t c = 0; c <= in.size(); ++c) {
      int x = -1;
      std::memcpy(&x, buf.data() + p.counters_offset() + c * sizeof x, sizeof x);
      CHECK(x == 0);
    }
  }
  if (total == 0) {
    CHECK(p.blocks() == 0);
    CHECK(p.pieces.empty());
    return;
  }
  const std::int64_t want = (total + o.min_block_bytes - 1) / o.min_block_bytes;
  CHECK(p.blocks() == std::min<std::int64_t>(want, o.max_blocks));
  CHECK(p.block_first_piece.front() == 0);
  CHECK(p.block_first_piece.back() == static_cast<int>(p.pieces.size()));
  for (int b = 0; b < p.blocks(); ++b) CHECK(p.block_first_piece[b] <= p.block_first_piece[b + 1]);
  CHECK(p.pieces.size() <= static_cast<std::size_t>(p.blocks()) + in.size() - 1);
  // Tiling: per tensor, pieces are consecutive, start at 0, abut, end at numel.
  std::vector<std::int64_t> next(in.size(), 0);
  int last_tensor = -1;
  for (std::size_t k = 0; k < p.pieces.size(); ++k) {
    const cd::plan_piece& pc = p.pieces[k];
    REQUIRE(pc.tensor >= 0);
    REQUIRE(pc.tensor < static_cast<int>(in.size()));
    CHECK(pc.tensor >= last_tensor);  // tensors in order
    last_tensor = pc.tensor;
    CHECK(pc.begin == next[static_cast<std::size_t>(pc.tensor)]);
    CHECK(pc.end > pc.begin);
    CHECK(pc.begin % o.granule == 0);
    next[static_cast<std::size_t>(pc.tensor)] = pc.end;
  }
  for (std::size_t t = 0; t < in.size(); ++t) {
    CAPTURE(t);
    CHECK(next[t] == in[t].numel);
    const cd::plan_tensor& pt = p.tensors[t];
    CHECK(pt.addr == in[t].address);
    CHECK(pt.numel == in[t].numel);
    CHECK(pt.dtype == in[t].dtype);
    int count = 0;
    for (std::size_t k = 0; k < p.pieces.size(); ++k)
      if (p.pieces[k].tensor == static_cast<int>(t)) {
        if (count == 0) CHECK(pt.first_piece == static_cast<int>(k));
        ++count;
      }
    CHECK(pt.pieces == count);
  }
  // Balance: each block's bytes within one granule of the largest element
  // size per boundary of the even share.
  const double share = static_cast<double>(total) / p.blocks();
  for (int b = 0; b < p.blocks(); ++b) {
    std::int64_t bytes = 0;
    for (int k = p.block_first_piece[b]; k < p.block_first_piece[b + 1]; ++k) {
      const cd::plan_piece& pc = p.pieces[static_cast<std::size_t>(k)];
      bytes += (pc.end - pc.begin) * cd::dtype_bytes(in[static_cast<std::size_t>(pc.tensor)].dtype);
    }
    CHECK(std::abs(static_cast<double>(bytes) - share) <= 2.0 * o.granule * 8 + 1);
  }
  // The packed buffer holds the three tables at their offsets.
  std::vector<unsigned char> buf(p.packed_bytes());
  p.pack(buf.data());
  CHECK(p.packed_bytes() % 16 == 0);
  CHECK(p.pieces_offset() % 16 == 0);
  CHECK(p.blocks_offset() % 16 == 0);
  for (std::size_t t = 0; t < p.tensors.size(); ++t) {
    cd::plan_tensor x;
    std::memcpy(&x, buf.data() + p.tensors_offset() + t * sizeof x, sizeof x);
    CHECK(x.addr == p.tensors[t].addr);
    CHECK(x.first_piece == p.tensors[t].first_piece);
    CHECK(x.pieces == p.tensors[t].pieces);
  }
  for (std::size_t k = 0; k < p.pieces.size(); ++k) {
    cd::plan_piece x;
    std::memcpy(&x, buf.data() + p.pieces_offset() + k * sizeof x, sizeof x);
    CHECK(x.begin == p.pieces[k].begin);
    CHECK(x.end == p.pieces[k].end);
    CHECK(x.tensor == p.pieces[k].tensor);
  }
  for (std::size_t b = 0; b < p.block_first_piece.size(); ++b) {
    int x;
    std::memcpy(&x, buf.data() + p.blocks_offset() + b * sizeof x, sizeof x);
    CHECK(x == p.block_first_piece[b]);
  }
}

}  // namespace

TEST_CASE("one tensor, one block: a single piece covering it") {
  const std::vector<cd::plan_input> in{{0x1000, 1000, cd::dtype_f32}};
  const cd::launch_plan p = cd::make_launch_plan(in, {});
  REQUIRE(p.blocks() == 1);
  REQUIRE(p.pieces.size() == 1);
  CHECK(p.pieces[0].begin == 0);
  CHECK(p.pieces[0].end == 1000);
  check_plan(in, {});
}

TEST_CASE("block count: bytes over min_block_bytes, capped by max_blocks") {
  cd::plan_options o;
  o.min_block_bytes = 4096;
  o.max_blocks = 10;
  // 1024 floats = 4096 bytes: exactly one block; one more element: two.
  check_plan({{0, 1024, cd::dtype_f32}}, o);
  CHECK(cd::make_launch_plan(std::vector<cd::plan_input>{{0, 1024, cd::dtype_f32}}, o).blocks() == 1);
  CHECK(cd::make_launch_plan(std::vector<cd::plan_input>{{0, 1025, cd::dtype_f32}}, o).blocks() == 2);
  CHECK(cd::make_launch_plan(std::vector<cd::plan_input>{{0, 1 << 20, cd::dtype_f32}}, o).blocks() == 10);
}

TEST_CASE("empty lists and empty tensors: no blocks, every tensor still listed") {
  check_plan({}, {});
  check_plan({{0, 0, cd::dtype_f32}, {0, 0, cd::dtype_bf16}}, {});
  cd::plan_options o;
  o.max_blocks = 8;
  o.min_block_bytes = 64;
  check_plan({{0, 0, cd::dtype_f32}, {0, 5000, cd::dtype_f16}, {0, 0, cd::dtype_f64}, {0, 3, cd::dtype_f32}}, o);
}

TEST_CASE("random tensor lists: exact tiling, order, balance and packing") {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    CAPTURE(trial);
    const int n = 1 + static_cast<int>(rng() % 60);
    std::vector<cd::plan_input> in;
    for (int t = 0; t < n; ++t) {
      const int kind = static_cast<int>(rng() % 10);
      const std::int64_t numel = kind == 0 ? 0 : kind < 4 ? static_cast<std::int64_t>(rng() % 100)
                                                          : static_cast<std::int64_t>(rng() % 300000);
      in.push_back({0x10000u * static_cast<std::uint64_t>(t + 1), numel, static_cast<int>(rng() % 4)});
    }
    cd::plan_options o;
    o.max_blocks = 1 + static_cast<int>(rng() % 600);
    o.min_block_bytes = 1 + static_cast<std::int64_t>(rng() % 100000);
    o.granule = (rng() % 2) ? 64 : 1;
    check_plan(in, o);
  }
}

TEST_CASE("the geometric spread of the benchmark (400 tensors, 100M elements) on 132 SMs x 4 blocks") {
  std::vector<cd::plan_input> in;
  double w_sum = 0;
  std::vector<double> w(400);
  for (int i = 0; i < 400; ++i) w_sum += (w[i] = std::pow(10.0, 3.0 * i / 399.0));
  for (int i = 0; i < 400; ++i)
    in.push_back({0x100000u * static_cast<std::uint64_t>(i), std::max<std::int64_t>(1, static_cast<std::int64_t>(w[i] / w_sum * 1e8)), cd::dtype_f32});
  cd::plan_options o;
  o.max_blocks = 132 * 4;
  check_plan(in, o);
  const cd::launch_plan p = cd::make_launch_plan(in, o);
  CHECK(p.blocks() == 528);
  // O(tensors + blocks) metadata: well under 64 KB.
  CHECK(p.packed_bytes() < 64 * 1024);
}

TEST_CASE("bad input is refused with the argument named") {
  const std::vector<cd::plan_input> ok{{0, 10, cd::dtype_f32}};
  cd::plan_options o;
  o.max_blocks = 0;
  CHECK_THROWS_WITH_AS(cd::make_launch_plan(ok, o), doctest::Contains("max_blocks"), std::invalid_argument);
  o = {};
  o.min_block_bytes = 0;
  CHECK_THROWS_WITH_AS(cd::make_launch_plan(ok, o), doctest::Contains("min_block_bytes"), std::invalid_argument);
  o = {};
  o.granule = 0;
  CHECK_THROWS_WITH_AS(cd::make_launch_plan(ok, o), doctest::Contains("granule"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(cd::make_launch_plan(std::vector<cd::plan_input>{{0, -1, cd::dtype_f32}}, {}),
                       doctest::Contains("tensors[0].numel"), std::invalid_argument);
  // The kernel counts a thread's elements in 32 bits: 2^40 elements and more are refused, by name.
  const std::int64_t limit = std::int64_t{1} << 40;
  CHECK_THROWS_WITH_AS(cd::make_launch_plan(std::vector<cd::plan_input>{{0, 1, cd::dtype_f32}, {0, limit, cd::dtype_bf16}}, {}),
                       doctest::Contains("tensors[1].numel = 1099511627776; valid: [0, 2^40)"), std::invalid_argument);
  CHECK(cd::make_launch_plan(std::vector<cd::plan_input>{{0, limit - 1, cd::dtype_bf16}}, {}).active_tensors == 1);
  CHECK_THROWS_WITH_AS(cd::make_launch_plan(std::vector<cd::plan_input>{{0, 1, 9}}, {}), doctest::Contains("dtype"),
                       std::invalid_argument);
}

TEST_CASE("plan_key: a cached plan is reused only for the same tensors, block limit and stream") {
  const std::vector<cd::plan_input> in{{0x1000, 10, cd::dtype_f32}, {0x2000, 20, cd::dtype_bf16}};
  const cd::plan_key key{in, 528, 7};
  CHECK(key.matches(in, 528, 7));
  std::vector<cd::plan_input> other = in;
  other[1].address = 0x3000;
  CHECK_FALSE(key.matches(other, 528, 7));
  other = in;
  other[0].numel = 11;
  CHECK_FALSE(key.matches(other, 528, 7));
  other = in;
  other[1].dtype = cd::dtype_f16;
  CHECK_FALSE(key.matches(other, 528, 7));
  other = in;
  other.pop_back();
  CHECK_FALSE(key.matches(other, 528, 7));
  CHECK_FALSE(key.matches(in, 264, 7));  // the full kernel's limit differs
  CHECK_FALSE(key.matches(in, 528, 8));  // another stream
  // Equal keys mean equal metadata: the packed plans are byte-identical.
  const cd::launch_plan a = cd::make_launch_plan(in, {}), b = cd::make_launch_plan(in, {});
  std::vector<unsigned char> pa(a.packed_bytes()), pb(b.packed_bytes());
  a.pack(pa.data());
  b.pack(pb.data());
  CHECK(pa == pb);
}
