// Thin row-major wrappers over OpenBLAS (the scipy-openblas32 wheel, symbols prefixed scipy_).
// All matrix products of the CPU kernels go through here; nothing in seqkernels hand-writes a GEMM.
#pragma once

#include <string>

namespace seqkernels {
namespace blas {

// C(M,N) = alpha · op(A)(M,K) · op(B)(K,N) + beta · C, row-major, leading dimensions in elements.
// M == 1 or N == 1 is routed to GEMV. beta == 0 never reads C (NaN garbage in C is fine).
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc);
void gemm(bool trans_a, bool trans_b, int M, int N, int K, double alpha, const double* A, int lda,
          const double* B, int ldb, double beta, double* C, int ldc);

// While alive, OpenBLAS runs single-threaded, so that each thread of our own OpenMP team can call
// it on its slice without the two thread pools oversubscribing the cores. Reference counted, so
// nested and concurrent scopes restore the previous setting only when the last one ends.
class SingleThreadedScope {
 public:
  SingleThreadedScope();
  ~SingleThreadedScope();
  SingleThreadedScope(const SingleThreadedScope&) = delete;
  SingleThreadedScope& operator=(const SingleThreadedScope&) = delete;
};

int num_threads();        // OpenBLAS's current thread count
std::string config();     // OpenBLAS's build configuration string
std::string core_name();  // the kernel family OpenBLAS chose for this CPU

}  // namespace blas
}  // namespace seqkernels
