// word2vec training epoch: skip-gram / CBOW with negative sampling, word2vec.c's rules (the
// executable statement is python/seqkernels/reference/word2vec.py). Compiled once per CPU
// capability (CMakeLists.txt: SEQKERNELS_CPU_KERNELS) so that the D-long dot products and updates
// vectorise with the machine's widest vectors. Threads come from the project's thread team, not
// OpenMP (OpenMP's pool hangs in a child after fork; seqkernels/thread_team.h).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <mutex>
#include <vector>

#include "seqkernels/cell_math.h"
#include "seqkernels/cpu_capability.h"
#include "seqkernels/internal/cpu_kernels.h"
#include "seqkernels/thread_team.h"
#include "seqkernels/word2vec.h"

namespace seqkernels {
namespace word2vec {
namespace SK_CPU_CAPABILITY {
namespace {

inline uint64_t next_random(uint64_t r) { return r * kLcgMultiplier + kLcgIncrement; }

// 16 floats as one value: GCC lowers it to the widest vectors of the capability compiled for (one
// AVX-512 register, two AVX2, four SSE2). The helpers are inlined, so the ABI note GCC gives for
// passing such a value without AVX-512 concerns no call that exists.
#pragma GCC diagnostic ignored "-Wpsabi"
constexpr int kLanes = 16;
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));
inline Lanes load_lanes(const float* p) {
  Lanes v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline void store_lanes(float* p, Lanes v) { __builtin_memcpy(p, &v, sizeof v); }

// 16 partial sums in one vector (GCC lowered `omp simd reduction` to a stack copy stored every
// iteration, one dependent chain: measured as the hottest instruction of an epoch).
inline float dot(const float* a, const float* b, int D) {
  Lanes acc = {};
  int k = 0;
  for (; k + kLanes <= D; k += kLanes) acc += load_lanes(a + k) * load_lanes(b + k);
  // Halving shuffles, not a chain of 16 dependent scalar adds (which was 6 % of an epoch).
  typedef float Half __attribute__((vector_size(kLanes / 2 * sizeof(float))));
  typedef float Quarter __attribute__((vector_size(kLanes / 4 * sizeof(float))));
  const Half h8 = __builtin_shufflevector(acc, acc, 0, 1, 2, 3, 4, 5, 6, 7) +
                  __builtin_shufflevector(acc, acc, 8, 9, 10, 11, 12, 13, 14, 15);
  const Quarter h4 = __builtin_shufflevector(h8, h8, 0, 1, 2, 3) + __builtin_shufflevector(h8, h8, 4, 5, 6, 7);
  float s = (h4[0] + h4[2]) + (h4[1] + h4[3]);
  for (; k < D; ++k) s += a[k] * b[k];
  return s;
}

// One output row against the hidden vector h: g = (label - sigmoid(h . u)) * lr, then the error
// for h gathers g * u (before u moves) and u += g * h. The logistic is computed (within 2 ulp,
// cell_math.h) where word2vec.c reads a 1000-entry table and saturates beyond |f| > 6; the
// reference states the difference.
inline void output_update(const float* h, float* u, float* err, float label, float lr, int D) {
  const float f = dot(h, u, D);
  const float g = (label - sigmoid(f)) * lr;
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
  Piece(const TrainArgs& a, const NoiseLookup& noise, std::atomic<int64_t>& published, int private_rows,
        std::mutex& merge)
      : a_(a), noise_(noise.view()), D_(a.vector_size), K_(private_rows), published_(published), merge_(merge),
        own_in_(static_cast<size_t>(private_rows) * a.vector_size), own_out_(own_in_.size()),
        base_in_(own_in_.size()), base_out_(own_in_.size()), h_(a.vector_size), err_(a.vector_size),
        cbow_err_(a.vector_size), f_(a.negative + 1), rows_(a.negative + 1), targets_(a.negative + 1), g_(a.negative + 1) {
    for (Plan& p : plans_) p.negatives.resize(2 * static_cast<size_t>(a.window) * a.negative);
  }

  PieceResult run(int64_t first_sentence, int64_t end_sentence, uint64_t seed) {
    rng_ = seed;
    take_private_rows();
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
      // Nothing but draw_position consumes random numbers inside a sentence, so position pos + 1's
      // numbers can be drawn before position pos is trained: the same numbers in the same order,
      // and the cache misses of the next position's noise-table entries and rows overlap this
      // position's arithmetic.
      if (n > 0) draw_position(0, n, plans_[0]);
      for (int pos = 0; pos < n; ++pos) {
        if (pos + 1 < n) draw_position(pos + 1, n, plans_[(pos + 1) & 1]);
        const Plan& plan = plans_[pos & 1];
        if (a_.cbow) cbow_position(pos, plan);
        else skipgram_position(pos, plan);
      }
    }
    published_.fetch_add(words - refreshed_at, std::memory_order_relaxed);
    return_private_rows();
    return {words, trained, lr_};
  }

 private:
  double rate(int64_t done_this_epoch) const {
    const double lr0 = a_.learning_rate;
    const double r = lr0 * (1.0 - static_cast<double>(a_.words_before + done_this_epoch) /
                                      (static_cast<double>(a_.words_total) + 1.0));
    return r < lr0 * 1e-4 ? lr0 * 1e-4 : r;
  }

  // The rows of the K_ most frequent words (ids < K_) live in this thread's own copies while a
  // piece trains; what the piece changed is added to the shared rows when it ends.
  float* in_row(int32_t w) {
    return w < K_ ? own_in_.data() + static_cast<int64_t>(w) * D_ : a_.syn0 + static_cast<int64_t>(w) * D_;
  }
  float* out_row(int32_t w) {
    return w < K_ ? own_out_.data() + static_cast<int64_t>(w) * D_ : a_.syn1neg + static_cast<int64_t>(w) * D_;
  }
  // A trainer that runs several pieces in a row keeps its copies between them: returning a piece's
  // changes also refreshes the copies from the shared rows (one pass instead of a return and a take).
  void take_private_rows() {
    if (K_ == 0 || holding_) return;
    const size_t n = own_in_.size();
    std::lock_guard<std::mutex> lock(merge_);
    std::copy(a_.syn0, a_.syn0 + n, own_in_.begin());
    std::copy(a_.syn1neg, a_.syn1neg + n, own_out_.begin());
    base_in_ = own_in_;
    base_out_ = own_out_;
    holding_ = true;
  }
  static void return_rows(float* shared, float* own, float* base, size_t n) {
    for (size_t k = 0; k < n; ++k) {
      const float v = shared[k] + (own[k] - base[k]);
      shared[k] = v, own[k] = v, base[k] = v;
    }
  }
  void return_private_rows() {
    if (K_ == 0) return;
    const size_t n = own_in_.size();
    std::lock_guard<std::mutex> lock(merge_);
    return_rows(a_.syn0, own_in_.data(), base_in_.data(), n);
    return_rows(a_.syn1neg, own_out_.data(), base_out_.data(), n);
  }

  // Every cache line of a row, into L2: the rows live in L3 or memory, and a prefetch of the first
  // line alone left the other lines of a D = 100 row to miss in the dot product (10 % of an epoch
  // at 18k words). L2, not L1: a position's rows are ~18 KB, half of L1 (measured, two threads:
  // 1.8 s per epoch against 2.0 s with prefetches into L1, and 4.2-4.7 s against 5.8-6.2 s in this
  // machine's slow periods, when two-thread epochs took twice as long as at other times).
  void prefetch_row(const float* row) const {
    const char* p = reinterpret_cast<const char*>(row);
    const char* end = p + static_cast<size_t>(D_) * sizeof(float);
    for (p = reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) & ~uintptr_t{63}); p < end; p += 64)
      __builtin_prefetch(p, 0, 2);
  }

