// seqkernels — word2vec on the CPU: skip-gram and CBOW with negative sampling (issue 15).
//
// The semantics are those of Mikolov's word2vec.c, written out for reading in
// python/seqkernels/reference/word2vec.py (the kernel is tested against that module, exactly in
// single-thread mode): frequent-word subsampling, a dynamic window, negatives drawn from a
// unigram^0.75 table, a learning rate decaying linearly with the words processed, and Hogwild
// threads. Parameters are float32 (word2vec.c's `real`).
//
// Dimension legend (beside common.h's):
//   V  vocabulary size (ids 0..V-1, most frequent first)     D  vector size
//   N  kept tokens of the encoded corpus                      S  sentences
//
// Nothing here knows about Python; bad arguments throw std::invalid_argument (→ ValueError).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "seqkernels/common.h"

namespace seqkernels {
namespace glove {
class ByteSource;
}
namespace word2vec {

// word2vec.c's generator: state = state * 25214903917 + 11 (mod 2^64).
constexpr uint64_t kLcgMultiplier = 25214903917ULL;
constexpr uint64_t kLcgIncrement = 11ULL;
// A thread refreshes the learning rate once it has read more than this many words since its last
// refresh (word2vec.c's 10000).
constexpr int64_t kRefreshWords = 10000;

// The corpus as word ids: sentence s is ids[offsets[s] .. offsets[s+1]).
struct EncodedCorpus {
  std::vector<int32_t> ids;       // (N,)
  std::vector<int64_t> offsets;   // (S+1,)
  int64_t tokens = 0;             // tokens read, in the vocabulary or not
};

// Tokenizes like seqkernels.glove (blanks and tabs separate, \r dropped, a line is a sentence),
// keeps the tokens of `words` (id = index) and drops the rest before windowing, as word2vec.c does;
// a line with more than max_sentence kept tokens is cut into sentences of max_sentence.
EncodedCorpus encode_corpus(glove::ByteSource& corpus, const std::vector<std::string>& words, int64_t max_sentence);

struct TrainArgs {
  int64_t vocab_size = 0;            // V
  int vector_size = 0;               // D
  const int32_t* ids = nullptr;      // (N,) ids in [0, V), borrowed
  const int64_t* offsets = nullptr;  // (S+1,) non-decreasing, offsets[0] = 0, offsets[S] = N
  int64_t sentences = 0;             // S
  float* syn0 = nullptr;             // (V, D) input (word) vectors, updated in place
  float* syn1neg = nullptr;          // (V, D) output (context) vectors, updated in place
  const double* keep = nullptr;      // (V,) word2vec.c's subsampling threshold `ran` per word, or
                                     //   null for no subsampling (sample = 0)
  const int32_t* table = nullptr;    // (table_size,) the noise table: ids drawn for negatives
  int64_t table_size = 0;
  int window = 5;                    // maximum distance; each position uses window - (r mod window)
  int negative = 5;                  // negatives per positive pair, >= 1
  bool cbow = false;                 // false: skip-gram; true: CBOW with the mean of the context
  double learning_rate = 0.025;      // starting learning rate (alpha)
  int64_t words_before = 0;          // words processed by earlier epochs (learning-rate schedule)
  int64_t words_total = 0;           // words of all epochs: the rate reaches its floor there
  uint64_t seed = 1;                 // piece p starts its generator at seed + p
  int num_threads = 0;               // Hogwild threads (0 = the default team size); 1 = deterministic
  int64_t private_rows = -1;         // rows of the most frequent words (ids below it) that each
                                     //   thread trains in its own copy during a piece (-1: 0 for one
                                     //   thread, default_private_rows(D) for several; see train_epoch)
};

struct EpochResult {
  int64_t words = 0;           // in-vocabulary words read (before subsampling)
  int64_t trained = 0;         // words kept by subsampling (centre words trained)
  double learning_rate = 0.0;  // the rate in force at the end of the epoch
};

// The noise table's draws without reading the table: the table is non-decreasing (word i fills one
// run of slots, possibly empty), so table[slot] is the first word whose run ends after the slot.
// The slots are cut into buckets of 2^shift, at least about twice as many as the words. A bucket
// that lies inside one word's run holds that word with kWhole set (the frequent words, which take
// most of the draws: one load per draw); any other holds the word at its first slot, where the
// search starts (a word or two further). Both arrays are a few hundred KB that stay in cache,
// where the table itself (40 MB at the default 10^7 slots) missed the caches and the TLB on every
// draw.
struct NoiseLookup {
  static constexpr uint32_t kWhole = 0x80000000u;
  std::vector<uint32_t> bucket;   // (ceil(table_size / 2^shift),) word id, | kWhole
  std::vector<int64_t> run_end;   // (V,) one past word i's last slot; run_end[V-1] = table_size
  int shift = 0;

