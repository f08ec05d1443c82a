// Launch metadata for the fused kernels, built on the host with no GPU (and
// tested on the CPU): the tensor list becomes a table of tensors (address,
// element count, dtype, which pieces are theirs) and of pieces (contiguous
// element ranges of one tensor); block b reduces pieces
// [block_first_piece[b], block_first_piece[b+1]). As in PyTorch's
// MultiTensorApply, but the split is by bytes over the concatenation of all
// tensors: every block gets the same number of bytes (+- one granule), so
// one large tensor and many small ones balance alike, and the number of
// pieces is at most blocks + tensors - 1: the partial buffer is
// O(tensors + blocks), never O(elements).
//
// Piece boundaries fall on multiples of `granule` elements inside a tensor,
// so a piece starts 16-byte aligned whenever its tensor does.
//
// The packed form (pack()) is one byte buffer: tensors, pieces, block map
// and the kernels' completion counters (zero), copied to the device in one
// asynchronous transfer.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "simic/reduce/cuda/accumulate.hpp"

namespace simic {
inline namespace v0 {
namespace cuda::detail {

struct plan_input {
  std::uint64_t address = 0;  // device address of element 0
  std::int64_t numel = 0;
  int dtype = dtype_f32;  // dtype_f32, dtype_f16, dtype_bf16, dtype_f64
};

struct plan_options {
  int max_blocks = 1;                          // the grid limit (resident blocks of the device)
  std::int64_t min_block_bytes = 32 * 1024;    // fewer bytes than this are not worth a block
  std::int64_t granule = 64;                   // piece boundaries: multiples of this many elements
};

inline std::int64_t dtype_bytes(int dtype) {
  switch (dtype) {
    case dtype_f32: return 4;
    case dtype_f16:
    case dtype_bf16: return 2;
    case dtype_f64: return 8;
    default: throw std::invalid_argument("simic::cuda: dtype code " + std::to_string(dtype) + " is not one of 0..3");
  }
}

inline std::size_t align_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

struct launch_plan {
  std::vector<plan_tensor> tensors;
  std::vector<plan_piece> pieces;
  std::vector<int> block_first_piece;  // blocks() + 1 entries
  std::int64_t total_bytes = 0;
  int active_tensors = 0;  // tensors with at least one piece (numel > 0)

  int blocks() const noexcept { return block_first_piece.empty() ? 0 : static_cast<int>(block_first_piece.size()) - 1; }
  // The grid of the stats kernel: one block even without pieces (it writes the rows and summary).
  int grid() const noexcept { return std::max(blocks(), 1); }

  // Byte offsets of the four tables inside the packed buffer. The counters
  // (one int per tensor, then one of finished tensors) are zero in the
  // packed form; the kernel leaves them at zero after every launch.
  std::size_t tensors_offset() const noexcept { return 0; }
  std::size_t pieces_offset() const noexcept { return align_up(tensors.size() * sizeof(plan_tensor), 16); }
  std::size_t blocks_offset() const noexcept { return pieces_offset() + align_up(pieces.size() * sizeof(plan_piece), 16); }
  std::size_t counters_offset() const noexcept {
    return align_up(blocks_offset() + block_first_piece.size() * sizeof(int), 16);
  }
  std::size_t packed_bytes() const noexcept { return align_up(counters_offset() + (tensors.size() + 1) * sizeof(int), 16); }
  void pack(unsigned char* dst) const {
    std::memset(dst, 0, packed_bytes());
    if (!tensors.empty()) std::memcpy(dst + tensors_offset(), tensors.data(), tensors.size() * sizeof(plan_tensor));
    if (!pieces.empty()) std::memcpy(dst + pieces_offset(), pieces.data(), pieces.size() * sizeof(plan_piece));
    if (!block_first_piece.empty())
      std::memcpy(dst + blocks_offset(), block_first_piece.data(), block_first_piece.size() * sizeof(int));
  }
};

// What a plan was built from. Identical inputs give identical metadata, so
// the back end keeps the last plan (and its device copy) per device and
// reuses it while a trainer's tensors keep their addresses and sizes (the
// usual case for gradients): no planning and no host->device copy then.
// The stream is part of the key so that a cached device buffer is only ever
// read on the stream it was allocated for.
struct plan_key {
  std::vector<plan_input> inputs;
  int max_blocks = 0;
  std::uint64_t stream = 0;

  bool matches(std::span<const plan_input> in, int blocks, std::uint64_t s) const noexcept {
    if (blocks != max_blocks || s != stream || in.size() != inputs.size()) return false;
    for (std::size_t i = 0; i < in.size(); ++i)
      if (in[i].address != inputs[i].address || in[i].numel != inputs[i].numel || in[i].dtype != inputs[i].dtype)
        return false;
    return true;
  }
};

// Limits of one plan: the kernels count a thread's elements in 32 bits
// (2^40 elements is far beyond any device's memory), and index tensors and
// pieces with int.
inline constexpr std::int64_t max_plan_numel = std::int64_t{1} << 40;
inline constexpr std::int64_t max_plan_tensors = std::int64_t{1} << 24;

// Builds the plan. Throws std::invalid_argument for an element count out of
// [0, 2^40), more than 2^24 tensors, an unknown dtype or options out of range.
inline launch_plan make_launch_plan(std::span<const plan_input> in, const plan_options& o) {
  if (o.max_blocks < 1) throw std::invalid_argument("simic::cuda::make_launch_plan: max_blocks must be >= 1");
  if (o.min_block_bytes < 1) throw std::invalid_argument("simic::cuda::make_launch_plan: min_block_bytes must be >= 1");
  if (o.granule < 1) throw std::invalid_argument("simic::cuda::make_launch_plan: granule must be >= 1");
  launch_plan p;
  const std::size_t n = in.size();
  if (n > static_cast<std::size_t>(max_plan_tensors))
    throw std::invalid_argument("simic::cuda::make_launch_plan: " + std::to_string(n) + " tensors; valid: at most " +
                                std::to_string(max_plan_tensors));
  std::vector<std::int64_t> start(n + 1, 0), esize(n);
  p.tensors.resize(n);
  for (std::size_t t = 0; t < n; ++t) {
    if (in[t].numel < 0 || in[t].numel >= max_plan_numel)
      throw std::invalid_argument("simic::cuda::make_launch_plan: tensors[" + std::to_string(t) + "].numel = " +
                                  std::to_string(in[t].numel) + "; valid: [0, 2^40)");
    esize[t] = dtype_bytes(in[t].dtype);
    start[t + 1] = start[t] + in[t].numel * esize[t];
    p.tensors[t] = plan_tensor{in[t].address, in[t].numel, in[t].dtype, 0, 0, 0};
  }
  const std::int64_t total = start[n];
  p.total_bytes = total;
  if (total == 0) return p;  // no blocks; the kernel's one block still writes every row
  const std::int64_t want = (total + o.min_block_bytes - 1) / o.min_block_bytes;
  const int blocks = static_cast<int>(std::clamp<std::int64_t>(want, 1, o.max_blocks));
  auto boundary = [&](int r) {  // byte offset where range r starts
    return static_cast<std::int64_t>(static_cast<__int128>(total) * r / blocks);
  };
  // Element index in tensor t where byte offset x falls, rounded down to the granule.
  auto elem_at = [&](std::size_t t, std::int64_t x) -> std::int64_t {
    if (x <= start[t]) return 0;
    if (x >= start[t + 1]) return in[t].numel;
    const std::int64_t e = (x - start[t]) / esize[t];
    return std::min(in[t].numel, e / o.granule * o.granule);
  };
  p.block_first_piece.reserve(static_cast<std::size_t>(blocks) + 1);
  std::size_t t0 = 0;
  for (int r = 0; r < blocks; ++r) {
    p.block_first_piece.push_back(static_cast<int>(p.pieces.size()));
    const std::int64_t lo = boundary(r), hi = r + 1 == blocks ? total : boundary(r + 1);
    while (t0 < n && start[t0 + 1] <= lo) ++t0;
    for (std::size_t t = t0; t < n && start[t] < hi; ++t) {
      const std::int64_t b = elem_at(t, lo), e = r + 1 == blocks ? in[t].numel : elem_at(t, hi);
      if (e > b) p.pieces.push_back(plan_piece{b, e, static_cast<int>(t), 0});
    }
  }
  p.block_first_piece.push_back(static_cast<int>(p.pieces.size()));
  // Pieces of one tensor are consecutive (ranges advance monotonically).
  for (std::size_t k = 0; k < p.pieces.size(); ++k) {
    plan_tensor& t = p.tensors[static_cast<std::size_t>(p.pieces[k].tensor)];
    if (t.pieces == 0) {
      t.first_piece = static_cast<int>(k);
      ++p.active_tensors;
    }
    ++t.pieces;
  }
  return p;
}

}  // namespace cuda::detail
}  // namespace v0
}  // namespace simic
