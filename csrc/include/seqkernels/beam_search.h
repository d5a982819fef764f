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
#pragma once

#include <cstddef>
#include <cstdint>

namespace seqkernels {

template <typename T>
struct BeamStepArgs {
  int items = 0, beams = 0, vocab = 0;  // N, B, V
  const T* scores = nullptr;            // (N·B, V)
  const T* beam_scores = nullptr;       // (N, B)
  int eos_id = 0;                       // in [0, V)
  bool log_probs = false;               // scores are already log-probabilities
  bool forbid_eos = false;
  T* cand_score = nullptr;              // out (N, 2B)
  int32_t* cand_beam = nullptr;         // out (N, 2B)
  int32_t* cand_token = nullptr;        // out (N, 2B)
  T* cand_logp = nullptr;               // out (N, 2B)
  uint8_t* cand_finished = nullptr;     // out (N, 2B)
  int32_t* alive = nullptr;             // out (N, B)
  int num_threads = 0;                  // 0 = OpenMP's maximum
};

// Dispatches to the copy compiled for the CPU's capability (cpu_capability.h). Threads over items.
// Returns -1, or the first item whose scores hold a NaN or +inf (then the outputs are unspecified).
template <typename T> int beam_step(const BeamStepArgs<T>& a);

// The CUDA kernel (cuda/search/beam_step.cu): all pointers in `a` are device pointers; launches
// on `stream` (a cudaStream_t) and returns the cudaError_t of the launches (0 = success). `scratch`
// holds beam_step_scratch_bytes(...) bytes of device memory; `*bad_item` (device int) must hold N
// before the call and receives the first item whose scores hold a NaN or +inf. B ≤ kMaxBeams.
namespace cuda {
constexpr int kMaxBeams = 32;
constexpr int kMaxCandidates = 2 * kMaxBeams;
std::size_t beam_step_scratch_bytes(int items, int beams, int vocab, std::size_t element_bytes);
// Launch geometry (all 1-D grids, so N is not bound by gridDim.y's 65,535): one row_norm block per
// row (N·B), `chunks` chunk_top_k blocks per item (N·chunks in all, block → (item, chunk) in
// chunk_of_block), one merge block per item. Each count must stay below 2^31 (checked by the caller).
struct BeamStepGrid { long long rows, chunks, chunk_blocks, items; };
BeamStepGrid beam_step_grid(int items, int beams, int vocab);
// The item and the flat candidate range [lo, hi) ⊂ [0, B·V) of chunk_top_k's block `block`; 64-bit
// so that lo + chunk size cannot overflow when B·V nears 2^31.
struct BeamChunk { long long item, lo, hi; };
BeamChunk beam_chunk_of_block(long long block, long long chunks, int beams, int vocab);
template <typename T> int beam_step(const BeamStepArgs<T>& a, void* scratch, int* bad_item, void* stream);
}  // namespace cuda

#define SK_DECLARE_BEAM_KERNELS(ns) \
  namespace ns {                    \
  template <typename T> int beam_step(const BeamStepArgs<T>& a); \
  }
SK_DECLARE_BEAM_KERNELS(cpu_default)
SK_DECLARE_BEAM_KERNELS(cpu_avx2)
SK_DECLARE_BEAM_KERNELS(cpu_avx512)
#undef SK_DECLARE_BEAM_KERNELS

}  // namespace seqkernels
