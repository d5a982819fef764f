// word2vec training epoch: skip-gram / CBOW with negative sampling, word2vec.c's rules (the
// executable statement is python/seqkernels/reference/word2vec.py). Compiled once per CPU
// capability (CMakeLists.txt: SEQKERNELS_CPU_KERNELS) so that the D-long dot products and updates
// vectorise with the machine's widest vectors. Threads come from the project's thread team, not
// OpenMP (OpenMP's pool hangs in a child after fork; seqkernels/thread_team.h).
#include <atomic>
#include <cmath>
#include <vector>

#include "seqkernels/cpu_capability.h"
#include "seqkernels/thread_team.h"
#include "seqkernels/word2vec.h"

namespace seqkernels {
namespace word2vec {
namespace SK_CPU_CAPABILITY {
namespace {

inline uint64_t next_random(uint64_t r) { return r * kLcgMultiplier + kLcgIncrement; }

inline float dot(const float* a, const float* b, int D) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int k = 0; k < D; ++k) s += a[k] * b[k];
  return s;
}

// One output row against the hidden vector h: g = (label - sigmoid(h . u)) * lr, then the error
// for h gathers g * u (before u moves) and u += g * h. The exact logistic is used (word2vec.c reads
// a 1000-entry table and saturates beyond |f| > 6; the reference states the difference).
inline void output_update(const float* h, float* u, float* err, float label, float lr, int D) {
  const float f = dot(h, u, D);
  const float g = (label - 1.0f / (1.0f + std::exp(-f))) * lr;
#pragma omp simd
  for (int k = 0; k < D; ++k) {
    err[k] += g * u[k];
    u[k] += g * h[k];
  }
}

struct PieceResult {
  int64_t words = 0, trained = 0;
  double learning_rate = 0.0;
};

class Piece {
 public:
  Piece(const TrainArgs& a, std::atomic<int64_t>& published)
      : a_(a), D_(a.vector_size), published_(published), h_(a.vector_size), err_(a.vector_size),
        negatives_(a.negative) {}

  PieceResult run(int64_t first_sentence, int64_t end_sentence, uint64_t seed) {
    rng_ = seed;
    int64_t words = 0, refreshed_at = 0, trained = 0;
    lr_ = rate(published_.load(std::memory_order_relaxed));
    for (int64_t s = first_sentence; s < end_sentence; ++s) {
      if (words - refreshed_at > kRefreshWords) {  // word2vec.c: checked before each sentence
        const int64_t done = published_.fetch_add(words - refreshed_at, std::memory_order_relaxed) + words - refreshed_at;
        refreshed_at = words;
        lr_ = rate(done);
      }
      sentence_.clear();
      for (int64_t k = a_.offsets[s]; k < a_.offsets[s + 1]; ++k) {
        const int32_t w = a_.ids[k];
        ++words;
        if (a_.keep) {  // word2vec.c: discard when ran < (r & 0xFFFF) / 65536
          rng_ = next_random(rng_);
          if (a_.keep[w] < static_cast<double>(rng_ & 0xFFFF) / 65536.0) continue;
        }
        sentence_.push_back(w);
      }
      trained += static_cast<int64_t>(sentence_.size());
      const int n = static_cast<int>(sentence_.size());
      for (int pos = 0; pos < n; ++pos) {
        rng_ = next_random(rng_);
        const int shrink = static_cast<int>(rng_ % static_cast<uint64_t>(a_.window));
        const int lo = pos - a_.window + shrink, hi = pos + a_.window - shrink;  // inclusive
        if (a_.cbow) cbow_position(pos, lo, hi, n);
        else skipgram_position(pos, lo, hi, n);
      }
    }
    published_.fetch_add(words - refreshed_at, std::memory_order_relaxed);
    return {words, trained, lr_};
  }

 private:
  double rate(int64_t done_this_epoch) const {
    const double lr0 = a_.learning_rate;
    const double r = lr0 * (1.0 - static_cast<double>(a_.words_before + done_this_epoch) /
                                      (static_cast<double>(a_.words_total) + 1.0));
    return r < lr0 * 1e-4 ? lr0 * 1e-4 : r;
  }

