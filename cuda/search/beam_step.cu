// Fused beam-search step on the GPU (contract in seqkernels/beam_search.h; same results as the CPU
// kernel csrc/search/beam_step.cpp and the float64 reference, tokens identical up to exp rounding
// on near-ties). Three launches on the caller's stream:
//   1. row_norm      one block per row (N·B): row max, log Σ exp(x − max), NaN/+inf detection.
//   2. chunk_top_k   N·chunks blocks (1-D grid, block → (item, chunk)): each block takes a chunk of
//                    an item's B·V candidates and leaves its best K = 2B, sorted, in scratch (one
//                    pass over the logits).
//   3. merge_top_k   one block per item: K-way merge of the chunks' lists, then <EOS> bookkeeping.
// Candidates are ordered by the key (score descending, flat index b·V + v ascending) everywhere,
// so the result does not depend on thread scheduling: deterministic run to run.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "seqkernels/cuda/beam_search.h"
#include "seqkernels/cell_math.h"

namespace seqkernels {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kPerThread = 16;                       // candidates per thread per chunk
constexpr int kChunk = kThreads * kPerThread;        // candidates per chunk block

// Block → (item, chunk range); shared by the kernel and the host-side tests (beam_chunk_of_block).
__host__ __device__ __forceinline__ BeamChunk chunk_of_block(long long block, long long chunks, int beams, int vocab) {
  const long long total = static_cast<long long>(beams) * vocab;
  const long long item = block / chunks, lo = (block - item * chunks) * kChunk;
  return {item, lo, lo + kChunk < total ? lo + kChunk : total};
}

template <typename T> __device__ __forceinline__ T pos_inf() { return static_cast<T>(INFINITY); }
template <typename T> __device__ __forceinline__ T neg_inf() { return -pos_inf<T>(); }

// a ranks before b: higher score, or equal score and lower flat index.
template <typename T>
__device__ __forceinline__ bool before(T sa, int fa, T sb, int fb) {
  return sa > sb || (sa == sb && fa < fb);
}

// ---- 1. row normalisers --------------------------------------------------------------------
struct MaxOp { template <typename T> __device__ T operator()(T a, T b) const { return fmax(a, b); } };
struct SumOp { template <typename T> __device__ T operator()(T a, T b) const { return a + b; } };

// Block-wide reduction (kThreads threads); every thread gets the result. `identity` fills the
// missing warp slots.
template <typename T, typename Op>
__device__ T block_reduce(T v, T identity, Op op, T* smem) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  if ((threadIdx.x & 31) == 0) smem[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    v = threadIdx.x < kThreads / 32 ? smem[threadIdx.x] : identity;
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (threadIdx.x == 0) smem[0] = v;
  }
  __syncthreads();
  v = smem[0];
  __syncthreads();
  return v;
}

template <typename T>
__global__ void row_norm_kernel(const T* __restrict__ scores, int beams, int vocab, bool log_probs,
                                T* __restrict__ row_max, T* __restrict__ row_log_sum, int* __restrict__ bad_item) {
  __shared__ T smem[kThreads / 32];
  const int row = blockIdx.x;
  const T* x = scores + static_cast<size_t>(row) * vocab;
  T m = neg_inf<T>();
  int bad = 0;
  for (int v = threadIdx.x; v < vocab; v += kThreads) {
    const T xv = x[v];
    bad |= !(xv < pos_inf<T>());  // NaN or +inf
    m = fmax(m, xv);
  }
  if (__syncthreads_or(bad) && threadIdx.x == 0) atomicMin(bad_item, row / beams);
  if (log_probs) {  // used as given
    if (threadIdx.x == 0) { row_max[row] = T(0); row_log_sum[row] = T(0); }
    return;
  }
  m = block_reduce(m, neg_inf<T>(), MaxOp(), smem);
  if (!(m > neg_inf<T>())) {  // every logit −inf: the row's log-probs are −inf (see the reference)
    if (threadIdx.x == 0) { row_max[row] = m; row_log_sum[row] = T(0); }
    return;
  }
  T s = 0;
  for (int v = threadIdx.x; v < vocab; v += kThreads) s += exp_(x[v] - m);
  s = block_reduce(s, T(0), SumOp(), smem);
  if (threadIdx.x == 0) { row_max[row] = m; row_log_sum[row] = log(s); }
}

