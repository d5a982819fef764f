// The CUDA entry points of the fused recurrence (cuda/rnn/recurrent.cu): compiled into the _cuda extension
// only, so the public header seqkernels/recurrent.h (the CPU API and the argument structs) stays free of them.
#pragma once

#include <cstddef>

#include "seqkernels/recurrent.h"

namespace seqkernels {

// ---- CUDA (cuda/rnn/recurrent.cu) ----------------------------------------------------------
// The same recurrence on an NVIDIA GPU. Every pointer is a device pointer; `stream` is the
// cudaStream_t to queue on; the functions return the cudaError_t of the launches (0 = success).
// The time-parallel products stay with the caller (cuBLAS through CuPy, seqkernels.nn): forward
// takes xz = x·W_ihᵀ + b_ih for all steps; backward returns the pre-activation gradients, from
// which the caller forms dX = dzx·W_ih, dW_ih = dzxᵀ·X, dW_hh = dzhᵀ·H_prev and the bias sums (for
// GRU reset_after=false the n block of dW_hh uses aux = r ⊙ h_{t-1}, as on the CPU).
//
// Work split: one persistent cooperative kernel per direction and pass; block k owns hidden units
// [k·H/nb, (k+1)·H/nb) (all G gate rows of W_hh for them, or the same columns in backward) and keeps
// that slice of W_hh in shared memory when it fits, else reads it from global memory (L2). One
// grid-wide barrier per step (two for GRU reset_after=false). Cross-block data is read with
// L1-bypassing loads. Fixed reduction orders: results are bit-for-bit the same run to run.
// LSTM with projections runs its own pair of kernels (weights read from global memory): forward,
// per step, the gates and m_t = o ⊙ tanh c_t of the block's hidden units, a grid barrier, then
// h_t = m_t·W_hrᵀ for the block's units of h; backward, per step, dht = dy + carried gradient (the
// block's units of h), dm = dht·W_hr and the gate gradients (its hidden units), dh_{t-1} = dz·W_hh
// (its units of h), a grid barrier between each. The caller forms dW_hr = dhtᵀ·m from `dht` and the
// workspace's proj block.
namespace cuda {

template <typename T>
struct ForwardArgs {
  int steps = 0, batch = 0, hidden = 0;  // T, B, H
  const T* xz = nullptr;                // (T, B, G·H): x·W_ihᵀ + b_ih
  const T* w_hh = nullptr;              // (G·H, R)  (R = cell.state_size(H))
  const T* w_hr = nullptr;              // (R, H) with projections, else null
  const T* b_hh = nullptr;              // (G·H) or null
  const T* h0 = nullptr;                // (B, R) or null
  const T* c0 = nullptr;                // (B, H) or null; LSTM
  const int32_t* lengths = nullptr;     // (B) or null
  bool reverse = false;
  T* y = nullptr;                       // (T, B, ·), row stride ldy, offset by d·R
  int ldy = 0;
  T* h_n = nullptr;                     // (B, R)
  T* c_n = nullptr;                     // (B, H) or null
  T* workspace = nullptr;               // training: workspace_size() elements (layout above); null = inference
  T* scratch = nullptr;                 // inference only: forward_scratch_size() elements
};

template <typename T>
struct BackwardArgs {
  int steps = 0, batch = 0, hidden = 0;
  const T* w_hh = nullptr;              // (G·H, R)
  const T* w_hr = nullptr;              // (R, H) with projections, else null
  const int32_t* lengths = nullptr;
  bool reverse = false;
  const T* dy = nullptr;                // (T, B, ·), row stride ldy, offset by d·R
  int ldy = 0;
  const T* dh_n = nullptr;              // (B, R) or null
  const T* dc_n = nullptr;              // (B, H) or null
  const T* workspace = nullptr;         // as left by the training forward
  T* dzx = nullptr;                     // out (T, B, G·H): gradient of x·W_ihᵀ + b_ih
  T* dzh = nullptr;                     // out (T, B, G·H): gradient of the recurrent product incl. b_hh;
                                        //     GRU reset_after only (null otherwise: it equals dzx)
  T* dh0 = nullptr;                     // out (B, R)
  T* dc0 = nullptr;                     // out (B, H) or null
  T* dht = nullptr;                     // out (T, B, R), projections only: the gradient reaching h_t
  T* scratch = nullptr;                 // backward_scratch_size() elements
};

std::size_t forward_scratch_size(const CellSpec& cell, int batch, int hidden);
std::size_t backward_scratch_size(const CellSpec& cell, int batch, int hidden);
template <typename T> int recurrent_forward(const CellSpec& cell, const ForwardArgs<T>& a, void* stream);
template <typename T> int recurrent_backward(const CellSpec& cell, const BackwardArgs<T>& a, void* stream);
// How the last launch of this thread was planned (for tests and the bench): blocks, units per
// block, shared-memory bytes of the weight slice (0 = weights read from global memory), and of the
// staged batch rows (0 = the reduced vectors are read from L2).
struct LaunchPlan { int blocks = 0, units = 0; std::size_t smem = 0; bool cooperative = true; std::size_t stage = 0; };
LaunchPlan last_launch_plan();

}  // namespace cuda

}  // namespace seqkernels
