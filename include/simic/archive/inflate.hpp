// A bounded deflate decoder (RFC 1951), only to check the CRC-32 of a zip
// entry that LibTorch stored compressed (its TorchScript code file). It
// keeps a 32 KiB window and hands each decoded byte range to a callback, so
// memory does not grow with the entry; it throws archive_error on any
// malformed stream, on input running out, and on output beyond the size the
// caller expects.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include "simic/archive/archive_error.hpp"

namespace simic {
inline namespace v0 {
namespace detail {

class inflater {
 private:
  static constexpr std::size_t window = 32768;
  static constexpr int max_bits = 15;

  struct huffman {
    std::array<std::uint16_t, max_bits + 1> count{};
    std::array<std::uint16_t, 288> symbol{};
  };

  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
  std::uint32_t bitbuf_ = 0;
  int bitcount_ = 0;
  std::uint64_t max_out_;
  std::uint64_t out_ = 0;      // bytes produced
  std::uint64_t flushed_ = 0;  // bytes handed to the sink
  std::array<std::uint8_t, window> ring_{};

  inflater(std::span<const std::uint8_t> in, std::uint64_t max_out) : in_(in), max_out_(max_out) {}

  [[noreturn]] static void fail(const std::string& why) { throw archive_error("deflate stream: " + why); }

  unsigned bits(int n) {
    std::uint32_t v = bitbuf_;
    while (bitcount_ < n) {
      if (pos_ >= in_.size()) fail("input ends inside the stream");
      v |= static_cast<std::uint32_t>(in_[pos_++]) << bitcount_;
      bitcount_ += 8;
    }
    bitbuf_ = v >> n;
    bitcount_ -= n;
    return v & ((1u << n) - 1u);
  }

  void put(std::uint8_t b) {
    if (out_ >= max_out_) fail("output exceeds the expected " + std::to_string(max_out_) + " bytes");
    ring_[static_cast<std::size_t>(out_ % window)] = b;
    ++out_;
  }
  void stored() {
    // a stored block starts at a byte boundary; zlib pads with zero bits,
    // and requiring that leaves no bit of the stream unchecked
    if (bitbuf_ != 0) fail("nonzero padding bits before a stored block");
    bitbuf_ = 0;
    bitcount_ = 0;  // stored blocks start at a byte boundary
    if (in_.size() - pos_ < 4) fail("input ends inside a stored block's length");
    const unsigned len = in_[pos_] | (in_[pos_ + 1] << 8);
    const unsigned nlen = in_[pos_ + 2] | (in_[pos_ + 3] << 8);
    pos_ += 4;
    if (len != (~nlen & 0xFFFFu)) fail("stored block length and its complement disagree");
    if (in_.size() - pos_ < len) fail("input ends inside a stored block");
    for (unsigned i = 0; i < len; ++i) put_flushing(in_[pos_ + i]);
    pos_ += len;
  }

  // Decoded bytes reach the caller's sink whenever the window is full, so the
  // ring never overwrites a byte not yet handed on.
  void (*pending_sink_)(void*, const std::uint8_t*, std::size_t) = nullptr;
  void* pending_ctx_ = nullptr;
  void put_flushing(std::uint8_t b) {
    if (out_ - flushed_ == window) drain();
    put(b);
  }
  void drain() {
    while (flushed_ < out_) {
      const std::size_t at = static_cast<std::size_t>(flushed_ % window);
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(out_ - flushed_, window - at));
      pending_sink_(pending_ctx_, ring_.data() + at, n);
      flushed_ += n;
    }
  }

  static void build(huffman& h, const std::uint8_t* lengths, int n) {
    h.count.fill(0);
    for (int i = 0; i < n; ++i) ++h.count[lengths[i]];
    if (h.count[0] == n) return;  // no codes: any decode fails
    int left = 1;
    for (int len = 1; len <= max_bits; ++len) {
      left <<= 1;
      left -= h.count[len];
      if (left < 0) fail("over-subscribed Huffman code");
    }
    std::array<std::uint16_t, max_bits + 2> offs{};
    for (int len = 1; len < max_bits; ++len) offs[len + 1] = offs[len] + h.count[len];
    for (int i = 0; i < n; ++i)
      if (lengths[i] != 0) h.symbol[offs[lengths[i]]++] = static_cast<std::uint16_t>(i);
  }

  int decode(const huffman& h) {
    int code = 0, first = 0, index = 0;
    for (int len = 1; len <= max_bits; ++len) {
      code |= static_cast<int>(bits(1));
      const int count = h.count[len];
      if (code - count < first) return h.symbol[index + (code - first)];
      index += count;
      first += count;
      first <<= 1;
      code <<= 1;
    }
    fail("invalid Huffman code");
  }

  void codes(const huffman& lit, const huffman& dist) {
    static constexpr std::array<std::uint16_t, 29> len_base{3,  4,  5,  6,  7,  8,  9,  10, 11,  13,
                                                            15, 17, 19, 23, 27, 31, 35, 43, 51,  59,
                                                            67, 83, 99, 115, 131, 163, 195, 227, 258};
    static constexpr std::array<std::uint8_t, 29> len_extra{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                                            2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
    static constexpr std::array<std::uint16_t, 30> dist_base{
        1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
        193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
    static constexpr std::array<std::uint8_t, 30> dist_extra{0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                                             6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
    for (;;) {
      const int sym = decode(lit);
      if (sym < 256) {
        put_flushing(static_cast<std::uint8_t>(sym));
      } else if (sym == 256) {
        return;
      } else {
        const int li = sym - 257;
        if (li >= 29) fail("invalid length symbol " + std::to_string(sym));
        const unsigned len = len_base[li] + bits(len_extra[li]);
        const int ds = decode(dist);
        if (ds >= 30) fail("invalid distance symbol " + std::to_string(ds));
        const unsigned d = dist_base[ds] + bits(dist_extra[ds]);
        if (d > out_) fail("distance " + std::to_string(d) + " reaches before the start of the output");
        for (unsigned i = 0; i < len; ++i) {
          // the source byte is at most 32768 back, and the ring keeps at least
          // that much once drained, because drain happens only when full
          const std::uint8_t b = ring_[static_cast<std::size_t>((out_ - d) % window)];
          put_flushing(b);
        }
      }
    }
  }

  void fixed() {
    static const auto tables = [] {
      std::pair<huffman, huffman> t;
      std::array<std::uint8_t, 288> l{};
      for (int i = 0; i < 144; ++i) l[i] = 8;
      for (int i = 144; i < 256; ++i) l[i] = 9;
      for (int i = 256; i < 280; ++i) l[i] = 7;
      for (int i = 280; i < 288; ++i) l[i] = 8;
      build(t.first, l.data(), 288);
      std::array<std::uint8_t, 30> d{};
      d.fill(5);
      build(t.second, d.data(), 30);
      return t;
    }();
    codes(tables.first, tables.second);
  }

  void dynamic() {
    static constexpr std::array<std::uint8_t, 19> order{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    const int nlen = static_cast<int>(bits(5)) + 257;
    const int ndist = static_cast<int>(bits(5)) + 1;
    const int ncode = static_cast<int>(bits(4)) + 4;
    if (nlen > 286 || ndist > 30) fail("too many length or distance codes");
    std::array<std::uint8_t, 320> lengths{};
    for (int i = 0; i < ncode; ++i) lengths[order[i]] = static_cast<std::uint8_t>(bits(3));
    huffman lencode;
    build(lencode, lengths.data(), 19);
    int index = 0;
    while (index < nlen + ndist) {
      int sym = decode(lencode);
      if (sym < 16) {
        lengths[index++] = static_cast<std::uint8_t>(sym);
        continue;
      }
      std::uint8_t value = 0;
      int repeat = 0;
      if (sym == 16) {
        if (index == 0) fail("repeat with no previous length");
        value = lengths[index - 1];
        repeat = 3 + static_cast<int>(bits(2));
      } else if (sym == 17) {
        repeat = 3 + static_cast<int>(bits(3));
      } else {
        repeat = 11 + static_cast<int>(bits(7));
      }
      if (index + repeat > nlen + ndist) fail("code lengths overrun the table");
      while (repeat--) lengths[index++] = value;
    }
    if (lengths[256] == 0) fail("no end-of-block code");
    huffman lit, dist;
    build(lit, lengths.data(), nlen);
    build(dist, lengths.data() + nlen, ndist);
    codes(lit, dist);
  }

 public:
  // Decodes `in` into at most `max_out` bytes, calling sink(const uint8_t*,
  // size_t) on each piece in order. Returns {input bytes consumed, bytes out}.
  template <class Sink>
  static std::pair<std::size_t, std::uint64_t> decode_all(std::span<const std::uint8_t> in, std::uint64_t max_out,
                                                          Sink& sink) {
    inflater z(in, max_out);
    z.pending_ctx_ = &sink;
    z.pending_sink_ = [](void* ctx, const std::uint8_t* p, std::size_t n) { (*static_cast<Sink*>(ctx))(p, n); };
    bool last = false;
    while (!last) {
      last = z.bits(1) != 0;
      const unsigned type = z.bits(2);
      if (type == 0)
        z.stored();
      else if (type == 1)
        z.fixed();
      else if (type == 2)
        z.dynamic();
      else
        fail("block type 3 is reserved");
    }
    if (z.bitbuf_ != 0) fail("nonzero padding bits after the final block");
    z.drain();
    return {z.pos_, z.out_};
  }
};

}  // namespace detail
}  // namespace v0
}  // namespace simic