// ---- the decoding controls of one candidate ----------------------------------------------------
// The log-prob the step ranks for token v of row `row` with raw score x (the CPU kernel's semantics,
// seqkernels.reference.search "Decoding controls"): −inf for every token but a forced one, for a
// masked token (the row's CSR marks, binary search) and for a forbidden <EOS>; a penalised score
// before normalising. The caller runs the controls on this path only with log_probs or without a
// penalised mark (ops.beam_step), since row_norm does not see the penalty.
template <typename T>
__device__ __forceinline__ T candidate_logp(const BeamStepArgs<T>& a, int row, int v, T x, T rmax, T rls) {
  const int forced = a.forced ? a.forced[row] : -1;
  if (forced >= 0 && v != forced) return neg_inf<T>();
  if (forced < 0 && a.forbid_eos && v == a.eos_id) return neg_inf<T>();
  if (a.mark_offsets) {
    int lo = a.mark_offsets[row], hi = a.mark_offsets[row + 1];
    while (lo < hi) {  // the first mark with token >= v
      const int mid = (lo + hi) >> 1;
      if (a.mark_tokens[mid] < v) lo = mid + 1; else hi = mid;
    }
    if (lo < a.mark_offsets[row + 1] && a.mark_tokens[lo] == v) {
      const uint8_t kind = a.mark_kinds[lo];
      if ((kind & kMasked) && forced < 0) return neg_inf<T>();
      if (kind & kPenalised) {
        const T p = static_cast<T>(a.repetition_penalty);
        x = x < T(0) ? x * p : x / p;
      }
    }
  }
  if (!(rmax > neg_inf<T>())) return neg_inf<T>();
  return (x - rmax) - rls;
}

// ---- 2. per-chunk top K ----------------------------------------------------------------------
// A thread's best candidates, sorted; K ≤ kMaxCandidates. Lives in registers/local memory.
template <typename T>
struct ThreadTopK {
  T score[kMaxCandidates];
  int flat[kMaxCandidates];
  int size = 0;
  __device__ void offer(T s, int f, int K) {
    if (size == K && !before(s, f, score[K - 1], flat[K - 1])) return;
    int pos = size == K ? K - 1 : size++;
    while (pos > 0 && before(s, f, score[pos - 1], flat[pos - 1])) {
      score[pos] = score[pos - 1]; flat[pos] = flat[pos - 1];
      --pos;
    }
    score[pos] = s; flat[pos] = f;
  }
};

// K rounds of a block-wide arg-best over each thread's next candidate; the winner advances.
// Writes the K best (score, flat) of the block, sorted, to out_score/out_flat (thread 0 writes).
template <typename T>
__device__ void block_select(const T* my_score, const int* my_flat, int my_size, int K, T* out_score,
                             int* out_flat) {
  __shared__ T s_score[kThreads / 32];
  __shared__ int s_flat[kThreads / 32];
  __shared__ int s_owner[kThreads / 32];
  __shared__ int winner;
  int head = 0;
  for (int k = 0; k < K; ++k) {
    T s = head < my_size ? my_score[head] : neg_inf<T>();
    int f = head < my_size ? my_flat[head] : INT32_MAX;  // exhausted: ranks after every real one
    int owner = threadIdx.x;
    for (int o = 16; o > 0; o >>= 1) {
      const T s2 = __shfl_xor_sync(0xffffffffu, s, o);
      const int f2 = __shfl_xor_sync(0xffffffffu, f, o);
      const int w2 = __shfl_xor_sync(0xffffffffu, owner, o);
      if (before(s2, f2, s, f)) { s = s2; f = f2; owner = w2; }
    }
    if ((threadIdx.x & 31) == 0) {
      s_score[threadIdx.x >> 5] = s; s_flat[threadIdx.x >> 5] = f; s_owner[threadIdx.x >> 5] = owner;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      T bs = s_score[0]; int bf = s_flat[0], bo = s_owner[0];
      for (int w = 1; w < kThreads / 32; ++w)
        if (before(s_score[w], s_flat[w], bs, bf)) { bs = s_score[w]; bf = s_flat[w]; bo = s_owner[w]; }
      out_score[k] = bs; out_flat[k] = bf;
      winner = bo;
    }
    __syncthreads();
    if (threadIdx.x == winner) ++head;
    __syncthreads();
  }
}

template <typename T>
__global__ void chunk_top_k_kernel(BeamStepArgs<T> a, const T* __restrict__ row_max,
                                   const T* __restrict__ row_log_sum, int chunks, T* __restrict__ part_score,
                                   int* __restrict__ part_flat) {
  const BeamChunk part = chunk_of_block(blockIdx.x, chunks, a.beams, a.vocab);
  const int n = static_cast<int>(part.item), K = 2 * a.beams;
  ThreadTopK<T> top;
  for (long long flat = part.lo + threadIdx.x; flat < part.hi; flat += kThreads) {  // coalesced
    const int f = static_cast<int>(flat);  // < B·V < 2^31 (checked by the binding)
    const int b = f / a.vocab, v = f - b * a.vocab;
    const int row = n * a.beams + b;
    const T bs = a.beam_scores[row];
    const T x = a.scores[static_cast<size_t>(row) * a.vocab + v];
    const T lp = candidate_logp(a, row, v, x, row_max[row], row_log_sum[row]);
    top.offer(bs + lp, f, K);
  }
  const size_t o = static_cast<size_t>(blockIdx.x) * K;  // = (n·chunks + chunk)·K
  block_select(top.score, top.flat, top.size, K, part_score + o, part_flat + o);
}

