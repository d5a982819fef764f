// Dispatch of the fused beam-search step to the copy compiled for this CPU (cpu_capability.h).
#include "seqkernels/beam_search.h"
#include "seqkernels/cpu_capability.h"
#include "seqkernels/internal/cpu_kernels.h"

namespace seqkernels {

template <typename T>
int beam_step(const BeamStepArgs<T>& a) {
  SK_CPU_DISPATCH(beam_step<T>, a)
}

template int beam_step<float>(const BeamStepArgs<float>&);
template int beam_step<double>(const BeamStepArgs<double>&);

}  // namespace seqkernels
