// Fused beam-search step on the CPU (contract in seqkernels/beam_search.h). One OpenMP thread per
// item: a log-sum-exp pass over each of its B rows (vectorised exp from cell_math.h), then one scan
// over the B·V candidates in flat-index order that keeps the best 2B in a small sorted array.
// Scanning in ascending flat index and admitting only strictly better scores makes the lower flat
// index win every tie, as the contract requires. A block of the row is skipped when even its
// largest logit cannot beat the current 2B-th candidate, so most of the row is only read once more.
// The decoding controls touch a few tokens per row: they become sorted overrides, the passes run
// vectorised over the gaps between them, and only a block holding one is scanned token by token.
//
// Compiled once per CPU capability (cpu_capability.h), like recurrent.cpp.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "seqkernels/beam_search.h"
#include "seqkernels/cell_math.h"
#include "seqkernels/cpu_capability.h"

namespace seqkernels {
namespace SK_CPU_CAPABILITY {
namespace {

using idx = std::ptrdiff_t;
constexpr int kBlock = 64;  // logits per skip test

// The row's log-softmax as the reference computes it, logp_v = (x_v − m) − log Σ exp(x_v − m) with
// m the row maximum: returns {m, log Σ}. A row of −inf only gives m = −inf (every logp is −inf).
template <typename T>
struct RowNorm { T max, log_sum; };

template <typename T>
RowNorm<T> row_norm(const T* x, int n) {
  T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
  for (int v = 0; v < n; ++v) m = x[v] > m ? x[v] : m;
  if (!(m > -std::numeric_limits<T>::infinity())) return {m, T(0)};
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int v = 0; v < n; ++v) s += exp_(x[v] - m);
  return {m, std::log(s)};
}

// True if the row holds a NaN or +inf (neither is a score; the max above would skip a NaN).
template <typename T>
bool has_nan_or_posinf(const T* x, int n) {
  int count = 0;
  const T inf = std::numeric_limits<T>::infinity();
#pragma omp simd reduction(+ : count)
  for (int v = 0; v < n; ++v) count += !(x[v] < inf);
  return count != 0;
}

template <typename T>
T block_max(const T* x, int n) {
  T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
  for (int v = 0; v < n; ++v) m = x[v] > m ? x[v] : m;
  return m;
}

// The best K candidates seen so far, sorted by score descending (earlier = lower flat index on ties).
template <typename T>
struct TopK {
  int K = 0, size = 0;
  std::vector<T> score;
  std::vector<idx> flat;
  std::vector<T> logp;
  explicit TopK(int k) : K(k), score(k), flat(k), logp(k) {}
  bool full() const { return size == K; }
  T worst() const { return score[size - 1]; }
  void offer(T s, idx f, T lp) {
    if (full() && !(s > worst())) return;  // ties keep the earlier (lower) flat index
    int pos = full() ? K - 1 : size++;
    while (pos > 0 && s > score[pos - 1]) {  // strictly better moves up; equal stays below
      score[pos] = score[pos - 1]; flat[pos] = flat[pos - 1]; logp[pos] = logp[pos - 1];
      --pos;
    }
    score[pos] = s; flat[pos] = f; logp[pos] = lp;
  }
};

// One token a control touches: its score before normalising (penalised or as given) and whether it
// is masked to −inf after normalising.
template <typename T>
struct Override {
  int token;
  T value;
  bool masked;
};

enum : uint8_t { kPenalised = 1, kMasked = 2 };

// The per-thread working memory of step_item.
template <typename T>
struct Scratch {
  TopK<T> top;
  std::vector<std::pair<int, uint8_t>> marks;  // (token, kPenalised | kMasked), unsorted, repeated
  std::vector<Override<T>> overrides;         // sorted by token, one per token
  explicit Scratch(int k) : top(k) {}
};

// The tokens the controls touch in row `r` (scores x), sorted and merged into s.overrides.
template <typename T>
void collect_overrides(const BeamStepArgs<T>& a, idx r, const T* x, Scratch<T>& s) {
  const int L = a.history_len, n = a.no_repeat_ngram;
  const int32_t* h = a.history ? a.history + r * L : nullptr;
  s.marks.clear();
  if (h && a.repetition_penalty != 1.0)
    for (int j = 0; j < L; ++j) s.marks.push_back({h[j], kPenalised});
  if (a.forbid_eos) s.marks.push_back({a.eos_id, kMasked});
  for (int w = 0; a.banned && w < a.banned_width; ++w)
    if (a.banned[r * a.banned_width + w] >= 0) s.marks.push_back({a.banned[r * a.banned_width + w], kMasked});
  if (h && n == 1) {
    for (int j = 0; j < L; ++j) s.marks.push_back({h[j], kMasked});
  } else if (h && n >= 2 && L >= n) {
    // The n-grams h[j−n+2 .. j+1] whose first n−1 tokens equal the row's last n−1 ban h[j+1].
    const int32_t* tail = h + L - n + 1;
    const uint64_t* hh = a.history_hash ? a.history_hash + r * L : nullptr;
    for (int j = n - 2; j <= L - 2; ++j) {
      if (hh && hh[j] != hh[L - 1]) continue;  // a different hash is a different (n−1)-gram
      if (std::equal(tail, tail + n - 1, h + j - n + 2)) s.marks.push_back({h[j + 1], kMasked});
    }
  }
  std::sort(s.marks.begin(), s.marks.end());
  s.overrides.clear();
  const T p = static_cast<T>(a.repetition_penalty);
  for (size_t i = 0; i < s.marks.size();) {
    const int v = s.marks[i].first;
    uint8_t kind = 0;
    for (; i < s.marks.size() && s.marks[i].first == v; ++i) kind |= s.marks[i].second;
    const T xv = x[v];
    s.overrides.push_back({v, (kind & kPenalised) ? (xv < 0 ? xv * p : xv / p) : xv, (kind & kMasked) != 0});
  }
}

// row_norm over a row whose overridden tokens take their override values (gaps vectorised).
template <typename T>
RowNorm<T> row_norm(const T* x, int V, const std::vector<Override<T>>& ov) {
  if (ov.empty()) return row_norm(x, V);
  const T ninf = -std::numeric_limits<T>::infinity();
  T m = ninf;
  int v = 0;
  for (const Override<T>& o : ov) {
    m = std::max(m, block_max(x + v, o.token - v));
    m = o.value > m ? o.value : m;
    v = o.token + 1;
  }
  m = std::max(m, block_max(x + v, V - v));
  if (!(m > ninf)) return {m, T(0)};
  T sum = 0;
  v = 0;
  auto gap_sum = [&](int v0, int v1) {
    T g = 0;
#pragma omp simd reduction(+ : g)
    for (int u = v0; u < v1; ++u) g += exp_(x[u] - m);
    return g;
  };
  for (const Override<T>& o : ov) {
    sum += gap_sum(v, o.token) + exp_(o.value - m);
    v = o.token + 1;
  }
  sum += gap_sum(v, V);
  return {m, std::log(sum)};
}

// Returns false (outputs unspecified) if a row of the item holds a NaN or +inf.
template <typename T>
bool step_item(const BeamStepArgs<T>& a, int n, Scratch<T>& s) {
  const int B = a.beams, V = a.vocab, K = 2 * B;
  const T ninf = -std::numeric_limits<T>::infinity();
  TopK<T>& top = s.top;
  top.size = 0;
  for (int b = 0; b < B; ++b) {
    const idx r = static_cast<idx>(n) * B + b;
    const T* x = a.scores + r * V;
    const T bs = a.beam_scores[r];
    if (has_nan_or_posinf(x, V)) return false;
    if (top.full() && !(bs > ninf)) continue;  // a dead beam cannot beat anything
    collect_overrides(a, r, x, s);
    const std::vector<Override<T>>& ov = s.overrides;
    RowNorm<T> norm{T(0), T(0)};  // log_probs: used as given
    if (!a.log_probs) {
      norm = row_norm(x, V, ov);
      if (!(norm.max > ninf)) {  // every logit −inf: every candidate of this beam scores −inf
        for (int v = 0; v < V && !top.full(); ++v) top.offer(ninf, static_cast<idx>(b) * V + v, ninf);
        continue;
      }
    }
    auto logp = [&](T xv) { return (xv - norm.max) - norm.log_sum; };
    const int f = a.forced ? a.forced[r] : -1;
    if (f >= 0) {  // one finite candidate; the others are −inf, offered in flat order while room is left
      T value = x[f];
      for (const Override<T>& o : ov)
        if (o.token == f) value = o.value;
      const T lp = logp(value);
      const idx base = static_cast<idx>(b) * V;
      for (int v = 0; v < f && !top.full(); ++v) top.offer(ninf, base + v, ninf);  // once full, −inf loses
      top.offer(bs + lp, base + f, lp);
      for (int v = f + 1; v < V && !top.full(); ++v) top.offer(ninf, base + v, ninf);
      continue;
    }
    size_t next = 0;  // the first override not yet passed
    for (int v0 = 0; v0 < V; v0 += kBlock) {
      const int v1 = std::min(V, v0 + kBlock);
      if (next < ov.size() && ov[next].token < v1) {  // a block with overrides: token by token
        if (top.full()) {  // unless neither its logits nor its unmasked overrides can beat the 2B-th
          T bound = block_max(x + v0, v1 - v0);
          size_t o = next;
          for (; o < ov.size() && ov[o].token < v1; ++o)
            if (!ov[o].masked) bound = std::max(bound, ov[o].value);
          if (!(bs + logp(bound) > top.worst())) {
            next = o;
            continue;
          }
        }
        for (int v = v0; v < v1; ++v) {
          T lp;
          if (next < ov.size() && ov[next].token == v) {
            lp = ov[next].masked ? ninf : logp(ov[next].value);
            ++next;
          } else {
            lp = logp(x[v]);
          }
          top.offer(bs + lp, static_cast<idx>(b) * V + v, lp);
        }
        continue;
      }
      // fl(bs + logp(x)) is monotone in x, so the block's largest logit bounds every score in it.
      if (top.full() && !(bs + logp(block_max(x + v0, v1 - v0)) > top.worst())) continue;
      for (int v = v0; v < v1; ++v) {
        const T lp = logp(x[v]);
        top.offer(bs + lp, static_cast<idx>(b) * V + v, lp);
      }
    }
  }
  // Emit in rank order; pad (only when B·V < K) with −inf candidates that no beam produced.
  const idx o = static_cast<idx>(n) * K;
  int alive = 0;
  for (int k = 0; k < K; ++k) {
    const bool real = k < top.size;
    const int beam = real ? static_cast<int>(top.flat[k] / V) : 0;
    const int token = real ? static_cast<int>(top.flat[k] % V) : a.eos_id;
    a.cand_score[o + k] = real ? top.score[k] : ninf;
    a.cand_logp[o + k] = real ? top.logp[k] : ninf;
    a.cand_beam[o + k] = real ? beam : -1;
    a.cand_token[o + k] = real ? token : -1;
    const bool eos = real && token == a.eos_id;
    a.cand_finished[o + k] = eos && k < B;
    if (real && !eos && alive < B) a.alive[static_cast<idx>(n) * B + alive++] = k;
  }
  for (; alive < B; ++alive) a.alive[static_cast<idx>(n) * B + alive] = -1;
  return true;
}

}  // namespace

template <typename T>
int beam_step(const BeamStepArgs<T>& a) {
  const int nt = std::max(1, std::min(a.num_threads > 0 ? a.num_threads : omp_get_max_threads(), a.items));
  int first_bad = a.items;
#pragma omp parallel num_threads(nt) reduction(min : first_bad)
  {
    Scratch<T> scratch(2 * a.beams);
#pragma omp for schedule(static)
    for (int n = 0; n < a.items; ++n)
      if (!step_item(a, n, scratch)) first_bad = std::min(first_bad, n);
  }
  return first_bad == a.items ? -1 : first_bad;
}

template int beam_step<float>(const BeamStepArgs<float>&);
template int beam_step<double>(const BeamStepArgs<double>&);

}  // namespace SK_CPU_CAPABILITY
}  // namespace seqkernels