// ---- 3. merge per item and bookkeeping -----------------------------------------------------------
template <typename T>
__global__ void merge_top_k_kernel(BeamStepArgs<T> a, const T* __restrict__ row_max,
                                   const T* __restrict__ row_log_sum, int chunks,
                                   const T* __restrict__ part_score, const int* __restrict__ part_flat) {
  const int n = blockIdx.x, B = a.beams, K = 2 * B, V = a.vocab;
  __shared__ T best_score[kMaxCandidates];
  __shared__ int best_flat[kMaxCandidates];
  // Each thread first merges its share of the chunk lists into one sorted list of at most K.
  ThreadTopK<T> mine;
  for (int c = threadIdx.x; c < chunks; c += kThreads) {
    const size_t o = (static_cast<size_t>(n) * chunks + c) * K;
    for (int k = 0; k < K; ++k) {
      if (part_flat[o + k] == INT32_MAX) break;  // chunk had fewer than K candidates
      mine.offer(part_score[o + k], part_flat[o + k], K);
    }
  }
  block_select(mine.score, mine.flat, mine.size, K, best_score, best_flat);
  if (threadIdx.x != 0) return;
  const size_t o = static_cast<size_t>(n) * K;
  int alive = 0;
  for (int k = 0; k < K; ++k) {
    const bool real = best_flat[k] != INT32_MAX;
    const int beam = real ? best_flat[k] / V : -1;
    const int token = real ? best_flat[k] - beam * V : -1;
    T lp = neg_inf<T>();
    if (real) {
      const int row = n * B + beam;
      lp = candidate_logp(a, row, token, a.scores[static_cast<size_t>(row) * V + token], row_max[row],
                          row_log_sum[row]);
    }
    a.cand_score[o + k] = real ? best_score[k] : neg_inf<T>();
    a.cand_logp[o + k] = lp;
    a.cand_beam[o + k] = beam;
    a.cand_token[o + k] = token;
    const bool eos = real && token == a.eos_id;
    a.cand_finished[o + k] = eos && k < B;
    if (real && !eos && alive < B) a.alive[static_cast<size_t>(n) * B + alive++] = k;
  }
  for (; alive < B; ++alive) a.alive[static_cast<size_t>(n) * B + alive] = -1;
}

int chunk_count(int beams, int vocab) {  // < 2^31 / kChunk since B·V < 2^31
  return static_cast<int>((static_cast<long long>(beams) * vocab + kChunk - 1) / kChunk);
}

}  // namespace

BeamStepGrid beam_step_grid(int items, int beams, int vocab) {
  const long long chunks = chunk_count(beams, vocab);
  return {static_cast<long long>(items) * beams, chunks, items * chunks, items};
}

BeamChunk beam_chunk_of_block(long long block, long long chunks, int beams, int vocab) {
  return chunk_of_block(block, chunks, beams, vocab);
}

std::size_t beam_step_scratch_bytes(int items, int beams, int vocab, std::size_t elem) {
  const std::size_t rows = static_cast<std::size_t>(items) * beams;
  const std::size_t parts = static_cast<std::size_t>(items) * chunk_count(beams, vocab) * 2 * beams;
  return 2 * rows * elem + parts * (elem + sizeof(int)) + 64;
}

template <typename T>
int beam_step(const BeamStepArgs<T>& a, void* scratch, int* bad_item, void* stream_ptr) {
  const cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  const BeamStepGrid grid = beam_step_grid(a.items, a.beams, a.vocab);
  const int chunks = static_cast<int>(grid.chunks);
  const std::size_t rows = static_cast<std::size_t>(grid.rows);
  T* row_max = static_cast<T*>(scratch);
  T* row_log_sum = row_max + rows;
  T* part_score = row_log_sum + rows;
  int* part_flat = reinterpret_cast<int*>(part_score + static_cast<std::size_t>(a.items) * chunks * 2 * a.beams);
  row_norm_kernel<T><<<static_cast<unsigned>(grid.rows), kThreads, 0, stream>>>(a.scores, a.beams, a.vocab, a.log_probs,
                                                                            row_max, row_log_sum, bad_item);
  chunk_top_k_kernel<T><<<static_cast<unsigned>(grid.chunk_blocks), kThreads, 0, stream>>>(
      a, row_max, row_log_sum, chunks, part_score, part_flat);
  merge_top_k_kernel<T><<<static_cast<unsigned>(grid.items), kThreads, 0, stream>>>(a, row_max, row_log_sum, chunks,
                                                                                      part_score, part_flat);
  return static_cast<int>(cudaGetLastError());
}

template int beam_step<float>(const BeamStepArgs<float>&, void*, int*, void*);
template int beam_step<double>(const BeamStepArgs<double>&, void*, int*, void*);

}  // namespace cuda
}  // namespace seqkernels
