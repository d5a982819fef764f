// Internal to csrc/glove: Stanford's tokenizer, a byte-string hash table, and the block reader
// that cuts a corpus into pieces that begin and end at token boundaries.
#pragma once

#include <cstdint>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "seqkernels/glove.h"

namespace seqkernels {
namespace glove {
namespace detail {

// ---- bytes -------------------------------------------------------------------------------------
enum ByteClass : uint8_t { kWordByte = 0, kBlank = 1, kNewline = 2, kCarriageReturn = 3 };

struct ByteClasses {
  uint8_t of[256];
  constexpr ByteClasses() : of() {
    of[static_cast<uint8_t>(' ')] = kBlank;
    of[static_cast<uint8_t>('\t')] = kBlank;
    of[static_cast<uint8_t>('\n')] = kNewline;
    of[static_cast<uint8_t>('\r')] = kCarriageReturn;
  }
};
inline constexpr ByteClasses kByteClasses{};

inline bool is_separator(char c) { return c == ' ' || c == '\t' || c == '\n'; }

// Stanford's cut of a token whose \r-free form is `kept` bytes long: at most 999 bytes, and when
// exactly 999 remain, an incomplete UTF-8 sequence at the end is dropped.
inline size_t stanford_token_length(const char* p, size_t n) {
  if (n > static_cast<size_t>(kMaxTokenBytes)) n = kMaxTokenBytes;
  if (n == static_cast<size_t>(kMaxTokenBytes) && (p[n - 1] & 0x80)) {
    if ((p[n - 1] & 0xC0) == 0xC0) return n - 1;
    if ((p[n - 2] & 0xE0) == 0xE0) return n - 2;
    if ((p[n - 3] & 0xF8) == 0xF0) return n - 3;
  }
  return n;
}

// Bit i set where p[i] is a blank, tab or newline (64 bytes from p); newlines also in *newlines.
inline uint64_t separator_mask(const char* p, uint64_t* newlines) {
#if defined(__SSE2__)
  const __m128i space = _mm_set1_epi8(' '), tab = _mm_set1_epi8('\t'), nl = _mm_set1_epi8('\n');
  uint64_t sep = 0, lines = 0;
  for (int k = 0; k < 4; ++k) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * k));
    const __m128i is_nl = _mm_cmpeq_epi8(v, nl);
    const __m128i is_sep = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, space), _mm_cmpeq_epi8(v, tab)), is_nl);
    sep |= static_cast<uint64_t>(static_cast<uint16_t>(_mm_movemask_epi8(is_sep))) << (16 * k);
    lines |= static_cast<uint64_t>(static_cast<uint16_t>(_mm_movemask_epi8(is_nl))) << (16 * k);
  }
  *newlines = lines;
  return sep;
#else
  uint64_t sep = 0, lines = 0;
  for (int i = 0; i < 64; ++i) {
    sep |= static_cast<uint64_t>(is_separator(p[i])) << i;
    lines |= static_cast<uint64_t>(p[i] == '\n') << i;
  }
  *newlines = lines;
  return sep;
#endif
}

// tokenize() for a range without \r: 64 bytes at a time, tokens found from bit masks of the
// separators instead of a branch per byte (the scalar loop mispredicts at every token end).
template <typename OnToken, typename OnNewline>
inline void tokenize_no_cr(const char* p, const char* end, OnToken&& on_token, OnNewline&& on_newline) {
  const char* const begin = p;
  uint64_t carry = 1;  // the byte before `begin` counts as a separator (ranges start at a boundary)
  for (; end - p >= 64; p += 64) {
    uint64_t newlines;
    const uint64_t sep = separator_mask(p, &newlines);
    uint64_t events = (~sep & ((sep << 1) | carry)) | newlines;  // token starts, and newlines
    carry = sep >> 63;
    while (events) {
      const int i = __builtin_ctzll(events);
      events &= events - 1;
      if ((newlines >> i) & 1) {
        on_newline();
        continue;
      }
      const uint64_t after = i == 63 ? 0 : sep & (~uint64_t{0} << (i + 1));
      const char* start = p + i;
      const char* stop;
      if (after) {
        stop = p + __builtin_ctzll(after);
      } else {  // the token runs past this chunk
        stop = p + 64;
        while (stop < end && !is_separator(*stop)) ++stop;
      }
      on_token(start, stanford_token_length(start, static_cast<size_t>(stop - start)));
    }
  }
  // The tail (< 64 bytes), bytewise; a token started above and still running was emitted already.
  const char* q = p;
  if (p > begin && !carry)
    while (q < end && !is_separator(*q)) ++q;
  while (q < end) {
    if (*q == '\n') on_newline();
    if (is_separator(*q)) {
      ++q;
      continue;
    }
    const char* start = q;
    while (q < end && !is_separator(*q)) ++q;
    on_token(start, stanford_token_length(start, static_cast<size_t>(q - start)));
  }
}

