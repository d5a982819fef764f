// One step of batched beam search, fused: log-softmax of each beam's scores, add the beam's running
// score, top-2B candidates per item, <EOS> bookkeeping. The semantics are those of
// seqkernels.reference.search.beam_step (the float64 twin) and seqkernels.search (the driver).
//
// Dimensions (common.h): N items, B beams per item, V vocabulary; K = 2·B candidates per item.
//   scores       (N·B, V)  raw logits, or log-probabilities when `log_probs` (row n·B + b is beam b
//                          of item n)
//   beam_scores  (N, B)    running raw score Σ log P of each live beam; −inf for an unused beam
//                          (at step 0 every beam but 0)
// Outputs, caller-owned, per item n, sorted by candidate score descending, ties by the lower flat
// index b·V + v (so CPU and GPU pick identical tokens):
//   cand_score   (N, K)    beam_scores[n, b] + log P(v | beam b)
//   cand_beam    (N, K)    b            cand_token (N, K)  v
//   cand_logp    (N, K)    log P(v | beam b) (−inf for <EOS> when forbidden)
//   cand_finished(N, K)    1 iff the token is <EOS> and the candidate ranks within the top B
//   alive        (N, B)    positions (into the K candidates) of the first B whose token is not <EOS>,
//                          in order; −1 pads when fewer exist (only when B·V < 2B + #EOS, or −inf)
// `forbid_eos` (min_len not reached) sets log P(<EOS>) = −inf after normalising (the normaliser
// still counts <EOS>), so <EOS> can never rank above a finite candidate.
//
// Decoding controls (semantics: the docstring of seqkernels.reference.search, "Decoding controls"),
// all per row and all applied inside the one scan over the row's scores: the few tokens a control
// touches become a sorted list of overrides, and the vectorised passes run over the gaps between
// them, so a control costs O(its tokens), not another pass over B·V.
//   history (N·B, L)   the tokens each row generated so far, each in [0, V)
//   repetition_penalty on the scores as given, of every distinct history token (1 = off)
//   no_repeat_ngram    n: ban each token that would complete an n-gram of the history (0 = off);
//                      n ≥ 2 compares history_hash (N·B, L) — entry j the hash of the (n−1)-gram
//                      ending at j — with the row's last entry, confirming on the tokens
//   banned (N·B, W)    tokens set to −inf after normalising; entries < 0 are ignored
//   forced (N·B)       ≥ 0: the row's only finite candidate is this token, with its log-prob
// `candidates` = K > 2B keeps the top K instead (CPU step only): sampling inside beam search draws from them.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace seqkernels {

template <typename T>
struct BeamStepArgs {
  int items = 0, beams = 0, vocab = 0;  // N, B, V
  const T* scores = nullptr;            // (N·B, V)
  const T* beam_scores = nullptr;       // (N, B)
  int eos_id = 0;                       // in [0, V)
  bool log_probs = false;               // scores are already log-probabilities
  bool forbid_eos = false;
  const int32_t* history = nullptr;     // (N·B, L) or null
  int history_len = 0;                  // L
  const uint64_t* history_hash = nullptr;  // (N·B, L) or null (then n-grams are compared token-wise)
  double repetition_penalty = 1.0;
  int no_repeat_ngram = 0;
  const int32_t* banned = nullptr;      // (N·B, W) or null
  int banned_width = 0;                 // W
  const int32_t* forced = nullptr;      // (N·B) or null
  int candidates = 0;                   // K ≥ 2B candidates per item (0: 2B); the pool of sampling inside beam
                                        // search; the outputs of width 2B below are then of width K. CPU only.
  // CUDA only, instead of history/banned: every row's collect_marks, CSR — row r's marks are
  // mark_tokens/mark_kinds[mark_offsets[r] .. mark_offsets[r+1]) (device pointers, or null).
  const int32_t* mark_offsets = nullptr;
  const int32_t* mark_tokens = nullptr;
  const uint8_t* mark_kinds = nullptr;
  T* cand_score = nullptr;              // out (N, 2B)
  int32_t* cand_beam = nullptr;         // out (N, 2B)
  int32_t* cand_token = nullptr;        // out (N, 2B)
  T* cand_logp = nullptr;               // out (N, 2B)
  uint8_t* cand_finished = nullptr;     // out (N, 2B)
  int32_t* alive = nullptr;             // out (N, B)
  int num_threads = 0;                  // 0 = OpenMP's maximum
};

// The controls of row r as marks: (token, kPenalised | kMasked), sorted by token, one per token
// (forbid_eos, banned, n-gram bans and the penalised history; not `forced`). The CPU step turns them
// into overrides; the CUDA path builds them on the host (beam_step_marks, csrc/bindings/search.cpp).
enum : uint8_t { kPenalised = 1, kMasked = 2 };
template <typename T>
void collect_marks(const BeamStepArgs<T>& a, std::ptrdiff_t r, std::vector<std::pair<int, uint8_t>>& marks) {
  const int L = a.history_len, n = a.no_repeat_ngram;
  const int32_t* h = a.history ? a.history + r * L : nullptr;
  marks.clear();
  if (h && a.repetition_penalty != 1.0)
    for (int j = 0; j < L; ++j) marks.push_back({h[j], kPenalised});
  if (a.forbid_eos) marks.push_back({a.eos_id, kMasked});
  for (int w = 0; a.banned && w < a.banned_width; ++w)
    if (a.banned[r * a.banned_width + w] >= 0) marks.push_back({a.banned[r * a.banned_width + w], kMasked});
  if (h && n == 1) {
    for (int j = 0; j < L; ++j) marks.push_back({h[j], kMasked});
  } else if (h && n >= 2 && L >= n) {
    // The n-grams h[j−n+2 .. j+1] whose first n−1 tokens equal the row's last n−1 ban h[j+1].
    const int32_t* tail = h + L - n + 1;
    const uint64_t* hh = a.history_hash ? a.history_hash + r * L : nullptr;
    for (int j = n - 2; j <= L - 2; ++j) {
      if (hh && hh[j] != hh[L - 1]) continue;  // a different hash is a different (n−1)-gram
      if (std::equal(tail, tail + n - 1, h + j - n + 2)) marks.push_back({h[j + 1], kMasked});
    }
  }
  std::sort(marks.begin(), marks.end());
  size_t out = 0;  // merge the marks of one token
  for (size_t i = 0; i < marks.size();) {
    const int v = marks[i].first;
    uint8_t kind = 0;
    for (; i < marks.size() && marks[i].first == v; ++i) kind |= marks[i].second;
    marks[out++] = {v, kind};
  }
  marks.resize(out);
}

// Dispatches to the copy compiled for the CPU's capability (cpu_capability.h). Threads over items.
// Returns -1, or the first item whose scores hold a NaN or +inf (then the outputs are unspecified).
template <typename T> int beam_step(const BeamStepArgs<T>& a);

}  // namespace seqkernels
