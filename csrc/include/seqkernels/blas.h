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

// The same product split across the OpenMP team (by rows of C, or by columns when C has few rows),
// each thread calling the single-threaded BLAS on its block. Used for the time-parallel GEMMs.
// max_threads caps the team (0 = OpenMP's maximum); small products stay on the calling thread.
void parallel_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                   const float* B, int ldb, float beta, float* C, int ldc, int max_threads = 0);
void parallel_gemm(bool trans_a, bool trans_b, int M, int N, int K, double alpha, const double* A, int lda,
                   const double* B, int ldb, double beta, double* C, int ldc, int max_threads = 0);

// OpenBLAS is kept single-threaded for the whole process (set when _C loads): all parallelism in
// seqkernels comes from one OpenMP team. Two thread pools on the same cores made each spin while
// the other worked (OpenBLAS's idle workers busy-wait for a long time after every threaded call).
int num_threads();        // OpenBLAS's thread count (1: see above)
std::string config();     // OpenBLAS's build configuration string
std::string core_name();  // the kernel family OpenBLAS chose for this CPU

}  // namespace blas
}  // namespace seqkernels
