#include "seqkernels/blas.h"

// The wheel's cblas.h declares every symbol with the scipy_ prefix spelled out.
#include <cblas.h>

#include <mutex>

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

std::mutex g_scope_mutex;
int g_scope_depth = 0;
int g_saved_threads = 1;

}  // namespace

void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
          int ldb, float beta, float* C, int ldc) {
  gemm_impl<float>(scipy_cblas_sgemm, scipy_cblas_sgemv, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda, const double* B,
          int ldb, double beta, double* C, int ldc) {
  gemm_impl<double>(scipy_cblas_dgemm, scipy_cblas_dgemv, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

SingleThreadedScope::SingleThreadedScope() {
  std::lock_guard<std::mutex> lock(g_scope_mutex);
  if (g_scope_depth++ == 0) {
    g_saved_threads = scipy_openblas_get_num_threads();
    scipy_openblas_set_num_threads(1);
  }
}

SingleThreadedScope::~SingleThreadedScope() {
  std::lock_guard<std::mutex> lock(g_scope_mutex);
  if (--g_scope_depth == 0) scipy_openblas_set_num_threads(g_saved_threads);
}

int num_threads() { return scipy_openblas_get_num_threads(); }
std::string config() { return scipy_openblas_get_config(); }
std::string core_name() { return scipy_openblas_get_corename(); }

}  // namespace blas
}  // namespace seqkernels
