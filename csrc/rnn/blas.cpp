#include "seqkernels/blas.h"

// The wheel's cblas.h declares every symbol with the scipy_ prefix spelled out.
#include <cblas.h>

#include <omp.h>

#include <algorithm>

namespace seqkernels {
namespace blas {
namespace {

CBLAS_TRANSPOSE tr(bool t) { return t ? CblasTrans : CblasNoTrans; }

template <typename T>
void zero_strided(T* y, int n, int inc) {
  for (int i = 0; i < n; ++i) y[static_cast<long>(i) * inc] = T(0);
}

// One implementation for both precisions; `Gemm`/`Gemv` are the typed OpenBLAS entry points.
template <typename T, typename Gemm, typename Gemv>
void gemm_impl(Gemm gemm_fn, Gemv gemv_fn, bool ta, bool tb, int M, int N, int K, T alpha, const T* A,
               int lda, const T* B, int ldb, T beta, T* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // empty product: C = beta·C
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) C[static_cast<long>(i) * ldc + j] = beta == T(0) ? T(0) : beta * C[static_cast<long>(i) * ldc + j];
    return;
  }
  if (M == 1) {
    // C(1,N) = a(1,K) · op(B)(K,N)  ⇔  c = op(B)^T a
    const int inc_a = ta ? lda : 1;
    if (beta == T(0)) zero_strided(C, N, 1);
    if (!tb)
      gemv_fn(CblasRowMajor, CblasTrans, K, N, alpha, B, ldb, A, inc_a, beta, C, 1);
    else
      gemv_fn(CblasRowMajor, CblasNoTrans, N, K, alpha, B, ldb, A, inc_a, beta, C, 1);
    return;
  }
  if (N == 1) {
    // C(M,1) = op(A)(M,K) · b(K)
    const int inc_b = tb ? 1 : ldb;
    if (beta == T(0)) zero_strided(C, M, ldc);
    if (!ta)
      gemv_fn(CblasRowMajor, CblasNoTrans, M, K, alpha, A, lda, B, inc_b, beta, C, ldc);
    else
      gemv_fn(CblasRowMajor, CblasTrans, K, M, alpha, A, lda, B, inc_b, beta, C, ldc);
    return;
  }
  gemm_fn(CblasRowMajor, tr(ta), tr(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <typename T>
void parallel_gemm_impl(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb,
                        T beta, T* C, int ldc, int max_threads) {
  const long work = static_cast<long>(M) * N * K;
  const int most = omp_in_parallel() ? 1 : (max_threads > 0 ? max_threads : omp_get_max_threads());
  const int nt = static_cast<int>(std::min<long>(most, std::max<long>(1, work / (1L << 18))));
  if (nt <= 1) {
    gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const bool by_rows = M >= 32L * nt || M >= N;
  const int extent = by_rows ? M : N;
#pragma omp parallel num_threads(nt)
  {
    const int k = omp_get_thread_num(), n = omp_get_num_threads();
    // Block boundaries on multiples of 16 keep every block's start aligned for the BLAS kernels.
    auto bound = [&](int q) { return q >= n ? extent : static_cast<int>((static_cast<long>(extent) * q / n) & ~15L); };
    const int lo = bound(k), hi = bound(k + 1);
    if (hi > lo) {
      if (by_rows)
        gemm(ta, tb, hi - lo, N, K, alpha, ta ? A + lo : A + static_cast<long>(lo) * lda, lda, B, ldb, beta,
             C + static_cast<long>(lo) * ldc, ldc);
      else
        gemm(ta, tb, M, hi - lo, K, alpha, A, lda, tb ? B + static_cast<long>(lo) * ldb : B + lo, ldb, beta, C + lo,
             ldc);
    }
  }
}

// Runs when _C is loaded: see blas.h for why OpenBLAS stays single-threaded.
const bool g_single_threaded = [] {
  scipy_openblas_set_num_threads(1);
  return true;
}();
}  // namespace

void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
          int ldb, float beta, float* C, int ldc) {
  gemm_impl<float>(scipy_cblas_sgemm, scipy_cblas_sgemv, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda, const double* B,
          int ldb, double beta, double* C, int ldc) {
  gemm_impl<double>(scipy_cblas_dgemm, scipy_cblas_dgemv, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void parallel_gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                   int ldb, float beta, float* C, int ldc, int max_threads) {
  parallel_gemm_impl<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, max_threads);
}

void parallel_gemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda, const double* B,
                   int ldb, double beta, double* C, int ldc, int max_threads) {
  parallel_gemm_impl<double>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, max_threads);
}

int num_threads() { return scipy_openblas_get_num_threads(); }
std::string config() { return scipy_openblas_get_config(); }
std::string core_name() { return scipy_openblas_get_corename(); }

}  // namespace blas
}  // namespace seqkernels