// Walks [p, end), which starts at a token boundary, calling on_token(const char*, size_t) for each
// token (Stanford's get_word: \r dropped anywhere, blanks separate, long tokens cut) and
// on_newline() for each '\n'. `scratch` holds a token that contained \r.
template <typename OnToken, typename OnNewline>
inline void tokenize(const char* p, const char* end, std::string& scratch, OnToken&& on_token,
                     OnNewline&& on_newline) {
  if (p < end && !std::memchr(p, '\r', static_cast<size_t>(end - p))) {
    tokenize_no_cr(p, end, on_token, on_newline);
    return;
  }
  const uint8_t* cls = kByteClasses.of;
  while (p < end) {
    const uint8_t c = cls[static_cast<uint8_t>(*p)];
    if (c != kWordByte) {
      if (c == kNewline) on_newline();
      ++p;  // blanks and a lone \r
      continue;
    }
    const char* start = p;
    bool has_cr = false;
    for (; p < end; ++p) {
      const uint8_t k = cls[static_cast<uint8_t>(*p)];
      if (k == kWordByte) continue;
      if (k == kCarriageReturn) { has_cr = true; continue; }
      break;
    }
    if (!has_cr) {
      on_token(start, stanford_token_length(start, static_cast<size_t>(p - start)));
    } else {
      scratch.clear();
      for (const char* q = start; q < p && scratch.size() < static_cast<size_t>(kMaxTokenBytes); ++q)
        if (*q != '\r') scratch.push_back(*q);
      on_token(scratch.data(), stanford_token_length(scratch.data(), scratch.size()));
    }
  }
}

// ---- hashing -----------------------------------------------------------------------------------
inline uint64_t mix64(uint64_t x) {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Loads of 1..8 bytes without a library call (two overlapping loads for 4..8 bytes).
// The n <= 8 bytes at p as a little-endian number, zero-padded; no loop, no library call.
inline uint64_t load_tail(const char* p, size_t n) {
  if (n >= 4) {  // bytes 0..3, then bytes 4..n-1 taken from the last four
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + n - 4, 4);
    return lo | ((static_cast<uint64_t>(hi) >> (8 * (8 - n))) << 32);
  }
  if (n == 0) return 0;
  const auto byte = [p](size_t i) { return static_cast<uint64_t>(static_cast<uint8_t>(p[i])); };
  return byte(0) | (byte(n / 2) << (8 * (n / 2))) | (byte(n - 1) << (8 * (n - 1)));
}

inline uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ULL * (n + 1);
  while (n > 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
    p += 8;
    n -= 8;
  }
  return mix64(h ^ load_tail(p, n));
}

// a[0..n) == b[0..n) for the short strings of a vocabulary, without a call to memcmp.
inline bool same_bytes(const char* a, const char* b, size_t n) {
  while (n > 8) {
    uint64_t x, y;
    std::memcpy(&x, a, 8);
    std::memcpy(&y, b, 8);
    if (x != y) return false;
    a += 8;
    b += 8;
    n -= 8;
  }
  return load_tail(a, n) == load_tail(b, n);
}

// Open-addressing map from byte strings to a 64-bit value, with the strings in one pool.
// Grows by doubling; lookups from several threads are safe while nobody inserts.
class WordTable {
 public:
  explicit WordTable(size_t expected = 1024) { rehash(capacity_for(expected)); }