  // Draws the negatives for one positive pair into out[0..negative) (word2vec.c's order: one draw
  // each; a draw equal to the positive word is skipped, marked -1). The words are looked up back
  // to back and their rows prefetched, so that the cache misses of a whole window overlap.
  void draw_negatives(int32_t word, int32_t* out) {
    for (int d = 0; d < a_.negative; ++d) {
      rng_ = next_random(rng_);
      // Slot floor((r >> 16) * size / 2^48): uniform like word2vec.c's (r >> 16) mod size, without
      // a 64-bit division per draw (measured: several per cent of an epoch).
      const unsigned __int128 scaled = static_cast<unsigned __int128>(rng_ >> 16) * static_cast<uint64_t>(a_.table_size);
      out[d] = noise_.word(static_cast<int64_t>(scaled >> 48));
    }
    for (int d = 0; d < a_.negative; ++d) {
      if (out[d] == word) out[d] = -1;
      else prefetch_row(out_row(out[d]));
    }
  }

  // Positive word, then the negatives, against hidden vector h; the error for h (the sum of
  // g_j u_j, each u_j before it moves) is added to `error` (skip-gram passes h itself: each
  // element of h is read by the updates of the same element only, so it can move in the same
  // pass; CBOW passes a zeroed buffer). When the rows are distinct, no update changes another
  // row's dot product (h is fixed), so all dot products are taken first, independent of each
  // other, then one pass over the D elements updates every row and the error: the same sums in the
  // same order as one row after the other, with the reductions overlapping and h and the error
  // read once instead of once per row. A row met twice takes the sequential path (its second dot
  // product must see its first update).
  void train_outputs(const float* h, int32_t word, const int32_t* negatives, float lr, float* error) {
    int m = 0;
    targets_[m++] = word;
    for (int d = 0; d < a_.negative; ++d)
      if (negatives[d] >= 0) targets_[m++] = negatives[d];
    bool repeated = false;
    for (int i = 1; i < m && !repeated; ++i)
      for (int j = 0; j < i; ++j) repeated |= targets_[i] == targets_[j];
    if (repeated) {
      float* err = err_.data();
      for (int k = 0; k < D_; ++k) err[k] = 0.0f;
      for (int j = 0; j < m; ++j)
        output_update(h, out_row(targets_[j]), err, j == 0 ? 1.0f : 0.0f, lr, D_);
#pragma omp simd
      for (int k = 0; k < D_; ++k) error[k] += err[k];
      return;
    }
    float* const* rows = rows_.data();
    for (int j = 0; j < m; ++j) {
      rows_[j] = out_row(targets_[j]);
      f_[j] = dot(h, rows_[j], D_);
    }
    // The logistic through the project's exp polynomial, inlined (cell_math.h; libm's scalar expf
    // was 7 % of an epoch), one vector for all the rows of a pair.
    float* g = g_.data();
#pragma omp simd
    for (int j = 0; j < m; ++j) g[j] = ((j == 0 ? 1.0f : 0.0f) - 1.0f / (1.0f + exp_core(-f_[j]))) * lr;
    // Written with vector types: `omp simd` left this loop (an inner loop over the rows) scalar.
    int k = 0;
    for (; k + kLanes <= D_; k += kLanes) {
      const Lanes hk = load_lanes(h + k);
      Lanes e = {};
      for (int j = 0; j < m; ++j) {
        const Lanes u = load_lanes(rows[j] + k);
        e += g[j] * u;
        store_lanes(rows[j] + k, u + g[j] * hk);
      }
      store_lanes(error + k, load_lanes(error + k) + e);
    }
    for (; k < D_; ++k) {
      const float hk = h[k];
      float e = 0.0f;
      for (int j = 0; j < m; ++j) {
        const float u = rows[j][k];
        e += g[j] * u;
        rows[j][k] = u + g[j] * hk;
      }
      error[k] += e;
    }
  }

