// The CUDA entry points of the fused beam step (cuda/search/beam_step.cu): compiled into the _cuda extension
// only, so the public header seqkernels/beam_search.h (the CPU API and the argument structs) stays free of them.
#pragma once

#include <cstddef>

#include "seqkernels/beam_search.h"

namespace seqkernels {

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

}  // namespace seqkernels
