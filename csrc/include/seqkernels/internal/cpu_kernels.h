// The per-capability copies of every CPU kernel: each source in SEQKERNELS_CPU_KERNELS
// (CMakeLists.txt) is compiled once per entry of SK_CPU_CAPABILITIES into namespace cpu_<name>.
// Internal: only those sources and their dispatchers (*_dispatch.cpp) include this; everyone else
// calls the dispatched entry points of the public headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "seqkernels/beam_search.h"
#include "seqkernels/cpu_capability.h"
#include "seqkernels/fma_peak.h"
#include "seqkernels/glove.h"
#include "seqkernels/recurrent.h"
#include "seqkernels/word2vec.h"

namespace seqkernels {

// ---- recurrent.h
// The per-capability copies (recurrent.cpp compiled once per capability).
#define SK_DECLARE_RECURRENT_KERNELS(cap, ...)                                                  \
  namespace cpu_##cap {                                                                          \
  template <typename T> void recurrent_forward(const CellSpec& cell, const ForwardArgs<T>& a);   \
  template <typename T> void recurrent_backward(const CellSpec& cell, const BackwardArgs<T>& a); \
  void activation(int fn, bool vector_form, const float* x, float* y, std::ptrdiff_t n);         \
  }
SK_CPU_CAPABILITIES(SK_DECLARE_RECURRENT_KERNELS)
#undef SK_DECLARE_RECURRENT_KERNELS

// ---- beam_search.h
#define SK_DECLARE_BEAM_KERNELS(cap, ...) \
  namespace cpu_##cap {                    \
  template <typename T> int beam_step(const BeamStepArgs<T>& a); \
  }
SK_CPU_CAPABILITIES(SK_DECLARE_BEAM_KERNELS)
#undef SK_DECLARE_BEAM_KERNELS

// ---- glove.h
namespace glove {
// Declarations of the per-capability copies of the training kernel (CMakeLists.txt).
#define SK_DECLARE_GLOVE_KERNELS(cap, ...) \
  namespace cpu_##cap {                     \
  EpochResult train_epoch(const TrainArgs& args); \
  }
SK_CPU_CAPABILITIES(SK_DECLARE_GLOVE_KERNELS)
#undef SK_DECLARE_GLOVE_KERNELS
}  // namespace glove

// ---- fma_peak.h
#define SK_FMA_PEAK_DECLARE(cap, ...)                                                     \
  namespace cpu_##cap {                                                                    \
  FmaLoopShape fma_loop_shape();                                                    \
  /* `iterations` rounds of acc = acc * multiplier + addend on every accumulator; */ \
  /* returns the sum of the accumulators so the work cannot be optimised away. */   \
  float fma_loop(std::int64_t iterations, float multiplier, float addend);          \
  }
SK_CPU_CAPABILITIES(SK_FMA_PEAK_DECLARE)
#undef SK_FMA_PEAK_DECLARE

// ---- word2vec.h
namespace word2vec {
// Declarations of the per-capability copies of the kernel (CMakeLists.txt: SEQKERNELS_CPU_KERNELS).
// boundaries: the pieces' first sentences and S at the end (pieces + 1 of them); piece p starts its
// generator at args.seed + p; noise: the lookup built from args.table.
#define SK_DECLARE_WORD2VEC_KERNELS(cap, ...) \
  namespace cpu_##cap {                 \
  EpochResult train_pieces(const TrainArgs& args, const std::vector<int64_t>& boundaries, const NoiseLookup& noise); \
  }
SK_CPU_CAPABILITIES(SK_DECLARE_WORD2VEC_KERNELS)
#undef SK_DECLARE_WORD2VEC_KERNELS
}  // namespace word2vec

}  // namespace seqkernels