  // A position's random numbers: its window (lo..hi, inclusive) and the negatives of each of its
  // positive pairs (skip-gram: one set per context word in order; CBOW: one set when it has a context).
  struct Plan {
    int lo = 0, hi = -1;
    std::vector<int32_t> negatives;
  };

  void draw_position(int pos, int n, Plan& plan) {
    rng_ = next_random(rng_);
    const int shrink = static_cast<int>(rng_ % static_cast<uint64_t>(a_.window));
    plan.lo = std::max(pos - a_.window + shrink, 0);
    plan.hi = std::min(pos + a_.window - shrink, n - 1);
    const int32_t word = sentence_[pos];
    prefetch_row(out_row(word));
    const int contexts = plan.hi - plan.lo;  // the range less the centre
    if (a_.cbow) {
      if (contexts > 0) draw_negatives(word, plan.negatives.data());
    } else {
      for (int i = 0; i < contexts; ++i) draw_negatives(word, plan.negatives.data() + static_cast<size_t>(i) * a_.negative);
    }
    for (int c = plan.lo; c <= plan.hi; ++c)
      if (c != pos) prefetch_row(in_row(sentence_[c]));
  }

  // Skip-gram as word2vec.c trains it: each context word's input vector predicts the centre word.
  void skipgram_position(int pos, const Plan& plan) {
    const int32_t word = sentence_[pos];
    const float lr = static_cast<float>(lr_);
    const int32_t* negatives = plan.negatives.data();
    for (int c = plan.lo; c <= plan.hi; ++c) {
      if (c == pos) continue;
      float* h = in_row(sentence_[c]);
      train_outputs(h, word, negatives, lr, h);
      negatives += a_.negative;
    }
  }

