// word2vec: the corpus encoder, argument checks, the split into Hogwild pieces and CPU dispatch.
#include <algorithm>
#include <cmath>

#include "../glove/text.h"
#include "seqkernels/cpu_capability.h"
#include "seqkernels/internal/cpu_kernels.h"
#include "seqkernels/thread_team.h"
#include "seqkernels/word2vec.h"

namespace seqkernels {
namespace word2vec {

EncodedCorpus encode_corpus(glove::ByteSource& corpus, const std::vector<std::string>& words, int64_t max_sentence) {
  SK_CHECK(max_sentence >= 1, "max_sentence: expected >= 1, got " << max_sentence);
  SK_CHECK(words.size() < static_cast<size_t>(INT32_MAX), "words: too many for int32 ids");
  const glove::detail::WordLookup lookup(words);  // id + 1, 0 when absent
  EncodedCorpus out;
  out.offsets.push_back(0);
  int64_t in_sentence = 0;
  const auto end_sentence = [&]() {
    if (in_sentence > 0) out.offsets.push_back(static_cast<int64_t>(out.ids.size()));
    in_sentence = 0;
  };
  std::string scratch;
  glove::detail::BlockReader reader(corpus, 8u << 20);
  const char* data;
  size_t size;
  while (reader.next(data, size)) {
    glove::detail::tokenize(
        data, data + size, scratch,
        [&](const char* p, size_t n) {
          ++out.tokens;
          const int64_t id = lookup.find(p, n);
          if (id == 0) return;  // out of the vocabulary: dropped before windowing
          out.ids.push_back(static_cast<int32_t>(id - 1));
          if (++in_sentence == max_sentence) end_sentence();
        },
        end_sentence);
  }
  end_sentence();
  return out;
}

EpochResult train_epoch(const TrainArgs& args) {
  const int64_t V = args.vocab_size, S = args.sentences;
  SK_CHECK(V >= 1, "vocab_size: expected >= 1, got " << V);
  SK_CHECK(args.vector_size >= 1, "vector_size: expected >= 1, got " << args.vector_size);
  SK_CHECK(S >= 0 && args.offsets, "offsets: expected an array of S + 1 sentence offsets");
  SK_CHECK(args.syn0 && args.syn1neg, "syn0 and syn1neg: expected arrays of shape (V, D)");
  SK_CHECK(args.window >= 1, "window: expected >= 1, got " << args.window);
  SK_CHECK(args.private_rows >= -1, "private_rows: expected -1 (automatic) or >= 0, got " << args.private_rows);
  SK_CHECK(args.negative >= 1, "negative: expected >= 1, got " << args.negative);
  SK_CHECK(std::isfinite(args.learning_rate) && args.learning_rate > 0,
           "learning_rate: expected a positive number, got " << args.learning_rate);
  SK_CHECK(args.words_before >= 0 && args.words_total >= 0, "words_before, words_total: expected >= 0");
  SK_CHECK(args.offsets[0] == 0, "offsets: expected offsets[0] == 0, got " << args.offsets[0]);
  for (int64_t s = 0; s < S; ++s)
    SK_CHECK(args.offsets[s + 1] >= args.offsets[s], "offsets: decrease at sentence " << s);
  const int64_t N = args.offsets[S];
  SK_CHECK(N == 0 || args.ids, "ids: missing");
  for (int64_t k = 0; k < N; ++k)  // a bad id would write outside the parameters
    SK_CHECK(args.ids[k] >= 0 && args.ids[k] < V, "ids: token " << k << " has id " << args.ids[k]
                                                                  << " outside [0, " << V << ")");
  const NoiseLookup noise(args.table, args.table_size, V);
  TrainArgs a = args;
  a.num_threads = team_size(args.num_threads);
  // Pieces cut at the sentence where their share of the tokens begins: one per thread at least,
  // and (with several threads) enough that none holds more than about kPieceTokens.
  int64_t pieces = 1;
  if (a.num_threads > 1)
    pieces = std::max<int64_t>(a.num_threads, (N + kPieceTokens - 1) / kPieceTokens);
  pieces = std::max<int64_t>(1, std::min<int64_t>(pieces, std::max<int64_t>(S, 1)));
  std::vector<int64_t> boundaries(static_cast<size_t>(pieces) + 1, S);
  boundaries[0] = 0;
  for (int64_t p = 1; p < pieces; ++p) {
    const int64_t target = static_cast<int64_t>(static_cast<double>(N) * static_cast<double>(p) / static_cast<double>(pieces));
    boundaries[static_cast<size_t>(p)] = std::lower_bound(args.offsets, args.offsets + S + 1, target) - args.offsets;
  }
  SK_CPU_DISPATCH(train_pieces, a, boundaries, noise)
}

NoiseLookup::NoiseLookup(const int32_t* table, int64_t table_size, int64_t V) : run_end(static_cast<size_t>(V), 0) {
  SK_CHECK(table && table_size >= 1, "table: expected a non-empty noise table");
  // Buckets of 2^shift slots, the fewest that make them at least as many as twice the words.
  while (shift < 62 && (table_size >> (shift + 1)) >= 2 * V) ++shift;
  int32_t previous = 0;
  for (int64_t k = 0; k < table_size; ++k) {
    const int32_t w = table[k];
    SK_CHECK(w >= 0 && w < V, "table: entry " << k << " has id " << w << " outside [0, " << V << ")");
    SK_CHECK(w >= previous, "table: expected non-decreasing ids (each word's slots in one run, in id order, as "
                            "noise_table builds it), but entry " << k << " (" << w << ") follows " << previous);
    previous = w;
    run_end[static_cast<size_t>(w)] = k + 1;
  }
  // A word without slots ends where the word before it ends; the last ends at the table's end.
  for (int64_t i = 1; i < V; ++i)
    run_end[static_cast<size_t>(i)] = std::max(run_end[static_cast<size_t>(i)], run_end[static_cast<size_t>(i - 1)]);
  run_end[static_cast<size_t>(V - 1)] = table_size;
  const int64_t buckets = ((table_size - 1) >> shift) + 1;
  bucket.resize(static_cast<size_t>(buckets));
  for (int64_t b = 0; b < buckets; ++b) {
    const int64_t first = b << shift, last = std::min(table_size, (b + 1) << shift) - 1;
    const uint32_t w = static_cast<uint32_t>(table[first]);
    bucket[static_cast<size_t>(b)] = table[last] == table[first] ? (w | kWhole) : w;
  }
}

}  // namespace word2vec
}  // namespace seqkernels