  // Draws the negatives for one positive pair (word2vec.c's order: one draw each; a draw equal to
  // the positive word is skipped, marked -1) and prefetches their rows.
  void draw_negatives(int32_t word) {
    for (int d = 0; d < a_.negative; ++d) {
      rng_ = next_random(rng_);
      const int32_t t = a_.table[(rng_ >> 16) % static_cast<uint64_t>(a_.table_size)];
      negatives_[d] = t == word ? -1 : t;
      if (t != word) __builtin_prefetch(a_.syn1neg + static_cast<int64_t>(t) * D_, 1);
    }
  }

  // Positive word, then the negatives, against hidden vector h; the error for h lands in err_.
  void train_outputs(const float* h, int32_t word, float lr) {
    float* err = err_.data();
    for (int k = 0; k < D_; ++k) err[k] = 0.0f;
    output_update(h, a_.syn1neg + static_cast<int64_t>(word) * D_, err, 1.0f, lr, D_);
    for (int d = 0; d < a_.negative; ++d)
      if (negatives_[d] >= 0) output_update(h, a_.syn1neg + static_cast<int64_t>(negatives_[d]) * D_, err, 0.0f, lr, D_);
  }

  // Skip-gram as word2vec.c trains it: each context word's input vector predicts the centre word.
  void skipgram_position(int pos, int lo, int hi, int n) {
    const int32_t word = sentence_[pos];
    const float lr = static_cast<float>(lr_);
    for (int c = lo; c <= hi; ++c) {
      if (c == pos || c < 0 || c >= n) continue;
      float* h = a_.syn0 + static_cast<int64_t>(sentence_[c]) * D_;
      draw_negatives(word);
      train_outputs(h, word, lr);
      const float* err = err_.data();
#pragma omp simd
      for (int k = 0; k < D_; ++k) h[k] += err[k];
    }
  }

  // CBOW: the mean of the context's input vectors predicts the centre word; every context word's
  // input vector then moves by the whole error (word2vec.c does not divide it by the count).
  void cbow_position(int pos, int lo, int hi, int n) {
    float* h = h_.data();
    for (int k = 0; k < D_; ++k) h[k] = 0.0f;
    int count = 0;
    for (int c = lo; c <= hi; ++c) {
      if (c == pos || c < 0 || c >= n) continue;
      const float* v = a_.syn0 + static_cast<int64_t>(sentence_[c]) * D_;
#pragma omp simd
      for (int k = 0; k < D_; ++k) h[k] += v[k];
      ++count;
    }
    if (count == 0) return;
    const float inv = 1.0f / static_cast<float>(count);
#pragma omp simd
    for (int k = 0; k < D_; ++k) h[k] *= inv;
    const int32_t word = sentence_[pos];
    draw_negatives(word);
    train_outputs(h, word, static_cast<float>(lr_));
    const float* err = err_.data();
    for (int c = lo; c <= hi; ++c) {
      if (c == pos || c < 0 || c >= n) continue;
      float* v = a_.syn0 + static_cast<int64_t>(sentence_[c]) * D_;
#pragma omp simd
      for (int k = 0; k < D_; ++k) v[k] += err[k];
    }
  }

  const TrainArgs& a_;
  const int D_;
  std::atomic<int64_t>& published_;
  std::vector<float> h_, err_;
  std::vector<int32_t> negatives_, sentence_;
  uint64_t rng_ = 0;
  double lr_ = 0.0;
};

}  // namespace

EpochResult train_pieces(const TrainArgs& a, const std::vector<int64_t>& boundaries) {
  const long pieces = static_cast<long>(boundaries.size()) - 1;
  std::vector<PieceResult> results(static_cast<size_t>(pieces));
  std::atomic<int64_t> published{0};
  team_parallel_for(a.num_threads, pieces, [&](long p) {
    Piece piece(a, published);
    results[static_cast<size_t>(p)] = piece.run(boundaries[p], boundaries[p + 1], a.seed + static_cast<uint64_t>(p));
  });
  EpochResult r;
  for (const PieceResult& p : results) {
    r.words += p.words;
    r.trained += p.trained;
  }
  r.learning_rate = pieces > 0 ? results.back().learning_rate : a.learning_rate;
  return r;
}

}  // namespace SK_CPU_CAPABILITY
}  // namespace word2vec
}  // namespace seqkernels
