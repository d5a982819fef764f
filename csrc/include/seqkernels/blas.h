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

// The same product cut into pieces (blocks of rows of C, or of columns when C has few rows) whose
// number and bounds depend on the shape alone, never on the thread count: every piece is one
// single-threaded BLAS call, so any number of threads computes bit-identical results.
template <typename T>
struct GemmPieces {
  bool trans_a = false, trans_b = false;
  int M = 0, N = 0, K = 0;
  T alpha = T(1), beta = T(0);
  const T* A = nullptr;
  int lda = 0;
  const T* B = nullptr;
  int ldb = 0;
  T* C = nullptr;
  int ldc = 0;

  long count() const;          // number of pieces (>= 1 when M, N >= 1)
  long piece_work(long piece) const;  // multiply-adds in that piece
  void run(long piece) const;  // computes that piece's block of C
  // The block of C a piece computes: rows [r0, r1), columns [c0, c1).
  void bounds(long piece, int* r0, int* r1, int* c0, int* c1) const;
};

// Independent products (none writes what another reads or writes) as one pool of pieces spread
// over a team of up to max_threads threads (thread_team.h; 0 = the default team size), the
// largest first: a thread done with its share of one product starts on the next instead of
// waiting at a barrier for an uneven split (5 row pieces of a 2048-row dW on 2 threads: 3 and 2).
// Which piece runs where never changes a bit of the result.
template <typename T>
void parallel_gemms(const GemmPieces<T>* products, int count, int max_threads = 0);

// OpenBLAS is kept single-threaded for the whole process (set when _C loads): all parallelism in
// the recurrence comes from the seqkernels thread team (thread_team.h). Two thread pools on the same cores made each spin while
// the other worked (OpenBLAS's idle workers busy-wait for a long time after every threaded call).
int num_threads();        // OpenBLAS's thread count (1: see above)
std::string config();     // OpenBLAS's build configuration string
std::string core_name();  // the kernel family OpenBLAS chose for this CPU

}  // namespace blas
}  // namespace seqkernels