  // CBOW: the mean of the context's input vectors predicts the centre word; every context word's
  // input vector then moves by the whole error (word2vec.c does not divide it by the count).
  void cbow_position(int pos, const Plan& plan) {
    const int count = plan.hi - plan.lo;
    if (count == 0) return;
    float* h = h_.data();
    for (int k = 0; k < D_; ++k) h[k] = 0.0f;
    for (int c = plan.lo; c <= plan.hi; ++c) {
      if (c == pos) continue;
      const float* v = in_row(sentence_[c]);
#pragma omp simd
      for (int k = 0; k < D_; ++k) h[k] += v[k];
    }
    const float inv = 1.0f / static_cast<float>(count);
#pragma omp simd
    for (int k = 0; k < D_; ++k) h[k] *= inv;
    const int32_t word = sentence_[pos];
    float* err = cbow_err_.data();
    for (int k = 0; k < D_; ++k) err[k] = 0.0f;
    train_outputs(h, word, plan.negatives.data(), static_cast<float>(lr_), err);
    for (int c = plan.lo; c <= plan.hi; ++c) {
      if (c == pos) continue;
      float* v = in_row(sentence_[c]);
#pragma omp simd
      for (int k = 0; k < D_; ++k) v[k] += err[k];
    }
  }

  // Copies, not references to the calling thread's stack: the inner loops read them constantly,
  // and nothing the other threads write should ever share their cache lines.
  const TrainArgs a_;
  const NoiseLookup::View noise_;
  const int D_, K_;
  std::atomic<int64_t>& published_;
  std::mutex& merge_;
  std::vector<float> own_in_, own_out_, base_in_, base_out_;
  std::vector<float> h_, err_, cbow_err_, f_;
  std::vector<float*> rows_;
  std::vector<int32_t> sentence_, targets_;
  Plan plans_[2];
  std::vector<float> g_;
  uint64_t rng_ = 0;
  double lr_ = 0.0;
  bool holding_ = false;  // own_* hold the private rows (as of the last return)
};

}  // namespace

EpochResult train_pieces(const TrainArgs& a, const std::vector<int64_t>& boundaries, const NoiseLookup& noise) {
  const long pieces = static_cast<long>(boundaries.size()) - 1;
  std::vector<PieceResult> results(static_cast<size_t>(pieces));
  std::atomic<int64_t> published{0};
  std::mutex merge;
  const int64_t wanted = a.private_rows >= 0 ? a.private_rows : (a.num_threads > 1 ? default_private_rows(a.vector_size) : 0);
  const int private_rows = static_cast<int>(std::min<int64_t>(a.vocab_size, wanted));
  // Hand-out order: the corpus as one region per thread, the pieces dealt round-robin from the
  // regions' fronts (piece t*rows + r in round r), so that at any moment the threads train
  // far-apart text, as word2vec.c's threads do: adjacent pieces share their rarer words, and every
  // row both threads write at once is a cache line moving between the cores.
  const long T = std::max(1, a.num_threads), rows = (pieces + T - 1) / T;
  std::vector<long> order;
  order.reserve(static_cast<size_t>(pieces));
  for (long r = 0; r < rows; ++r)
    for (long t = 0; t < T; ++t)
      if (t * rows + r < pieces) order.push_back(t * rows + r);
  // Trainers are reused from piece to piece (at most one per running member): each holds its
  // private rows and their base copies (4 x private_rows x D floats), too much to allocate and
  // fault in again for every piece.
  std::mutex idle_lock;
  std::vector<std::unique_ptr<Piece>> idle;
  team_parallel_for(a.num_threads, pieces, [&](long k) {
    const long p = order[static_cast<size_t>(k)];
    std::unique_ptr<Piece> piece;
    {
      std::lock_guard<std::mutex> lock(idle_lock);
      if (!idle.empty()) piece = std::move(idle.back()), idle.pop_back();
    }
    if (!piece) piece = std::make_unique<Piece>(a, noise, published, private_rows, merge);
    results[static_cast<size_t>(p)] = piece->run(boundaries[p], boundaries[p + 1], a.seed + static_cast<uint64_t>(p));
    std::lock_guard<std::mutex> lock(idle_lock);
    idle.push_back(std::move(piece));
  });
  EpochResult r;
  r.learning_rate = a.learning_rate;
  for (const PieceResult& p : results) {
    r.words += p.words;
    r.trained += p.trained;
    r.learning_rate = std::min(r.learning_rate, p.learning_rate);  // the rate falls as words are read
  }
  return r;
}

}  // namespace SK_CPU_CAPABILITY
}  // namespace word2vec
}  // namespace seqkernels
