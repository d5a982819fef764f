// Fused beam-search step on the CPU (contract in seqkernels/beam_search.h). One OpenMP thread per
// item: a log-sum-exp pass over each of its B rows (vectorised exp from cell_math.h), then one scan
// over the B·V candidates in flat-index order that keeps the best 2B in a small sorted array.
// Scanning in ascending flat index and admitting only strictly better scores makes the lower flat
// index win every tie, as the contract requires. A block of the row is skipped when even its
// largest logit cannot beat the current 2B-th candidate, so most of the row is only read once more.
// The decoding controls touch a few tokens per row: they become sorted overrides; the passes read
// the runs of blocks without one straight from the row and each block holding one from a patched
// 64-element copy, so they stay vectorised and no pass is added.
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
#include "seqkernels/internal/cpu_kernels.h"

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

// The per-thread working memory of step_item.
template <typename T>
struct Scratch {
  TopK<T> top;
  std::vector<std::pair<int, uint8_t>> marks;  // collect_marks' output
  std::vector<Override<T>> overrides;         // sorted by token, one per token
  T block[kBlock];                            // a block of scores with the overrides applied
  explicit Scratch(int k) : top(k) {}
};

// The tokens the controls touch in row `r` (scores x), sorted, as overrides in s.overrides.
template <typename T>
void collect_overrides(const BeamStepArgs<T>& a, idx r, const T* x, Scratch<T>& s) {
  collect_marks(a, r, s.marks);
  s.overrides.clear();
  const T p = static_cast<T>(a.repetition_penalty);
  for (const auto& [v, kind] : s.marks) {
    const T xv = x[v];
    s.overrides.push_back({v, (kind & kPenalised) ? (xv < 0 ? xv * p : xv / p) : xv, (kind & kMasked) != 0});
  }
}

// Copies the block x[v0, v1) to buf with the overrides from ov[next] on that lie in it applied:
// their value, or −inf where masked and `apply_masks`. Returns the first override past the block.
template <typename T>
size_t patch_block(const T* x, int v0, int v1, const std::vector<Override<T>>& ov, size_t next, bool apply_masks,
                   T* buf) {
  std::copy(x + v0, x + v1, buf);
  for (; next < ov.size() && ov[next].token < v1; ++next)
    buf[ov[next].token - v0] = (apply_masks && ov[next].masked) ? -std::numeric_limits<T>::infinity() : ov[next].value;
  return next;
}

// Calls f(ptr, len) over the row as the normaliser sees it (overrides' values, masks not applied):
// runs of whole blocks without overrides straight from x, each block holding one from a patched copy.
template <typename T, typename F>
void over_runs(const T* x, int V, const std::vector<Override<T>>& ov, T* buf, F f) {
  size_t next = 0;
  for (int v = 0; v < V;) {
    const int run_end = next < ov.size() ? (ov[next].token / kBlock) * kBlock : V;
    if (v < run_end) {
      f(x + v, run_end - v);
      v = run_end;
      continue;
    }
    const int v1 = std::min(V, v + kBlock);
    next = patch_block(x, v, v1, ov, next, false, buf);
    f(static_cast<const T*>(buf), v1 - v);
    v = v1;
  }
}

// row_norm of the row with the overrides' values in place of the logits they replace.
template <typename T>
RowNorm<T> row_norm(const T* x, int V, const std::vector<Override<T>>& ov, T* buf) {
  if (ov.empty()) return row_norm(x, V);
  T m = -std::numeric_limits<T>::infinity();
  over_runs(x, V, ov, buf, [&](const T* p, int len) { m = std::max(m, block_max(p, len)); });
  if (!(m > -std::numeric_limits<T>::infinity())) return {m, T(0)};
  T sum = 0;
  over_runs(x, V, ov, buf, [&sum, m](const T* p, int len) {
    const T shift = m;  // a local: through the capture the compiler could not vectorise the loop
    T g = 0;
#pragma omp simd reduction(+ : g)
    for (int u = 0; u < len; ++u) g += exp_(p[u] - shift);
    sum += g;
  });
  return {m, std::log(sum)};
}

template <typename T>
int candidate_count(const BeamStepArgs<T>& a) {
  return a.candidates > 0 ? a.candidates : 2 * a.beams;
}

// Returns false (outputs unspecified) if a row of the item holds a NaN or +inf.
template <typename T>
bool step_item(const BeamStepArgs<T>& a, int n, Scratch<T>& s) {
  const int B = a.beams, V = a.vocab, K = candidate_count(a);
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
      norm = row_norm(x, V, ov, s.block);
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
      const T* xb = x + v0;
      if (next < ov.size() && ov[next].token < v1) {  // a block with overrides: scan a patched copy
        next = patch_block(x, v0, v1, ov, next, true, s.block);
        xb = s.block;
      }
      // fl(bs + logp(x)) is monotone in x, so the block's largest logit bounds every score in it.
      if (top.full() && !(bs + logp(block_max(xb, v1 - v0)) > top.worst())) continue;
      for (int v = v0; v < v1; ++v) {
        const T lp = logp(xb[v - v0]);  // logp(−inf) = −inf: a masked token
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
    Scratch<T> scratch(candidate_count(a));
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
