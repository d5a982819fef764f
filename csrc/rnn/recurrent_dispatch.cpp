// The capability-independent part of the recurrence (workspace sizes) and the
// dispatch to the copy of recurrent.cpp compiled for this CPU (cpu_capability.h).
#include "seqkernels/cpu_capability.h"
#include "seqkernels/internal/cpu_kernels.h"
#include "seqkernels/recurrent.h"

namespace seqkernels {

std::size_t workspace_size(const CellSpec& cell, int steps, int batch, int hidden) {
  return static_cast<std::size_t>(workspace_layout(cell, steps, batch, hidden).size);
}

template <typename T>
void recurrent_forward(const CellSpec& cell, const ForwardArgs<T>& a) {
  SK_CPU_DISPATCH(recurrent_forward<T>, cell, a)
}
template <typename T>
void recurrent_backward(const CellSpec& cell, const BackwardArgs<T>& a) {
  SK_CPU_DISPATCH(recurrent_backward<T>, cell, a)
}
void activation(int fn, bool vector_form, const float* x, float* y, std::ptrdiff_t n) {
  SK_CPU_DISPATCH(activation, fn, vector_form, x, y, n)
}

template void recurrent_forward<float>(const CellSpec&, const ForwardArgs<float>&);
template void recurrent_forward<double>(const CellSpec&, const ForwardArgs<double>&);
template void recurrent_backward<float>(const CellSpec&, const BackwardArgs<float>&);
template void recurrent_backward<double>(const CellSpec&, const BackwardArgs<double>&);

}  // namespace seqkernels
