// The storages a LibTorch archive's data.pkl declares, read without LibTorch,
// and the check that each one's record holds them.
//
// LibTorch's loader sizes a storage from its persistent id in data.pkl
// ('storage', torch.<T>Storage, key, device, numel: numel x item size bytes)
// but backs it with the bytes of the record "<archive>/data/<key>", whatever
// their number. A zip with every CRC right whose entries were renamed, or
// whose data.pkl was edited, so gives a tensor that reads past its buffer.
// check_pickled_storages() refuses such a file before LibTorch reads it
// (open_verified_archive, archive/torch_archive.hpp); the reader of each
// field then checks its tensor's sizes, strides and offset against the
// storage. No LibTorch here: this header is fuzzed and tested on its own.
//
// The walker follows pickle protocols 0 to 5, which covers what LibTorch's
// pickler writes (protocol 2); it models the stack only as far as it needs
// to: strings, integers, globals and tuples, everything else as "other".
// A pickle it cannot follow (an unknown opcode, a truncated argument, a pop
// from an empty stack) is one LibTorch's unpickler refuses as well, and
// throws archive_error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "simic/archive/archive_error.hpp"
#include "simic/archive/inflate.hpp"
#include "simic/archive/zip_verify.hpp"

namespace simic {
inline namespace v0 {

// One persistent id of a pickle that LibTorch reads as a storage.
struct pickled_storage {
  std::string key;           // its record: "<archive>/data/<key>" for data.pkl
  std::string type;          // the storage class less "Storage": "Double", "Long", ...
  std::int64_t numel = 0;    // elements declared
  std::string field;         // the string the tensor is stored under (a module attribute), where the pickle says
  std::size_t at = 0;        // byte of its BINPERSID opcode in the pickle
};

namespace detail {

// Bytes per element of a storage class (torch.<type>Storage); 0 for a type
// simic does not know (the check then assumes 1 byte, a lower bound).
inline std::uint64_t pickled_item_size(std::string_view type) {
  static const std::unordered_map<std::string_view, std::uint64_t> sizes{
      {"Byte", 1},          {"Char", 1},          {"Bool", 1},          {"QInt8", 1},         {"QUInt8", 1},
      {"QUInt4x2", 1},      {"QUInt2x4", 1},      {"Float8_e5m2", 1},   {"Float8_e4m3fn", 1}, {"Float8_e5m2fnuz", 1},
      {"Float8_e4m3fnuz", 1}, {"Short", 2},       {"Half", 2},          {"BFloat16", 2},      {"UInt16", 2},
      {"Int", 4},           {"Float", 4},         {"QInt32", 4},        {"ComplexHalf", 4},   {"UInt32", 4},
      {"Long", 8},          {"Double", 8},        {"ComplexFloat", 8},  {"UInt64", 8},        {"ComplexDouble", 16}};
  const auto it = sizes.find(type);
  return it == sizes.end() ? 0 : it->second;
}

class pickle_walker {
 public:
  explicit pickle_walker(std::span<const std::uint8_t> p) : p_(p) {}

  std::vector<pickled_storage> run() {
    for (;;) {
      const std::size_t op_at = pos_;
      const std::uint8_t op = byte();
      switch (op) {
        case 0x80: byte(); break;  // PROTO
        case 0x95: bytes(8); break;  // FRAME
        case '.': return std::move(found_);  // STOP
        case '(': marks_.push_back(stack_.size()); break;
        case ')': case ']': case '}': case 0x8f: case 'N': case 0x97: push(other()); break;  // empty tuple, list, dict, set; None; NEXT_BUFFER
        case 0x88: case 0x89: push(integer(op == 0x88)); break;  // NEWTRUE, NEWFALSE
        case 'K': push(integer(static_cast<std::int64_t>(le(1)))); break;
        case 'M': push(integer(static_cast<std::int64_t>(le(2)))); break;
        case 'J': push(integer(static_cast<std::int32_t>(static_cast<std::uint32_t>(le(4))))); break;
        case 0x8a: push(long_bytes(le(1))); break;  // LONG1
        case 0x8b: push(long_bytes(le(4))); break;  // LONG4
        case 'G': bytes(8); push(other()); break;    // BINFLOAT
        case 'X': case 'T': push(text(bytes(le(4)))); break;  // BINUNICODE, BINSTRING
        case 0x8c: case 'U': push(text(bytes(le(1)))); break;  // SHORT_BINUNICODE, SHORT_BINSTRING
        case 0x8d: push(text(bytes(le(8)))); break;             // BINUNICODE8
        case 'B': bytes(le(4)); push(other()); break;           // BINBYTES
        case 'C': bytes(le(1)); push(other()); break;           // SHORT_BINBYTES
        case 0x8e: case 0x96: bytes(le(8)); push(other()); break;  // BINBYTES8, BYTEARRAY8
        case 'I': case 'L': push(decimal(line())); break;       // INT, LONG
        case 'S': case 'V': push(text(line())); break;          // STRING, UNICODE
        case 'F': line(); push(other()); break;                 // FLOAT
        case 'P': line(); push(other()); break;                 // PERSID (text)
        case 0x82: bytes(1); push(other()); break;              // EXT1
        case 0x83: bytes(2); push(other()); break;              // EXT2
        case 0x84: bytes(4); push(other()); break;              // EXT4
        case 'c': {                                             // GLOBAL
          std::string module = std::string(line());
          push(global(std::move(module), std::string(line())));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          const value name = pop(op_at), module = pop(op_at);
          push(module.kind == value::str && name.kind == value::str ? global(module.s, name.s) : other());
          break;
        }
        case 't': push(tuple(pop_mark(op_at))); break;
        case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
          std::vector<value> items(op - 0x84);
          for (std::size_t i = items.size(); i-- > 0;) items[i] = pop(op_at);
          push(tuple(std::move(items)));
          break;
        }
        case 'l': case 'd': case 0x91: pop_mark(op_at); push(other()); break;  // LIST, DICT, FROZENSET
        case 'e': case 'u': case 0x90: case '1': pop_mark(op_at); break;       // APPENDS, SETITEMS, ADDITEMS, POP_MARK
        case 'i': line(); line(); pop_mark(op_at); push(other()); break;      // INST
        case 'o': pop_mark(op_at); push(other()); break;                      // OBJ
        case 'a': case '0': pop(op_at); break;                                // APPEND, POP
        case 's': pop(op_at); pop(op_at); break;                              // SETITEM
        case 'R': case 'b': case 0x81: pop(op_at); pop(op_at); push(other()); break;  // REDUCE, BUILD, NEWOBJ
        case 0x92: pop(op_at); pop(op_at); pop(op_at); push(other()); break;        // NEWOBJ_EX
        case 0x98: break;                                                           // READONLY_BUFFER
        case '2': push(top(op_at)); break;                                          // DUP
        case 'q': memo_[le(1)] = top(op_at); break;                                 // BINPUT
        case 'r': memo_[le(4)] = top(op_at); break;                                 // LONG_BINPUT
        case 'p': memo_[decimal_index(line())] = top(op_at); break;                // PUT
        case 0x94: memo_[memo_.size()] = top(op_at); break;                        // MEMOIZE
        case 'h': push(memo(le(1), op_at)); break;                                  // BINGET
        case 'j': push(memo(le(4), op_at)); break;                                  // LONG_BINGET
        case 'g': push(memo(decimal_index(line()), op_at)); break;                 // GET
        case 'Q': persistent_id(op_at); break;                                      // BINPERSID
        default: fail("opcode 0x" + hex2(op) + " at byte " + std::to_string(op_at) + " is no pickle opcode");
      }
    }
  }

 private:
  struct value {
    enum kind_t { other, str, integer, global, tuple } kind = other;
    std::string s{}, s2{};  // str; global: module, name
    std::int64_t i = 0;
    bool big = false;  // an integer past 64 bits
    std::shared_ptr<const std::vector<value>> items{};
  };
  static value other() { return {}; }
  static value integer(std::int64_t v) { return {value::integer, {}, {}, v}; }
  static value text(std::string_view s) { return {value::str, std::string(s)}; }
  static value global(std::string module, std::string name) { return {value::global, std::move(module), std::move(name)}; }
  static value tuple(std::vector<value> items) {
    value v;
    v.kind = value::tuple;
    v.items = std::make_shared<const std::vector<value>>(std::move(items));
    return v;
  }

  [[noreturn]] static void fail(const std::string& why) {
    throw archive_error("simic::pickled_storages: " + why);
  }
  static std::string hex2(std::uint8_t b) {
    const char* d = "0123456789abcdef";
    return {d[b >> 4], d[b & 15]};
  }
  std::uint8_t byte() {
    if (pos_ >= p_.size()) fail("the pickle ends at byte " + std::to_string(p_.size()) + " without a STOP opcode");
    return p_[pos_++];
  }
  std::string_view bytes(std::uint64_t n) {
    if (n > p_.size() - pos_)
      fail("an argument of " + std::to_string(n) + " bytes at byte " + std::to_string(pos_) + " runs past the pickle's " +
           std::to_string(p_.size()) + " bytes");
    const std::string_view s(reinterpret_cast<const char*>(p_.data() + pos_), static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return s;
  }
  std::uint64_t le(int n) {
    const std::string_view b = bytes(static_cast<std::uint64_t>(n));
    std::uint64_t v = 0;
    for (int k = n - 1; k >= 0; --k) v = (v << 8) | static_cast<std::uint8_t>(b[static_cast<std::size_t>(k)]);
    return v;
  }
  std::string_view line() {
    const std::size_t start = pos_;
    while (byte() != '\n') {
    }
    return {reinterpret_cast<const char*>(p_.data() + start), pos_ - 1 - start};
  }
  // A little-endian two's complement integer of `n` bytes (LONG1, LONG4).
  value long_bytes(std::uint64_t n) {
    const std::string_view b = bytes(n);
    if (n > 8) {
      value v = integer(0);
      v.big = true;
      return v;
    }
    std::uint64_t u = 0;
    for (std::size_t k = b.size(); k-- > 0;) u = (u << 8) | static_cast<std::uint8_t>(b[k]);
    if (n > 0 && n < 8 && (static_cast<std::uint8_t>(b[b.size() - 1]) & 0x80)) u |= ~std::uint64_t{0} << (8 * n);
    return integer(static_cast<std::int64_t>(u));
  }
  static value decimal(std::string_view s) {
    if (!s.empty() && s.back() == 'L') s.remove_suffix(1);
    const bool negative = !s.empty() && s.front() == '-';
    if (negative) s.remove_prefix(1);
    if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string_view::npos) return other();
    std::int64_t v = 0;
    for (const char c : s) v = v * 10 + (c - '0');
    return integer(negative ? -v : v);
  }
  std::uint64_t decimal_index(std::string_view s) {
    const value v = decimal(s);
    if (v.kind != value::integer || v.i < 0) fail("a memo index '" + std::string(s) + "' that is no number");
    return static_cast<std::uint64_t>(v.i);
  }

  void push(value v) { stack_.push_back(std::move(v)); }
  value pop(std::size_t at) {
    if (stack_.empty()) fail("the opcode at byte " + std::to_string(at) + " pops an empty stack");
    value v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  const value& top(std::size_t at) const {
    if (stack_.empty()) fail("the opcode at byte " + std::to_string(at) + " reads an empty stack");
    return stack_.back();
  }
  std::vector<value> pop_mark(std::size_t at) {
    if (marks_.empty()) fail("the opcode at byte " + std::to_string(at) + " needs a MARK; there is none");
    const std::size_t start = marks_.back();
    marks_.pop_back();
    if (start > stack_.size()) fail("the opcode at byte " + std::to_string(at) + " finds its MARK popped");
    std::vector<value> items(std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(start)),
                             std::make_move_iterator(stack_.end()));
    stack_.resize(start);
    return items;
  }
  value memo(std::uint64_t id, std::size_t at) const {
    const auto it = memo_.find(id);
    if (it == memo_.end()) fail("the opcode at byte " + std::to_string(at) + " gets memo " + std::to_string(id) + ", never put");
    return it->second;
  }

  // BINPERSID: LibTorch reads a tuple ('storage', torch.<T>Storage, key,
  // device, numel) as a storage; other persistent ids it refuses itself.
  void persistent_id(std::size_t at) {
    const value id = pop(at);
    push(other());
    if (id.kind != value::tuple || id.items->size() < 5) return;
    const std::vector<value>& t = *id.items;
    if (t[0].kind != value::str || t[0].s != "storage" || t[1].kind != value::global || t[1].s != "torch" ||
        t[2].kind != value::str || t[4].kind != value::integer)
      return;
    constexpr std::string_view suffix = "Storage";
    const std::string& cls = t[1].s2;
    if (cls.size() <= suffix.size() || cls.compare(cls.size() - suffix.size(), suffix.size(), suffix) != 0) return;
    if (t[4].big) fail("storage '" + t[2].s + "' declares a number of elements past 64 bits");
    pickled_storage s;
    s.key = t[2].s;
    s.type = cls.substr(0, cls.size() - suffix.size());
    s.numel = t[4].i;
    s.at = at;
    // LibTorch's layout of a tensor under a name: the name, the global
    // _rebuild_tensor_v2, MARK (its arguments), then this id
    if (!marks_.empty()) {
      const std::size_t m = marks_.back();
      if (m >= 2 && m <= stack_.size() && stack_[m - 1].kind == value::global && stack_[m - 2].kind == value::str)
        s.field = stack_[m - 2].s;
    }
    found_.push_back(std::move(s));
  }

  std::span<const std::uint8_t> p_;
  std::size_t pos_ = 0;
  std::vector<value> stack_;
  std::vector<std::size_t> marks_;
  std::map<std::uint64_t, value> memo_;
  std::vector<pickled_storage> found_;
};

// The data of an entry of a verified zip: its stored bytes, or inflated
// into `inflated` where it is deflated.
inline std::span<const std::uint8_t> entry_data(std::span<const std::uint8_t> zip, const zip_entry& e,
                                                std::vector<std::uint8_t>& inflated) {
  const auto stored = zip.subspan(static_cast<std::size_t>(e.data_offset), static_cast<std::size_t>(e.compressed_size));
  if (e.method == 0) return stored;
  inflated.clear();
  inflated.reserve(static_cast<std::size_t>(e.size));
  auto sink = [&](const std::uint8_t* p, std::size_t n) { inflated.insert(inflated.end(), p, p + n); };
  inflater::decode_all(stored, e.size, sink);
  return inflated;
}

}  // namespace detail

// Every storage that `pickle` declares as LibTorch reads it, in order.
// Throws archive_error for a pickle that cannot be followed.
inline std::vector<pickled_storage> pickled_storages(std::span<const std::uint8_t> pickle) {
  return detail::pickle_walker(pickle).run();
}

// For a zip that verify_zip() accepted (`listing` is its result): each
// storage that "<archive>/data.pkl" declares with elements has a record
// "<archive>/data/<key>" of its elements x item size bytes, less than one
// element more at most (at least 1 byte an element for a type simic does
// not know); a negative count is refused,
// and so is a key that two storages declare: LibTorch's pickler writes each
// storage once and refers to it again through the memo, so a second
// persistent id of one key is an edit that makes two tensors read one record
// (Python's torch.save repeats ids, but InputArchive cannot read its files).
// A zip with no data.pkl, or whose first entry is in no folder, is left to
// LibTorch, which refuses it. Throws archive_error naming the record, and
// the field the tensor is stored under where data.pkl says.
inline void check_pickled_storages(std::span<const std::uint8_t> zip, const zip_listing& listing) {
  if (listing.entries.empty()) return;
  const std::string& first = listing.entries.front().name;
  const std::size_t slash = first.find('/');
  if (slash == std::string::npos) return;
  const std::string root = first.substr(0, slash + 1);  // LibTorch's archive name, as its reader finds it
  std::map<std::string, const zip_entry*, std::less<>> by_name;
  for (const zip_entry& e : listing.entries) by_name.emplace(e.name, &e);
  const auto pkl = by_name.find(root + "data.pkl");
  if (pkl == by_name.end()) return;
  const zip_entry& e = *pkl->second;
  std::vector<std::uint8_t> inflated;
  const std::span<const std::uint8_t> pickle = detail::entry_data(zip, e, inflated);
  std::vector<pickled_storage> storages;
  try {
    storages = pickled_storages(pickle);
  } catch (const archive_error& x) {
    throw archive_error("simic::check_pickled_storages: '" + e.name + "': " + x.what());
  }
  std::map<std::string_view, const pickled_storage*> first_of_key;
  for (const pickled_storage& s : storages) {
    const auto [seen, fresh] = first_of_key.emplace(s.key, &s);
    if (!fresh) {
      const auto name = [](const pickled_storage& p) { return p.field.empty() ? std::string("a tensor") : "'" + p.field + "'"; };
      throw archive_error("simic::check_pickled_storages: " + name(s) + " and " + name(*seen->second) +
                          " both declare data.pkl's storage '" + s.key + "' (record '" + root + "data/" + s.key +
                          "', at bytes " + std::to_string(seen->second->at) + " and " + std::to_string(s.at) +
                          " of '" + e.name + "'): the archive's data.pkl was edited");
    }
  }
  for (const pickled_storage& s : storages) {
    const std::uint64_t item = detail::pickled_item_size(s.type);
    const std::string what = (s.field.empty() ? std::string("a tensor") : "'" + s.field + "'") + " (data.pkl's storage '" +
                             s.key + "': " + std::to_string(s.numel) + " x " + s.type + ", " +
                             (item == 0 ? std::string("at least 1 byte") : std::to_string(item) + " bytes") + " each)";
    if (s.numel < 0)
      throw archive_error("simic::check_pickled_storages: " + what + " declares a negative number of elements");
    if (s.numel == 0) continue;  // LibTorch reads no record for it
    const std::string record = root + "data/" + s.key;
    const auto r = by_name.find(record);
    if (r == by_name.end())
      throw archive_error("simic::check_pickled_storages: " + what + ": the zip has no record '" + record + "'");
    const std::uint64_t holds = r->second->size, n = static_cast<std::uint64_t>(s.numel), each = item == 0 ? 1 : item;
    if (n > holds / each) {
      const std::string needs = n > std::numeric_limits<std::uint64_t>::max() / each ? std::string("more than 2^64")
                                                                                     : std::to_string(n * each);
      throw archive_error("simic::check_pickled_storages: " + what + " needs " + needs + " bytes; its record '" +
                          record + "' holds " + std::to_string(holds) +
                          ": the archive's entries were renamed or its data.pkl edited");
    }
  }
  // LibTorch writes a storage's bytes exactly (numel is its bytes over the
  // item size): a record an element or more longer holds other data, one
  // swapped in from elsewhere. Checked after every record was found to hold
  // enough: a shortfall, the worse lie, is the one named first.
  for (const pickled_storage& s : storages) {
    const std::uint64_t item = detail::pickled_item_size(s.type);
    const auto r = by_name.find(root + "data/" + s.key);
    if (s.numel == 0 || item == 0 || r->second->size / item <= static_cast<std::uint64_t>(s.numel)) continue;
    throw archive_error("simic::check_pickled_storages: " + (s.field.empty() ? std::string("a tensor") : "'" + s.field + "'") +
                        " (data.pkl's storage '" + s.key + "': " + std::to_string(s.numel) + " x " + s.type + ", " +
                        std::to_string(item) + " bytes each) is " + std::to_string(static_cast<std::uint64_t>(s.numel) * item) +
                        " bytes; its record '" + r->first + "' holds " + std::to_string(r->second->size) +
                        ", more than a writer puts there: the archive's entries were renamed or its data.pkl edited");
  }
}

}  // namespace v0
}  // namespace simic
