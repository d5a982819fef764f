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
};

struct EpochResult {
  int64_t words = 0;           // in-vocabulary words read (before subsampling)
  int64_t trained = 0;         // words kept by subsampling (centre words trained)
  double learning_rate = 0.0;  // the rate in force at the end of the epoch
};

// One pass over the corpus. The corpus is cut at sentence boundaries into one contiguous piece per
// thread (by tokens); each piece is trained by one thread with its own generator, updating the
// shared parameters without locks (Hogwild), as word2vec.c's threads do. With num_threads = 1 the
// result is deterministic and equals seqkernels.reference.word2vec.train_epoch (up to float32
// rounding: the same random numbers in the same order).
EpochResult train_epoch(const TrainArgs& args);

}  // namespace word2vec
}  // namespace seqkernels
