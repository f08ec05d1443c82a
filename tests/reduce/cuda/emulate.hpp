// A host emulation of the fused kernel's control flow (kernel_source.hpp),
// built from the very accumulation functions the kernel runs
// (accumulate.hpp): per piece, `threads` virtual threads each take the
// scalar head / four-vector groups (fast path, redone on the careful path
// when needs_careful says so) / remainder vectors / scalar tail the device
// code gives them, their accumulators are merged, pieces are merged
// per tensor in piece order, rows are finished, and the summary is merged
// as the kernel's last warp does (lane l adds rows l, l + 32, ..., then a
// shuffle-down tree). Reads plan addresses as host pointers, so it runs on
// CPU tensors or raw arrays.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "simic/reduce/cuda/accumulate.hpp"
#include "simic/reduce/cuda/launch_plan.hpp"

namespace simic_test {

namespace cd = simic::cuda::detail;

// Groups the emulation summed again on the careful path (for tests).
inline std::uint64_t& careful_groups() {
  static std::uint64_t n = 0;
  return n;
}

inline float load_narrow(const unsigned char* base, int dtype, std::int64_t j) {
  if (dtype == cd::dtype_f32) {
    float f;
    std::memcpy(&f, base + j * 4, 4);
    return f;
  }
  std::uint16_t h;
  std::memcpy(&h, base + j * 2, 2);
  return dtype == cd::dtype_f16 ? cd::half_to_f32(h) : cd::bf16_to_f32(h);
}

inline float tensor_shift(const cd::plan_tensor& t) {
  if (t.numel == 0) return 0.0f;
  const auto* p = reinterpret_cast<const unsigned char*>(t.addr);
  if (t.dtype == cd::dtype_f64) {
    double d;
    std::memcpy(&d, p, 8);
    return cd::shift_of(d);
  }
  return cd::shift_of(static_cast<double>(load_narrow(p, t.dtype, 0)));
}

// One piece, as a block of `threads` threads reduces it.
template <int Full>
cd::accumulator run_piece(const cd::plan_tensor& t, const cd::plan_piece& pc, int threads, const cd::launch_params& p) {
  const std::int64_t es = cd::dtype_bytes(t.dtype);
  const auto* base = reinterpret_cast<const unsigned char*>(t.addr) + pc.begin * es;
  const std::int64_t n = pc.end - pc.begin;
  const float shift = Full ? tensor_shift(t) : 0.0f;
  cd::accumulator block;
  cd::acc_init(block);
  for (int tid = 0; tid < threads; ++tid) {
    cd::accumulator a;
    cd::acc_init(a);
    if (t.dtype == cd::dtype_f64) {
      for (std::int64_t j = tid; j < n; j += threads) {
        double x;
        std::memcpy(&x, base + j * 8, 8);
        cd::add_double<Full>(a, x, static_cast<double>(shift), p);
      }
    } else {
      const bool sw = cd::shift_is_wide(shift);
      const std::int64_t per_vec = 16 / es;
      std::int64_t head = static_cast<std::int64_t>(((16u - (reinterpret_cast<std::uintptr_t>(base) & 15u)) & 15u) / es);
      if (head > n) head = n;
      cd::group g;
      cd::group_init(g);
      if (tid < head) {
        cd::add_narrow<Full>(g, a, load_narrow(base, t.dtype, tid), shift, sw, p);
        cd::fold<Full>(a, g);
        cd::group_init(g);
      }
      const std::int64_t nv = (n - head) / per_vec;
      auto add_vec_to = [&](std::int64_t v, cd::accumulator& acc) {
        for (std::int64_t e = 0; e < per_vec; ++e)
          cd::add_narrow<Full>(g, acc, load_narrow(base, t.dtype, head + v * per_vec + e), shift, sw, p);
      };
      // A careful batch's float64 parts join the thread's sums (as join_careful).
      auto join_wide = [&a](const cd::accumulator& wide) {
        a.sumsq += wide.sumsq;
        a.sum_d += wide.sum_d;
        a.sumsq_d += wide.sumsq_d;
      };
      auto add_vec_fast = [&](std::int64_t v) {
        for (std::int64_t e = 0; e < per_vec; ++e)
          cd::add_fast<Full>(g, load_narrow(base, t.dtype, head + v * per_vec + e), shift, p);
      };
      std::int64_t i = tid;
      for (; i + 3 * threads < nv; i += 4 * threads) {
        for (int u = 0; u < 4; ++u) add_vec_fast(i + u * threads);
        if (sw || cd::needs_careful<Full>(g)) {  // as careful_group: float64 parts beside the group
          ++careful_groups();
          cd::group_init(g);
          cd::accumulator wide;
          cd::acc_init(wide);
          for (int u = 0; u < 4; ++u) add_vec_to(i + u * threads, wide);
          join_wide(wide);
        }
        cd::fold<Full>(a, g);
        cd::group_init(g);
      }
      // Remaining vectors, then the tail: each a careful batch whose float64
      // parts join the thread's sums before the group is folded.
      cd::accumulator wide;
      cd::acc_init(wide);
      for (; i < nv; i += threads) add_vec_to(i, wide);
      join_wide(wide);
      cd::acc_init(wide);
      for (std::int64_t j = head + nv * per_vec + tid; j < n; j += threads)
        cd::add_narrow<Full>(g, wide, load_narrow(base, t.dtype, j), shift, sw, p);
      join_wide(wide);
      cd::fold<Full>(a, g);
    }
    cd::merge(block, a);
  }
  return block;
}

// Rows [(tensors + 1) * stat::count]: per-tensor rows, then the summary row.
inline std::vector<double> emulate(const cd::launch_plan& plan, const cd::launch_params& p, int threads = 256) {
  std::vector<cd::accumulator> partials(plan.pieces.size());
  for (int b = 0; b < plan.blocks(); ++b)
    for (int k = plan.block_first_piece[b]; k < plan.block_first_piece[b + 1]; ++k) {
      const cd::plan_piece& pc = plan.pieces[static_cast<std::size_t>(k)];
      const cd::plan_tensor& t = plan.tensors[static_cast<std::size_t>(pc.tensor)];
      partials[static_cast<std::size_t>(k)] = p.full ? run_piece<1>(t, pc, threads, p) : run_piece<0>(t, pc, threads, p);
    }
  const std::size_t n = plan.tensors.size();
  std::vector<double> rows((n + 1) * simic::stat::count, 0.0);
  for (std::size_t t = 0; t < n; ++t) {
    const cd::plan_tensor& pt = plan.tensors[t];
    cd::accumulator a;
    cd::acc_init(a);
    for (int j = 0; j < pt.pieces; ++j) cd::merge(a, partials[static_cast<std::size_t>(pt.first_piece + j)]);
    double* row = rows.data() + t * simic::stat::count;
    cd::finish_row(a, pt.numel, p.full ? static_cast<double>(tensor_shift(pt)) : 0.0, p.full, row);
  }
  simic::detail::gradient_summary lanes[32];
  for (int l = 0; l < 32; ++l) {
    simic::detail::summary_init(lanes[l]);
    for (std::size_t t = static_cast<std::size_t>(l); t < n; t += 32)
      simic::detail::summary_add_row(lanes[l], rows.data() + t * simic::stat::count, p.vanishing, p.exploding);
  }
  for (int o = 16; o > 0; o >>= 1)
    for (int l = 0; l + o < 32; ++l) simic::detail::summary_merge(lanes[l], lanes[l + o]);
  simic::detail::summary_finish(lanes[0]);
  simic::detail::summary_store(lanes[0], rows.data() + n * simic::stat::count);
  return rows;
}

}  // namespace simic_test
