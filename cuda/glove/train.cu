// GloVe AdaGrad epoch on the GPU: Stanford's per-record update (csrc/glove/train.cpp, whose
// update_record is the reference) with one warp per record, lanes over the D dimensions, records
// spread over `warps` warps without locks (Hogwild, as Stanford's threads and as the CPU path; the
// caller bounds `warps` so that concurrent records rarely share a row). Contract:
// seqkernels/glove.h, "CUDA". Not yet run on a GPU.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "seqkernels/cuda/glove.h"

namespace seqkernels {
namespace glove {
namespace cuda {
namespace {

constexpr int kThreads = 32 * kEpochWarpsPerBlock;
constexpr int kMaxPerLane = kMaxCudaVectorSize / 32;  // dimensions a lane holds between the passes

__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__global__ void __launch_bounds__(kThreads) epoch_kernel(TrainArgs a, int warps, double* block_cost, long long* block_skipped) {
  const int lane = threadIdx.x % 32;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) / 32;
  const int D = a.vector_size;
  const int64_t ld = D + 1, V = a.vocab_size;
  double cost = 0.0;
  long long skipped = 0;
  for (int64_t k = warp < warps ? warp : a.records; k < a.records; k += warps) {  // the last block's spare warps idle
    double* w = a.W + a.rows[k] * ld;
    double* c = a.W + (a.cols[k] + V) * ld;
    double* gw = a.gradsq + a.rows[k] * ld;
    double* gc = a.gradsq + (a.cols[k] + V) * ld;
    double diff = 0.0;
    for (int b = lane; b < D; b += 32) diff += w[b] * c[b];
    diff = warp_sum(diff) + w[D] + c[D] - a.log_values[k];
    const double fdiff = a.weights[k] * diff;
    if (!isfinite(diff) || !isfinite(fdiff)) {  // uniform across the warp
      skipped += lane == 0;
      continue;
    }
    cost += lane == 0 ? 0.5 * fdiff * diff : 0.0;
    double upd_w[kMaxPerLane], upd_c[kMaxPerLane];
    double sum_w = 0.0, sum_c = 0.0;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int b = lane + 32 * i;
      if (b >= D) break;
      const double gradient_w = fmin(fmax(fdiff * c[b], -a.grad_clip), a.grad_clip) * a.eta;
      const double gradient_c = fmin(fmax(fdiff * w[b], -a.grad_clip), a.grad_clip) * a.eta;
      upd_w[i] = gradient_w / sqrt(gw[b]);
      upd_c[i] = gradient_c / sqrt(gc[b]);
      sum_w += upd_w[i];
      sum_c += upd_c[i];
      gw[b] += gradient_w * gradient_w;
      gc[b] += gradient_c * gradient_c;
    }
    sum_w = warp_sum(sum_w);
    sum_c = warp_sum(sum_c);
    if (isfinite(sum_w) && isfinite(sum_c)) {  // Stanford drops a non-finite vector update
#pragma unroll
      for (int i = 0; i < kMaxPerLane; ++i) {
        const int b = lane + 32 * i;
        if (b >= D) break;
        w[b] -= upd_w[i];
        c[b] -= upd_c[i];
      }
    }
    if (lane == 0) {  // biases: no eta, no clipping (Stanford's current glove.c)
      const double step_w = fdiff / sqrt(gw[D]), step_c = fdiff / sqrt(gc[D]);
      w[D] -= isfinite(step_w) ? step_w : 0.0;
      c[D] -= isfinite(step_c) ? step_c : 0.0;
      gw[D] += fdiff * fdiff;
      gc[D] += fdiff * fdiff;
    }
    __syncwarp();
  }
  // Per-block totals in a fixed order (the caller sums the blocks).
  __shared__ double s_cost[kThreads / 32];
  __shared__ long long s_skip[kThreads / 32];
  if (lane == 0) { s_cost[threadIdx.x / 32] = cost; s_skip[threadIdx.x / 32] = skipped; }
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0.0;
    long long s = 0;
    for (int i = 0; i < kThreads / 32; ++i) { t += s_cost[i]; s += s_skip[i]; }
    block_cost[blockIdx.x] = t;
    block_skipped[blockIdx.x] = s;
  }
}

}  // namespace

int resident_epoch_warps() {
  int dev = 0, sms = 0, per_sm = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, epoch_kernel, kThreads, 0) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return sms * per_sm * kEpochWarpsPerBlock;
}

int train_epoch(const TrainArgs& a, double* block_cost, long long* block_skipped, int warps, void* stream) {
  epoch_kernel<<<epoch_blocks_for(warps), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(a, warps, block_cost,
                                                                                             block_skipped);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace cuda
}  // namespace glove
}  // namespace seqkernels
