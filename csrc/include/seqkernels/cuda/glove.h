// The CUDA entry points of the GloVe epoch (cuda/glove/train.cu): compiled into the _cuda extension
// only, so the public header seqkernels/glove.h (the CPU API and the argument structs) stays free of them.
#pragma once

#include <cstddef>

#include "seqkernels/glove.h"

namespace seqkernels {
namespace glove {

// ---- CUDA training (cuda/glove/train.cu; not yet run on a GPU) ------------------------------------
// The same epoch with every pointer of TrainArgs on the device and log_values/weights required
// (values is unused); one warp per record, Hogwild across warps. Exactly `warps` warps take
// records (warp k: records k, k + warps, ...), so `warps` bounds how many records are in flight at
// once: the caller keeps it small against the vocabulary, or concurrent updates of the same rows
// are lost (seqkernels.glove.model.cuda_concurrency). Launches ceil(warps / 8) blocks and writes one
// partial cost and skipped count per block (device memory, epoch_blocks_for(warps) of each), to be
// summed by the caller; returns the cudaError_t of the launch. vector_size <= kMaxCudaVectorSize.
namespace cuda {
constexpr int kMaxCudaVectorSize = 512;
constexpr int kEpochWarpsPerBlock = 8;
inline int epoch_blocks_for(int warps) { return (warps + kEpochWarpsPerBlock - 1) / kEpochWarpsPerBlock; }
int resident_epoch_warps();  // warps of the epoch kernel resident at once on the current device (0: unknown)
int train_epoch(const TrainArgs& args, double* block_cost, long long* block_skipped, int warps, void* stream);
}  // namespace cuda

}  // namespace glove
}  // namespace seqkernels