  // Value slot of the word, inserting it with value 0 when new.
  int64_t& upsert(const char* p, size_t n) {
    const uint64_t h = hash_bytes(p, n);
    size_t i = h & mask_;
    const uint32_t tag = tag_of(h);
    for (;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.tag == 0) break;
      if (s.tag == tag && s.len == n && same_bytes(pool_.data() + s.offset, p, n)) return s.value;
    }
    if ((size_ + 1) * 4 > slots_.size() * 3) {  // keep the load under 3/4
      rehash(slots_.size() * 2);
      return upsert(p, n);
    }
    Slot& s = slots_[i];
    s.tag = tag;
    s.len = static_cast<uint32_t>(n);
    s.offset = pool_.size();
    s.value = 0;
    pool_.append(p, n);
    ++size_;
    return s.value;
  }

  // Value of the word, or `missing`.
  int64_t find(const char* p, size_t n, int64_t missing) const {
    const uint64_t h = hash_bytes(p, n);
    const uint32_t tag = tag_of(h);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.tag == 0) return missing;
      if (s.tag == tag && s.len == n && same_bytes(pool_.data() + s.offset, p, n)) return s.value;
    }
  }

  size_t size() const { return size_; }
  size_t bytes() const { return slots_.size() * sizeof(Slot) + pool_.capacity(); }

  template <typename F>
  void for_each(F&& f) const {  // f(std::string_view word, int64_t value)
    for (const Slot& s : slots_)
      if (s.tag != 0) f(std::string_view(pool_.data() + s.offset, s.len), s.value);
  }

 private:
  struct Slot {
    uint32_t tag;  // high hash bits, never 0 for a used slot
    uint32_t len;
    uint64_t offset;
    int64_t value;
  };
  static uint32_t tag_of(uint64_t h) { return static_cast<uint32_t>(h >> 32) | 1u; }
  static size_t capacity_for(size_t n) {
    size_t c = 16;
    while (c * 3 < n * 4 + 4) c *= 2;
    return c;
  }
  void rehash(size_t capacity) {
    std::vector<Slot> old(capacity, Slot{0, 0, 0, 0});
    old.swap(slots_);
    mask_ = capacity - 1;
    for (const Slot& s : old) {
      if (s.tag == 0) continue;
      const uint64_t h = hash_bytes(pool_.data() + s.offset, s.len);
      size_t i = h & mask_;
      while (slots_[i].tag != 0) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;
  std::string pool_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

// A vocabulary lookup for the co-occurrence tokenizer: word -> id (1-based), 0 if absent. The
// frequent short words also sit in a small direct-mapped cache (128 KiB, stays in L2) that is
// checked first: most tokens are such words, and the main table's slots and strings miss the
// caches (measured: slot and string loads were over half of the tokenizing time).
class WordLookup {
 public:
  explicit WordLookup(const std::vector<std::string>& words) : table_(words.size()), hot_(kHotSlots) {
    for (size_t i = 0; i < words.size(); ++i) {
      int64_t& id = table_.upsert(words[i].data(), words[i].size());
      if (id == 0) id = static_cast<int64_t>(i) + 1;  // a duplicate keeps its first id (callers reject them)
    }
    for (size_t i = 0; i < words.size(); ++i) {  // frequent first: they keep contested slots
      const std::string& w = words[i];
      if (w.empty() || w.size() > 8) continue;
      Hot& slot = hot_[hot_index(hash_bytes(w.data(), w.size()))];
      if (slot.id == 0) slot = {load_tail(w.data(), w.size()), static_cast<uint32_t>(w.size()), static_cast<int32_t>(i + 1)};
    }
  }
  int64_t find(const char* p, size_t n) const {
    const uint64_t h = hash_bytes(p, n);
    if (n <= 8) {
      const Hot& slot = hot_[hot_index(h)];
      if (slot.len == n && slot.bytes == load_tail(p, n)) return slot.id;
    }
    return table_.find(p, n, 0);
  }
  const WordTable& table() const { return table_; }
  size_t bytes() const { return table_.bytes() + hot_.size() * sizeof(Hot); }

 private:
  struct Hot {
    uint64_t bytes;  // the word, zero-padded (load_tail)
    uint32_t len;
    int32_t id;      // 0: empty
  };
  static constexpr size_t kHotSlots = 8192;
  static size_t hot_index(uint64_t h) { return (h >> 40) & (kHotSlots - 1); }  // bits the table does not use first
  WordTable table_;
  std::vector<Hot> hot_;
};

// ---- blocks ------------------------------------------------------------------------------------
// Reads a ByteSource in blocks that begin at a token boundary and end just after a separator (or
// at the end of input), so that each block can be tokenized on its own and in parallel slices.
// A token longer than a whole block is shortened to its first 999 \r-free bytes while carried
// (Stanford keeps no more).
class BlockReader {
 public:
  BlockReader(ByteSource& source, size_t block_bytes);
  // The next block, or false at the end. The view stays valid until the next call.
  bool next(const char*& data, size_t& size);
  int64_t consumed() const { return consumed_; }  // source bytes handed out so far

 private:
  ByteSource& source_;
  std::vector<char> buf_;
  size_t block_;
  size_t carry_ = 0;          // bytes at the start of buf_ kept from the previous read
  size_t pending_offset_ = 0;  // the incomplete last token of the block handed out, moved to the
  size_t pending_size_ = 0;    //   front of buf_ on the next call
  bool skipping_ = false;     // inside an over-long token whose kept prefix is carried
  bool eof_ = false;
  int64_t consumed_ = 0;
};

// Blocks smaller than this are tokenized by one thread (still slice by slice, so results do not
// change): waking a thread team costs more than the work, and much more when the cores are shared.
constexpr size_t kParallelMinBytes = 256 << 10;

// Splits [0, size) into `parts` slices that each begin at a token boundary: boundaries[t] .. [t+1].
std::vector<size_t> split_at_separators(const char* data, size_t size, int parts);

// Block size for `budget` bytes of memory (a few MiB normally; smaller under tight budgets).
size_t default_block_bytes(int64_t budget_bytes);

// Number of threads to use for `requested` (0 = OpenMP's default).
int resolve_threads(int requested);

}  // namespace detail
}  // namespace glove
}  // namespace seqkernels