  // Throws std::invalid_argument when the table has an id outside [0, V) or decreases.
  NoiseLookup(const int32_t* table, int64_t table_size, int64_t V);

  // What a training thread keeps by value (see Piece in csrc/word2vec/train.cpp).
  struct View {
    const uint32_t* bucket;
    const int64_t* run_end;
    int shift;
    int32_t word(int64_t slot) const {
      const uint32_t b = bucket[slot >> shift];
      if (b & kWhole) return static_cast<int32_t>(b & ~kWhole);
      int32_t w = static_cast<int32_t>(b);
      while (run_end[w] <= slot) ++w;
      return w;
    }
  };
  View view() const { return {bucket.data(), run_end.data(), shift}; }
};

// Rows per thread kept private during a piece when several threads train (TrainArgs::private_rows):
// the kPrivateRows most frequent words, or fewer so that a thread's copies (its working copy and
// the copy it started from, of both matrices: 4 x rows x D floats) stay within kPrivateBytes.
// At D = 100 the 8192 most frequent words of the bench's 3M-token corpus take ~97 % of the context
// and centre words and ~90 % of the noise draws (256 words: 50 % and 35 %).
constexpr int64_t kPrivateRows = 8192;
constexpr int64_t kPrivateBytes = int64_t{16} << 20;
inline int64_t default_private_rows(int vector_size) {
  const int64_t fit = kPrivateBytes / (4 * static_cast<int64_t>(sizeof(float)) * (vector_size > 0 ? vector_size : 1));
  return fit < kPrivateRows ? fit : kPrivateRows;
}

// Tokens per piece when several threads train: pieces are handed out in order to whichever thread
// is free, because the work per token varies along a corpus (short lines give a token fewer
// context words), so equal shares of tokens finished at very different times (measured: two
// threads barely faster than one on a corpus of documentation pages). Each piece ends by adding
// its private rows' changes to the shared rows (a pass over 4 x private rows x D floats), so
// pieces are long enough that this stays a few per cent of the piece.
constexpr int64_t kPieceTokens = 32768;

// One pass over the corpus. The corpus is cut at sentence boundaries into pieces: one when
// num_threads = 1, else pieces of about kPieceTokens tokens (at least one per thread), handed out
// round-robin from one region of the corpus per thread; each piece is trained by one thread with
// its own generator, updating the shared parameters without locks
// (Hogwild), as word2vec.c's threads do, with one difference: the input and output rows of the
// private_rows most frequent words are trained in the thread's own copy during a piece, and what
// the piece changed is added to the shared rows (under a lock) when it ends, so other threads see
// those rows' updates up to a piece late. Every thread writes those rows all the time (they are
// most of the context words and noise draws), and a row written by two cores at once is a cache
// line moving between them: measured on 2 threads (1M tokens, 12 alternating rounds), 8192 private
// rows 0.31-0.46 s per epoch against 0.40-1.04 s with 256, the gap widest when this machine's
// cores were slow to share lines. With num_threads = 1 the result is
// deterministic and equals seqkernels.reference.word2vec.train_epoch (up to float32 rounding: the
// same random numbers in the same order), with or without private rows.
EpochResult train_epoch(const TrainArgs& args);

}  // namespace word2vec
}  // namespace seqkernels
