#include "seqkernels/blas.h"

// The wheel's cblas.h declares every symbol with the scipy_ prefix spelled out.
#include <cblas.h>

#include "seqkernels/thread_team.h"

#include <algorithm>
#include <vector>

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
  if (K == 1 && beta == T(0)) {
    // An outer product (weight gradients of a one-row, one-step backward): each element written
    // once. sgemm with beta = 0 first zeroes C, then adds the product: two passes over C.
    for (int i = 0; i < M; ++i) {
      const T ai = alpha * A[ta ? i : static_cast<long>(i) * lda];
      T* c = C + static_cast<long>(i) * ldc;
      if (tb)
        for (int j = 0; j < N; ++j) c[j] = ai * B[static_cast<long>(j) * ldb];
      else
        for (int j = 0; j < N; ++j) c[j] = ai * B[j];
    }
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

namespace {
// Every piece is its own BLAS call, and each call packs the whole other operand (K x N when the
// rows are split): that costs about as much as ~50 rows of the product, so a piece of 100 rows ran
// at 2/3 of one whole call's rate (1600x1024x256 float32 in 16 pieces: 11.5 ms against 7.8 ms for
// one call, one thread). Pieces of at least 384 rows (or columns) keep that under ~12 %; at least
// ~2M multiply-adds each, at most 16 pieces, bounds on multiples of 16.
constexpr long kPieceWork = 1L << 21;
constexpr long kMaxPieces = 16;
constexpr long kMinPieceExtent = 384;
constexpr int kPieceAlign = 16;
}  // namespace

template <typename T>
long GemmPieces<T>::count() const {
  if (M <= 0 || N <= 0) return 0;
  const int extent = M >= N ? M : N;
  const long by_extent = std::max(1L, static_cast<long>(extent) / kMinPieceExtent);
  // A matrix-vector product streams its matrix once: bound by memory, not by packing, so it is cut
  // by extent alone and every core streams a share (a one-row step's 12 MiB W_ih at H = 1024).
  if (M == 1 || N == 1) return std::min(by_extent, kMaxPieces);
  const long work = static_cast<long>(M) * N * std::max(K, 1);
  const long by_work = std::max(1L, work / kPieceWork);
  return std::min({by_work, by_extent, kMaxPieces});
}

template <typename T>
void GemmPieces<T>::bounds(long piece, int* r0, int* r1, int* c0, int* c1) const {
  const long n = count();
  const bool by_rows = M >= N;
  const long extent = by_rows ? M : N;
  // Bounds on multiples of 16 keep each block's start aligned for the BLAS kernels.
  auto bound = [&](long q) { return static_cast<int>(q >= n ? extent : (extent * q / n) & ~long(kPieceAlign - 1)); };
  *r0 = 0, *r1 = M, *c0 = 0, *c1 = N;
  if (by_rows) *r0 = bound(piece), *r1 = bound(piece + 1);
  else *c0 = bound(piece), *c1 = bound(piece + 1);
}

template <typename T>
long GemmPieces<T>::piece_work(long piece) const {
  int r0, r1, c0, c1;
  bounds(piece, &r0, &r1, &c0, &c1);
  return static_cast<long>(std::max(r1 - r0, 0)) * std::max(c1 - c0, 0) * std::max(K, 1);
}

template <typename T>
void GemmPieces<T>::run(long piece) const {
  int r0, r1, c0, c1;
  bounds(piece, &r0, &r1, &c0, &c1);
  if (r1 <= r0 || c1 <= c0) return;
  const T* a = trans_a ? A + r0 : A + static_cast<long>(r0) * lda;
  const T* b = trans_b ? B + static_cast<long>(c0) * ldb : B + c0;
  gemm(trans_a, trans_b, r1 - r0, c1 - c0, K, alpha, a, lda, b, ldb, beta, C + static_cast<long>(r0) * ldc + c0, ldc);
}

template struct GemmPieces<float>;
template struct GemmPieces<double>;

template <typename T>
void parallel_gemms(const GemmPieces<T>* products, int count, int max_threads) {
  struct Piece {
    long work;
    int product;
    long index;
  };
  std::vector<Piece> pieces;
  for (int p = 0; p < count; ++p)
    for (long i = 0, n = products[p].count(); i < n; ++i) pieces.push_back({products[p].piece_work(i), p, i});
  // Largest first (ties in product order), so the small pieces fill in at the end.
  std::stable_sort(pieces.begin(), pieces.end(), [](const Piece& a, const Piece& b) { return a.work > b.work; });
  team_parallel_for(team_size(max_threads), static_cast<long>(pieces.size()),
                    [&](long i) { products[pieces[i].product].run(pieces[i].index); });
}

template void parallel_gemms<float>(const GemmPieces<float>*, int, int);
template void parallel_gemms<double>(const GemmPieces<double>*, int, int);

int num_threads() { return scipy_openblas_get_num_threads(); }
std::string config() { return scipy_openblas_get_config(); }
std::string core_name() { return scipy_openblas_get_corename(); }

}  // namespace blas
}  // namespace seqkernels
