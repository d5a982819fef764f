// Vocabulary counting (Stanford vocab_count): one hash table per thread, merged at the end.
#include <omp.h>

#include <algorithm>
#include <exception>
#include <string_view>

#include "text.h"

namespace seqkernels {
namespace glove {

bool stanford_word_less(const std::string& a, const std::string& b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return static_cast<signed char>(a[i]) < static_cast<signed char>(b[i]);
  // One is a prefix of the other: Stanford compares the terminating 0 with the next (signed) char.
  if (a.size() < b.size()) {
    const int next = static_cast<signed char>(b[n]);
    return next != 0 ? 0 < next : true;  // an embedded NUL ties under scmp: shorter first
  }
  if (a.size() > b.size()) {
    const int next = static_cast<signed char>(a[n]);
    return next < 0;
  }
  return false;
}

uint32_t stanford_bucket(const std::string& word) {
  uint32_t h = 1159241;
  for (const char ch : word) {
    const int c = static_cast<signed char>(ch);  // char is signed in Stanford's build
    h ^= (h << 5) + static_cast<uint32_t>(c) + (h >> 2);
  }
  return (h & 0x7fffffffu) % 1048576u;
}

VocabResult count_vocabulary(ByteSource& corpus, const VocabOptions& options) {
  SK_CHECK(options.min_count >= 1, "min_count: expected >= 1, got " << options.min_count);
  SK_CHECK(options.max_vocab >= 0, "max_vocab: expected >= 0 (0 = no limit), got " << options.max_vocab);
  const int T = detail::resolve_threads(options.num_threads);
  const size_t block = options.block_bytes ? options.block_bytes : (8u << 20);

  std::vector<detail::WordTable> tables(T);
  std::vector<std::string> scratch(T);
  std::vector<int64_t> tokens(T, 0);
  std::vector<int64_t> unk_at(T, -1);  // byte offset of a <unk> token seen by slice t
  detail::BlockReader reader(corpus, block);
  const char* data;
  size_t size;
  int64_t block_start = 0;
  while (reader.next(data, size)) {
    const std::vector<size_t> bounds = detail::split_at_separators(data, size, T);
#pragma omp parallel for schedule(static, 1) num_threads(T) if (size >= detail::kParallelMinBytes)
    for (int t = 0; t < T; ++t) {
      detail::WordTable& table = tables[t];
      int64_t n = 0;
      const char* begin = data + bounds[t];
      detail::tokenize(
          begin, data + bounds[t + 1], scratch[t],
          [&](const char* p, size_t len) {
            if (len == 5 && std::memcmp(p, "<unk>", 5) == 0 && unk_at[t] < 0)
              unk_at[t] = block_start + (p - data);  // p may point into scratch: offset is approximate
            ++table.upsert(p, len);
            ++n;
          },
          [] {});
      tokens[t] += n;
    }
    for (int t = 0; t < T; ++t)
      SK_CHECK(unk_at[t] < 0, "corpus: contains the reserved token <unk> (near byte "
                                  << unk_at[t] << "); Stanford GloVe reserves it for unknown words: "
                                  << "replace it first, e.g. sed -e 's/<unk>/<raw_unk>/g'");
    block_start = reader.consumed();
    if (options.progress) options.progress("vocab", reader.consumed(), corpus.size());
  }

  // Merge the per-thread tables into the first.
  for (int t = 1; t < T; ++t) {
    tables[t].for_each([&](std::string_view w, int64_t c) { tables[0].upsert(w.data(), w.size()) += c; });
    tables[t] = detail::WordTable();  // free it now
  }

  struct Entry {
    std::string word;
    int64_t count;
    uint32_t bucket;
  };
  std::vector<Entry> entries;
  entries.reserve(tables[0].size());
  tables[0].for_each([&](std::string_view w, int64_t c) {
    std::string s(w);
    const uint32_t b = stanford_bucket(s);
    entries.push_back({std::move(s), c, b});
  });
  VocabResult result;
  result.distinct = static_cast<int64_t>(entries.size());
  for (int64_t n : tokens) result.tokens += n;

  auto by_count_then_word = [](const Entry& a, const Entry& b) {
    if (a.count != b.count) return a.count > b.count;
    return stanford_word_less(a.word, b.word);
  };
  if (options.max_vocab > 0 && options.max_vocab < result.distinct) {
    // Stanford sorts by count alone with glibc's stable merge sort over its hash-table order, so
    // ties at the cut fall by bucket (and, within one bucket, by access order: here, word order).
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      if (a.count != b.count) return a.count > b.count;
      if (a.bucket != b.bucket) return a.bucket < b.bucket;
      return stanford_word_less(a.word, b.word);
    });
    entries.resize(static_cast<size_t>(options.max_vocab));
  }
  std::sort(entries.begin(), entries.end(), by_count_then_word);
  for (Entry& e : entries) {
    if (e.count < options.min_count) break;
    result.words.push_back(std::move(e.word));
    result.counts.push_back(e.count);
  }
  return result;
}

}  // namespace glove
}  // namespace seqkernels
