// Fused CPU recurrence for LSTM, GRU and RNN: forward and backward through time of one direction
// of one layer. The contract (shapes, ownership, workspace and pack layouts) is in
// seqkernels/recurrent.h.
//
// The per-step recurrent product is ours: a register-blocked micro-kernel (MR batch rows × NV
// vectors of columns held in registers for the whole reduction over H) that reads W_hh from
// panels packed once per weight change, and hands each finished MR-row tile, still in L1, to the
// cell's pointwise code (the epilogue). The large time-parallel products stay in OpenBLAS.
//
// Threads: one team run for the whole sequence, as tasks (a step, or a phase of one) × (a chunk of
// Q = 4·W hidden units, W = SIMD width) taken in order by whichever members are running
// (run_staged). Every unit is computed by the same tile, at the same position, whoever runs it, so
// the results are bit-identical for any number of threads.
//
// This file is compiled once per CPU capability (cpu_capability.h), each copy in its own namespace;
// recurrent_dispatch.cpp picks the copy at run time.
#include "seqkernels/recurrent.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

#include "seqkernels/blas.h"
#include "seqkernels/block_pool.h"
#include "seqkernels/cpu_capability.h"
#include "seqkernels/internal/cpu_kernels.h"
#include "seqkernels/thread_team.h"

namespace seqkernels {
namespace SK_CPU_CAPABILITY {
namespace {

using idx = std::ptrdiff_t;

// ---- SIMD geometry of this copy ----------------------------------------------------------------
// kAccumulators: vector registers the micro-kernel may keep as accumulators (32 zmm / 16 ymm or xmm,
// leaving room for the weight vectors and the broadcast row value).
#if defined(__AVX512F__)
#define SK_VEC_BYTES 64
constexpr int kAccumulators = 24;
#elif defined(__AVX2__)
#define SK_VEC_BYTES 32
constexpr int kAccumulators = 12;
#else
#define SK_VEC_BYTES 16
constexpr int kAccumulators = 12;
#endif

template <typename T> struct Simd;
template <> struct Simd<float> {
  typedef float V __attribute__((vector_size(SK_VEC_BYTES), aligned(4)));  // unaligned loads and stores
  static constexpr int W = SK_VEC_BYTES / 4;
};
template <> struct Simd<double> {
  typedef double V __attribute__((vector_size(SK_VEC_BYTES), aligned(8)));
  static constexpr int W = SK_VEC_BYTES / 8;
};

// A float vector as a value (arithmetic, LstmGates of it: the type above carries an alignment
// attribute that templates drop) and its unaligned load and store, for the explicit vector code of
// the LSTM rows.
typedef float FloatVec __attribute__((vector_size(SK_VEC_BYTES)));
inline FloatVec load_vec(const float* p) {
  FloatVec v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline void store_vec(float* p, FloatVec v) { __builtin_memcpy(p, &v, sizeof v); }
#if defined(__AVX512F__)
// Lanes [0, n) of a vector (the others read as 0, never written): a row's last partial vector runs
// the same vector code as the whole ones, so every unit gets the same activations wherever it lies.
inline __mmask16 first_lanes(int n) { return static_cast<__mmask16>((1u << n) - 1); }
inline FloatVec load_lanes(const float* p, int n) { return _mm512_maskz_loadu_ps(first_lanes(n), p); }
inline void store_lanes(float* p, FloatVec v, int n) { _mm512_mask_storeu_ps(p, first_lanes(n), v); }
#endif
// Runs body(jj, load, store) for every vector of units [0, hs): whole vectors with plain loads and
// stores, then (with masks) the partial last one. Returns the first unit left to a scalar loop.
template <typename Body>
__attribute__((always_inline)) inline int for_each_vector(int hs, Body&& body) {
  constexpr int W = SK_VEC_BYTES / 4;
  int jj = 0;
  for (; jj + W <= hs; jj += W)
    body(jj, [](const float* p) { return load_vec(p); }, [](float* p, FloatVec v) { store_vec(p, v); });
#if defined(__AVX512F__)
  if (jj < hs) {
    const int n = hs - jj;
    body(jj, [n](const float* p) { return load_lanes(p, n); }, [n](float* p, FloatVec v) { store_lanes(p, v, n); });
    jj = hs;
  }
#endif
  return jj;
}

// Hidden units are split between threads in chunks of Q = 4·W; H is padded to Hp, a multiple of Q
// (padded units have zero weights and are never stored). R, the units of h, is split the same way
// (R = H unless the LSTM has projections).
// X: rows of W_ih packed ahead of W_hh's in the forward panel (the input size where the cell
// fuses_input, else 0).
template <typename T>
struct Geometry {
  static constexpr int W = Simd<T>::W;
  static constexpr int Q = 4 * W;
  int H, Hp, chunks;
  int R, Rp, rchunks;
  int X;
  static int padded(int n) { return (n + Q - 1) / Q * Q; }
  Geometry(const CellSpec& cell, int input, int hidden)
      : H(hidden), Hp(padded(hidden)), chunks(Hp / Q), R(cell.state_size(hidden)), Rp(padded(R)),
        rchunks(Rp / Q), X(fuses_input(cell) ? input : 0) {}
};

// A forward panel covers `gates` consecutive gate blocks of W_hh; each tile holds U units of every
// one of them (NV = gates·U/W vectors, 3 or 4, so that MR·NV accumulators fill the registers).
constexpr int forward_vectors_per_gate(int gates) { return gates == 3 ? 1 : 4 / gates; }

// Rows of a weight that a panel's tiles hold (for a panel read from the weights' rows): gate blocks
// g0… of N units, K columns each.
template <typename T>
struct TileRows {
  const T* w = nullptr;
  int N = 0, g0 = 0, K = 0;
};

template <typename T>
struct Panel {
  const T* data = nullptr;  // the packed tiles; null: products straight from the rows of `from`
  int K = 0;         // reduction length (rows of each tile used)
  int U = 0;         // output units per tile
  int NV = 0;        // vectors per tile row
  idx stride = 0;    // elements from one tile to the next
  TileRows<T> from[2];  // where `data` is null: the weights stacked along k (W_ih's X rows first)
  Panel() = default;
  Panel(const T* data_, int K_, int U_, int NV_, idx stride_) : data(data_), K(K_), U(U_), NV(NV_), stride(stride_) {}
  const T* tile(int t) const { return data + static_cast<idx>(t) * stride; }
};

// ---- the micro-kernel -----------------------------------------------------------------------------
// An optional first operand: the step's input rows x_t (K of them per row, at stride ldx), multiplied
// by the panel's first K rows (W_ih's) before `a` meets the rest (W_hh's), into the same sums.
template <typename T>
struct InputRows {
  int K = 0;
  const T* x = nullptr;
  idx ldx = 0;
};

// out(MR, NV·W) = [x | a](MR, X + K) · tile(X + K, NV·W); `a` rows at stride lda, x from `in` (X =
// in.K, usually 0). Accumulators stay in registers over the whole k loop; the reduction order over k
// is fixed, so every output element has the same bits whichever rows or tiles it is computed with.
// Vector v of row r is stored at out + r·ld + (v / uv)·zs + (v % uv)·W: uv vectors per gate, gate
// blocks zs apart.
template <typename T, int MR, int NV>
__attribute__((always_inline)) inline void tile_product(int K, const T* a, idx lda, const T* bp, T* out, idx ld,
                                                        idx zs, int uv, InputRows<T> in) {
  using V = typename Simd<T>::V;
  constexpr int W = Simd<T>::W;
  V acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = V{};
  for (int part = in.K > 0 ? 0 : 1; part < 2; ++part) {  // x_t with W_ih's rows, then a with the rest
    const T* rows = part ? a : in.x;
    const idx ld_rows = part ? lda : in.ldx;
    const int kn = part ? K : in.K;
    const T* panel = part ? bp + static_cast<idx>(in.K) * NV * W : bp;
    for (int k = 0; k < kn; ++k) {
      const V* b = reinterpret_cast<const V*>(panel + static_cast<idx>(k) * NV * W);
      V bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) bv[v] = b[v];
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const V ar = rows[r * ld_rows + k] - V{};  // broadcast (x − 0 is exactly x, signed zeros included)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[r][v] += ar * bv[v];
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      *reinterpret_cast<V*>(out + r * ld + (v / uv) * zs + (v % uv) * W) = acc[r][v];
}

template <int NV> constexpr int rows_per_tile() { return kAccumulators / NV > 0 ? kAccumulators / NV : 1; }

// The last `rest` (< MR) rows: the same kernel with fewer rows.
template <typename T, int NV, int M>
inline void tail_product(int rest, int K, const T* a, idx lda, const T* bp, T* out, idx ld, idx zs, int uv,
                         InputRows<T> in) {
  if constexpr (M >= 1) {
    if (rest == M) tile_product<T, M, NV>(K, a, lda, bp, out, ld, zs, uv, in);
    else tail_product<T, NV, M - 1>(rest, K, a, lda, bp, out, ld, zs, uv, in);
  }
}

// ---- one-step products from the weights' rows ------------------------------------------------------
// A one-step call for one row (decoding a sequence) reads each weight once; hashing and reading a
// pack cost more than that (bench/NOTES.md, CPU recurrence v14), so the products are dot products
// along the weights' own rows: out[b·ld + g·zs + (j − u0)] = [x_b | a_b] · [w_ih | w_hh][(g0 + g)·N
// + j] for units j in [u0, u1) and gate blocks g < gates, the parts as p.from lists them (x with
// W_ih's rows where in.K > 0). A part's sum runs in W lanes along k, four weight rows at a time, the
// lanes then added pairwise in a fixed order, then its tail: the same bits for a unit whichever
// thread computes it.
template <typename T>
inline T lanes_sum(typename Simd<T>::V v) {
  constexpr int W = Simd<T>::W;
  T lane[W];
  __builtin_memcpy(lane, &v, sizeof v);
  for (int width = W / 2; width > 0; width /= 2)
    for (int i = 0; i < width; ++i) lane[i] += lane[i + width];
  return lane[0];
}

template <typename T>
void rows_product(const Panel<T>& p, int gates, int u0, int u1, int B, const T* a, idx lda, InputRows<T> in, T* out,
                  idx ld, idx zs) {
  using V = typename Simd<T>::V;
  constexpr int W = Simd<T>::W, MJ = 4;
  for (int b = 0; b < B; ++b)
    for (int g = 0; g < gates; ++g)
      for (int j0 = u0; j0 < u1; j0 += MJ) {
        const int nj = std::min(MJ, u1 - j0);
        T sum[MJ] = {};
        for (int part = 0; part < (in.K > 0 ? 2 : 1); ++part) {
          const TileRows<T>& rows = p.from[part];
          const T* x = in.K > 0 && part == 0 ? in.x + b * in.ldx : a + b * lda;
          const T* w[MJ];
          for (int r = 0; r < MJ; ++r)  // rows past the range repeat the last (their sums are dropped)
            w[r] = rows.w + (static_cast<idx>(rows.g0 + g) * rows.N + j0 + std::min(r, nj - 1)) * rows.K;
          V acc[MJ] = {};
          const int kv = rows.K / W * W;
          for (int k = 0; k < kv; k += W) {
            const V xv = *reinterpret_cast<const V*>(x + k);
#pragma GCC unroll 4
            for (int r = 0; r < MJ; ++r) acc[r] += *reinterpret_cast<const V*>(w[r] + k) * xv;
          }
          for (int r = 0; r < nj; ++r) {
            T s = lanes_sum<T>(acc[r]);
            for (int k = kv; k < rows.K; ++k) s += w[r][k] * x[k];
            sum[r] += s;
          }
        }
        for (int r = 0; r < nj; ++r) out[b * ld + g * zs + (j0 + r - u0)] = sum[r];
      }
}

// The backward's product for one row, one step, from the weight's own rows (no pack): out[b·ld +
// (u − u0)] = Σ_{i<K} a_b[i] · w[(k0 + i)·N + u] for units u in [u0, u1), each row of w read once.
// Every element's sum runs over i in order, one multiply-add at a time, in the vector code of the
// packed tiles (the last units in zero-padded lanes, as there): the same bits as the packed path.
template <typename T>
void columns_product(const TileRows<T>& w, int k0, int K, int u0, int u1, int B, const T* a, idx lda, T* out,
                     idx ld) {
  using V = typename Simd<T>::V;
  constexpr int W = Simd<T>::W, NV = 4;
  for (int b = 0; b < B; ++b) {
    const T* ab = a + b * lda;
    T* ob = out + b * ld;
    int u = u0;
    for (; u + NV * W <= u1; u += NV * W) {
      V acc[NV] = {};
      for (int i = 0; i < K; ++i) {
        const T* row = w.w + static_cast<idx>(k0 + i) * w.N + u;
        const V ai = ab[i] - V{};  // broadcast
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          V wv;
          __builtin_memcpy(&wv, row + v * W, sizeof wv);
          acc[v] += ai * wv;
        }
      }
      __builtin_memcpy(ob + (u - u0), acc, sizeof acc);
    }
    for (; u < u1; u += W) {  // the rest a vector at a time, a last partial one in zero-padded lanes
      const int n = std::min(W, u1 - u);
      V acc = {};
      for (int i = 0; i < K; ++i) {
        V wv = {};
        __builtin_memcpy(&wv, w.w + static_cast<idx>(k0 + i) * w.N + u, n * sizeof(T));
        acc += (ab[i] - V{}) * wv;
      }
      __builtin_memcpy(ob + (u - u0), &acc, n * sizeof(T));
    }
  }
}

// Rows of a (B, K) in blocks of at most MR. For each block, the product with every tile of the panel that
// covers units [u0, u1) is written to `out` (per row: gate g's units at g·zs, row stride
// gates·zs), and then epilogue(b, row) runs for each row of the block — so one epilogue call covers
// all of a member's units, while the products are still in L1. With input rows (in.K > 0) the
// panel's first in.K rows multiply x and the other p.K − in.K multiply a.
template <typename T, int NV, typename Epilogue>
inline void range_rows(const Panel<T>& p, int gates, int u0, int u1, int B, const T* a, idx lda, T* out,
                       Epilogue&& epilogue, InputRows<T> in) {
  constexpr int MR = rows_per_tile<NV>();
  const int uv = NV / gates;
  const idx zs = ((u1 - u0) + p.U - 1) / p.U * p.U, ld = gates * zs;
  if (B <= 0) return;
  if (!p.data) {  // no pack (a one-step call for one row): the products, then the epilogue
    rows_product(p, gates, u0, u1, B, a, lda, in, out, ld, zs);
    for (int b = 0; b < B; ++b) epilogue(b, out + b * ld, static_cast<int>(zs));
    return;
  }
  // Blocks of at most MR rows, as even as possible (8 rows: 4+4, not 6+2): a short last tile reuses
  // each weight vector for few rows (1 thread, B8 H256: 5.9 ms vs 6.9 for 6+2; B16, B64 unchanged).
  const int blocks = (B + MR - 1) / MR, small = B / blocks, larger = B % blocks;
  for (int block = 0, b = 0, rows = 0; block < blocks; ++block, b += rows) {
    rows = small + (block < larger ? 1 : 0);
    for (int j0 = u0; j0 < u1; j0 += p.U) {
      const T* bp = p.tile(j0 / p.U);
      T* o = out + (j0 - u0);
      const InputRows<T> block_in{in.K, in.K > 0 ? in.x + b * in.ldx : nullptr, in.ldx};
      if (rows == MR) tile_product<T, MR, NV>(p.K - in.K, a + b * lda, lda, bp, o, ld, zs, uv, block_in);
      else tail_product<T, NV, MR - 1>(rows, p.K - in.K, a + b * lda, lda, bp, o, ld, zs, uv, block_in);
    }
    for (int r = 0; r < rows; ++r) epilogue(b + r, out + r * ld, static_cast<int>(zs));
  }
}

// Where p.data is null (products from the weights' rows), out holds all B rows.
template <typename T, typename Epilogue>
inline void panel_range_rows(const Panel<T>& p, int gates, int u0, int u1, int B, const T* a, idx lda, T* out,
                             Epilogue&& epilogue, InputRows<T> in = {}) {
  if (p.NV == 4) range_rows<T, 4>(p, gates, u0, u1, B, a, lda, out, epilogue, in);
  else range_rows<T, 3>(p, gates, u0, u1, B, a, lda, out, epilogue, in);
}

// ---- packing W_hh (and W_hr) -------------------------------------------------------------------------
// Forward panel p of a weight w with gate blocks of N rows and p.K columns, covering gate blocks
// [g0, g0 + gates): tile t, row k, column g·U + u = w[(g0+g)·N + t·U + u][k] (zero past N).
#if defined(__AVX512F__)
// GCC 12 reports the self-initialised placeholder inside its own shuffle intrinsics (a known false
// positive) as maybe-uninitialised.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// Rows i of src (the first kn ≤ 16 floats of each; a null row reads as zeros) become columns:
// dst[k·ld + i] = src[i][k] for k < kn. Three rounds of in-register shuffles (pairs, quads, lanes).
inline void transpose_16x16(const float* const src[16], int kn, float* dst, idx ld) {
  __m512 r[16], u[16];
  for (int i = 0; i < 16; ++i) r[i] = src[i] ? load_lanes(src[i], kn) : _mm512_setzero_ps();
  for (int q = 0; q < 16; q += 4) {  // rows q..q+3: lane L of u[q + m] holds their column 4L + m
    const __m512 t0 = _mm512_unpacklo_ps(r[q], r[q + 1]), t1 = _mm512_unpackhi_ps(r[q], r[q + 1]);
    const __m512 t2 = _mm512_unpacklo_ps(r[q + 2], r[q + 3]), t3 = _mm512_unpackhi_ps(r[q + 2], r[q + 3]);
    u[q] = _mm512_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    u[q + 1] = _mm512_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    u[q + 2] = _mm512_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    u[q + 3] = _mm512_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int m = 0; m < 4; ++m) {  // column 4L + m: lane L of u[m], u[4 + m], u[8 + m], u[12 + m]
    const __m512 a_lo = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x44), a_hi = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xEE);
    const __m512 b_lo = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x44),
                 b_hi = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xEE);
    const __m512 col[4] = {_mm512_shuffle_f32x4(a_lo, b_lo, 0x88), _mm512_shuffle_f32x4(a_lo, b_lo, 0xDD),
                           _mm512_shuffle_f32x4(a_hi, b_hi, 0x88), _mm512_shuffle_f32x4(a_hi, b_hi, 0xDD)};
    for (int L = 0; L < 4; ++L)
      if (4 * L + m < kn) _mm512_storeu_ps(dst + (4 * L + m) * ld, col[L]);
  }
}
#pragma GCC diagnostic pop
#endif

template <typename T>
void pack_forward_tile(const T* w, int N, int g0, const Panel<T>& p, int t) {
  const int NR = p.NV * Simd<T>::W, gates = NR / p.U;
  T* tile = const_cast<T*>(p.tile(t));  // the panels point into our own pack buffer
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    // 16 columns (units of one gate: U is a multiple of 16) × 16 k at a time, through registers;
    // the scalar loop below stores one float at a time, strided. Training repacks every step: the
    // H = 256 LSTM's 2 MiB forward pack took ~165 µs that way, 100–150 µs this way (at H = 512,
    // 8 MiB, both run at the memory's pace, ~1 ms).
    for (int c0 = 0; c0 < NR; c0 += 16) {
      const int g = c0 / p.U, j0 = t * p.U + c0 % p.U;
      const float* rows[16];
      for (int k0 = 0; k0 < p.K; k0 += 16) {
        for (int i = 0; i < 16; ++i)
          rows[i] = j0 + i < N ? w + (static_cast<idx>(g0 + g) * N + j0 + i) * p.K + k0 : nullptr;
        transpose_16x16(rows, std::min(16, p.K - k0), tile + static_cast<idx>(k0) * NR + c0, NR);
      }
    }
    return;
  }
#endif
  constexpr int kb = 16;  // a block of k keeps the written lines in L1 while the rows are read
  for (int k0 = 0; k0 < p.K; k0 += kb) {
    const int k1 = std::min(p.K, k0 + kb);
    for (int g = 0; g < gates; ++g)
      for (int u = 0; u < p.U; ++u) {
        const int j = t * p.U + u;
        T* col = tile + g * p.U + u;
        if (j < N) {
          const T* src = w + (static_cast<idx>(g0 + g) * N + j) * p.K;
          for (int k = k0; k < k1; ++k) col[static_cast<idx>(k) * NR] = src[k];
        } else {
          for (int k = k0; k < k1; ++k) col[static_cast<idx>(k) * NR] = T(0);
        }
      }
  }
}
inline idx forward_panel_size(int K, int Np, int gates) { return static_cast<idx>(K) * gates * Np; }

// Backward panel (the transpose) of a weight w with N columns: rows k of w (all p.K of them), tile
// t = columns [t·U, (t+1)·U).
template <typename T>
void pack_backward_tile(const T* w, int N, const Panel<T>& p, int t) {
  T* tile = const_cast<T*>(p.tile(t));
  const int j0 = t * p.U, n = std::max(0, std::min(p.U, N - j0));
  for (int k = 0; k < p.K; ++k) {
    T* d = tile + static_cast<idx>(k) * p.U;
    std::copy(w + static_cast<idx>(k) * N + j0, w + static_cast<idx>(k) * N + j0 + n, d);
    std::fill(d + n, d + p.U, T(0));
  }
}

// The pack header: 16 words at the start of the caller's buffer (recurrent.h).
enum PackWord : int {
  kMagic, kCapability, kElemSize, kCellCode, kHidden, kHash, kPanels, kWidth, kInput, kInputHash, kHeaderWords = 16
};
constexpr uint64_t kPackMagic = 0x324b4341504b53ULL;  // "SKPACK2"
constexpr uint64_t kForwardPanels = 1, kBackwardPanel = 2, kInputRows = 4;  // bits of hdr[kPanels]

uint64_t cell_code(const CellSpec& c) {
  return static_cast<uint64_t>(c.kind) | (static_cast<uint64_t>(c.reset_after) << 8) |
         (static_cast<uint64_t>(c.proj) << 16);
}

constexpr uint64_t kHashMul = 0x9E3779B97F4A7C15ULL;
// One value folded into a running hash (the lanes of a piece, and the pieces of a weight).
inline uint64_t hash_mix(uint64_t h, uint64_t v) {
  h = (h ^ v) * kHashMul;
  return h ^ (h >> 31);
}

// Content hash of a piece of a weight: 64-bit multiply-xor lanes over the raw bytes, combined at the
// end. Any change to any weight changes its hash, so a stale pack is never used whoever changed the
// weights and however.
uint64_t content_hash(const void* data, std::size_t bytes) {
  typedef uint64_t U64 __attribute__((vector_size(SK_VEC_BYTES), aligned(8)));
  constexpr int L = SK_VEC_BYTES / 8, A = 8;  // lanes per vector, independent vectors
  U64 acc[A];
  for (int i = 0; i < A; ++i)
    for (int l = 0; l < L; ++l) acc[i][l] = 0x243F6A8885A308D3ULL + static_cast<uint64_t>(i * L + l);
  const auto* p = static_cast<const unsigned char*>(data);
  const std::size_t block = sizeof(U64) * A;
  std::size_t off = 0;
  for (; off + block <= bytes; off += block) {
#pragma GCC unroll 8
    for (int i = 0; i < A; ++i) {
      U64 w;
      std::memcpy(&w, p + off + i * sizeof(U64), sizeof(U64));
      acc[i] = (acc[i] ^ w) * kHashMul;
      acc[i] ^= acc[i] >> 29;
    }
  }
  uint64_t h = bytes * kHashMul;
  for (int i = 0; i < A; ++i)
    for (int l = 0; l < L; ++l) h = hash_mix(h, acc[i][l]);
  for (; off < bytes; ++off) h = hash_mix(h, p[off]);
  return h;
}

// Hashes of whole weights, each cut into pieces of kHashPiece bytes that the team hashes at once
// (every call reads the weights: 2 MiB at H = 256, from L3 at ~45 GB/s on one core); a weight's hash
// combines its pieces' hashes in order, so it is the same for any number of threads.
struct HashSpan {
  const void* data;
  std::size_t bytes;
};
constexpr std::size_t kHashPiece = std::size_t(64) << 10;

template <int N>
std::array<uint64_t, N> content_hashes(const std::array<HashSpan, N>& spans, int threads) {
  std::array<long, N + 1> first{};  // index of each span's first piece
  for (int i = 0; i < N; ++i) first[i + 1] = first[i] + static_cast<long>((spans[i].bytes + kHashPiece - 1) / kHashPiece);
  std::vector<uint64_t> piece(static_cast<std::size_t>(first[N]));
  auto hash_piece = [&](long k) {
    const int i = static_cast<int>(std::upper_bound(first.begin(), first.end(), k) - first.begin()) - 1;
    const std::size_t off = static_cast<std::size_t>(k - first[i]) * kHashPiece;
    piece[k] = content_hash(static_cast<const unsigned char*>(spans[i].data) + off,
                            std::min(kHashPiece, spans[i].bytes - off));
  };
  if (first[N] > 1) team_parallel_for(threads, first[N], hash_piece);
  else if (first[N] == 1) hash_piece(0);
  std::array<uint64_t, N> out;
  for (int i = 0; i < N; ++i) {
    uint64_t h = spans[i].bytes * kHashMul;
    for (long k = first[i]; k < first[i + 1]; ++k) h = hash_mix(h, piece[k]);
    out[i] = h;
  }
  return out;
}

std::mutex& pack_mutex() {
  static std::mutex m;
  return m;
}

// The packed weights of one layer-direction for this capability.
template <typename T>
struct Packed {
  Panel<T> fused;       // where the cell fuses_input: W_ih's X rows, then W_hh's (K = X + R)
  Panel<T> forward[2];  // W_hh's rows (of `fused` when it exists); GRU with reset_after=false: (r, u), (n)
  Panel<T> backward;    // K = G·H rows, tiles of Q units of h
  Panel<T> proj_forward, proj_backward;  // W_hr (projections only): K = H, tiles of Q units of h;
                                         // its transpose, K = R, tiles of Q hidden units
};

// The panels of a pack at `data` (null: their geometry alone, every data pointer null).
template <typename T>
Packed<T> panels(const CellSpec& cell, const Geometry<T>& geo, const T* data) {
  const int G = cell.gates(), H = geo.H, R = geo.R, W = Simd<T>::W, Q = Geometry<T>::Q;
  auto at = [&](idx offset) { return data ? data + offset : nullptr; };
  Packed<T> p;
  const bool split = cell.kind == CellKind::Gru && !cell.reset_after;
  const int first = split ? 2 : G;
  const int v0 = first * forward_vectors_per_gate(first), U = W * forward_vectors_per_gate(first);
  const idx tile_stride = static_cast<idx>(geo.X + R) * v0 * W;
  if (geo.X > 0) p.fused = {at(0), geo.X + R, U, v0, tile_stride};
  p.forward[0] = {at(static_cast<idx>(geo.X) * v0 * W), R, U, v0, tile_stride};
  if (split) p.forward[1] = {at(forward_panel_size(H, geo.Hp, 2)), H, W * 4, 4, static_cast<idx>(H) * 4 * W};
  idx next = forward_panel_size(geo.X + R, geo.Hp, G);
  p.backward = {at(next), G * H, Q, 4, static_cast<idx>(G) * H * Q};
  if (cell.proj > 0) {
    next += static_cast<idx>(G) * H * geo.Rp;
    p.proj_forward = {at(next), H, Q, 4, static_cast<idx>(H) * Q};
    p.proj_backward = {at(next + static_cast<idx>(H) * geo.Rp), R, Q, 4, static_cast<idx>(R) * Q};
  }
  return p;
}

// The panels of a one-step call for one row (one_row_step): no pack (nothing to reuse it for), so
// none is hashed, read or written; the forward's products are dot products along the weights' rows
// (rows_product), the backward's sums W_hh's rows (columns_product).
template <typename T>
Packed<T> panels_from_weights(const CellSpec& cell, const Geometry<T>& geo, const T* w_ih, const T* w_hh,
                              const T* w_hr) {
  Packed<T> p = panels(cell, geo, static_cast<const T*>(nullptr));
  const int H = geo.H, R = geo.R;
  if (geo.X > 0) p.fused.from[0] = {w_ih, H, 0, geo.X}, p.fused.from[1] = {w_hh, H, 0, R};
  p.forward[0].from[0] = {w_hh, H, 0, R};
  if (p.forward[1].K > 0) p.forward[1].from[0] = {w_hh, H, 2, H};  // GRU reset_before: the n block
  if (cell.proj > 0) p.proj_forward.from[0] = {w_hr, R, 0, H};
  p.backward.from[0] = {w_hh, R, 0, cell.gates() * H};
  return p;
}

// A one-step call for one row takes panels_from_weights (recurrent.h: kRowsProductMaxBatch).
inline bool one_row_step(int steps, int batch) { return steps == 1 && batch <= kRowsProductMaxBatch; }

// Scratch of a staged forward task: the products of one block of at most 8 rows (G gates × Q units
// each); from the weights' rows, those of every row.
template <typename T>
std::size_t task_scratch(const Packed<T>& pk, int B, int G) {
  return static_cast<std::size_t>(pk.forward[0].data ? 8 : std::max(B, 8)) * G * Geometry<T>::Q;
}

// Writes the requested parts of the pack into `data` (laid out by panels()), the tiles spread over
// the team: fwd, the forward panels' rows from w_hh (and w_hr's); bwd, the backward panels; input,
// the fused panel's rows from w_ih.
template <typename T>
void build_panels(const CellSpec& cell, const Geometry<T>& geo, const T* w_ih, const T* w_hh, const T* w_hr, T* data,
                  bool fwd, bool bwd, bool input, int threads) {
  const Packed<T> p = panels(cell, geo, data);
  const int W = Simd<T>::W, forward_panels = !fwd ? 0 : p.forward[1].data ? 2 : 1;
  const int tiles[2] = {geo.Hp / p.forward[0].U, forward_panels == 2 ? geo.Hp / p.forward[1].U : 0};
  const int first_gate[2] = {0, p.forward[0].NV * W / p.forward[0].U};  // panel 1 follows panel 0's gates
  const bool proj = cell.proj > 0;
  const long proj_fwd = proj && fwd ? geo.rchunks : 0, proj_bwd = proj && bwd ? geo.chunks : 0;
  const long input_tiles = input && geo.X > 0 ? geo.Hp / p.fused.U : 0;
  const Panel<T> input_rows{p.fused.data, geo.X, p.fused.U, p.fused.NV, p.fused.stride};  // W_ih's part
  long total = (bwd ? geo.rchunks : 0) + proj_fwd + proj_bwd + input_tiles;
  for (int f = 0; f < forward_panels; ++f) total += tiles[f];
  team_parallel_for(threads, total, [&](long i) {
    if (i < input_tiles) return pack_forward_tile(w_ih, geo.H, 0, input_rows, static_cast<int>(i));
    i -= input_tiles;
    for (int f = 0; f < forward_panels; ++f) {
      if (i < tiles[f]) return pack_forward_tile(w_hh, geo.H, first_gate[f], p.forward[f], static_cast<int>(i));
      i -= tiles[f];
    }
    if (i < proj_fwd) return pack_forward_tile(w_hr, geo.R, 0, p.proj_forward, static_cast<int>(i));
    i -= proj_fwd;
    if (i < proj_bwd) return pack_backward_tile(w_hr, geo.H, p.proj_backward, static_cast<int>(i));
    i -= proj_bwd;
    pack_backward_tile(w_hh, geo.R, p.backward, static_cast<int>(i));
  });
}

// The panels to use for this call: the caller's pack where its header says it holds exactly these
// weights (by content hash) for this capability and shape, else rebuilt there (only the parts whose
// weights changed); without a pack, a private one. W_ih is hashed only when its rows will be read
// (input: a fused forward), so calls that do not read them do not pay for reading W_ih.
template <typename T>
Packed<T> ensure_packed(const CellSpec& cell, const Geometry<T>& geo, const T* w_ih, const T* w_hh, const T* w_hr,
                        T* pack, std::size_t pack_size, bool need_backward, bool need_input,
                        std::vector<T>& private_pack, int threads) {
  const int G = cell.gates(), H = geo.H, R = geo.R;
  need_input = need_input && geo.X > 0;
  const std::size_t need = packed_weights_size<T>(cell, geo.X, H);
  if (pack == nullptr) {
    private_pack.resize(need - pack_header_elements<T>());
    build_panels(cell, geo, w_ih, w_hh, w_hr, private_pack.data(), true, need_backward, need_input, threads);
    return panels(cell, geo, private_pack.data());
  }
  SK_CHECK(pack_size >= need, "pack: expected at least " << need << " elements, got " << pack_size);
  uint64_t* hdr = reinterpret_cast<uint64_t*>(pack);
  T* data = pack + pack_header_elements<T>();
  const auto hashes = content_hashes<3>(
      {HashSpan{w_hh, static_cast<std::size_t>(G) * H * R * sizeof(T)},
       HashSpan{w_hr, cell.proj > 0 ? static_cast<std::size_t>(R) * H * sizeof(T) : 0},
       HashSpan{w_ih, need_input ? static_cast<std::size_t>(G) * H * geo.X * sizeof(T) : 0}},
      threads);
  uint64_t hash = hashes[0];
  if (cell.proj > 0) hash ^= hashes[1] * 0xC2B2AE3D27D4EB4FULL;  // W_hr changes the pack too (an odd
                                                                 // multiplier keeps the two from cancelling)
  const uint64_t input_hash = need_input ? hashes[2] : 0;
  const PackWord shape_words[] = {kMagic, kCapability, kElemSize, kCellCode, kHidden, kWidth, kInput};
  const uint64_t shape[] = {kPackMagic, static_cast<uint64_t>(cpu_capability()), sizeof(T), cell_code(cell),
                            static_cast<uint64_t>(H), static_cast<uint64_t>(Simd<T>::W), static_cast<uint64_t>(geo.X)};
  std::lock_guard<std::mutex> lock(pack_mutex());
  constexpr int kShapeWords = sizeof(shape_words) / sizeof(shape_words[0]);
  bool same = true;
  for (int i = 0; i < kShapeWords; ++i) same = same && hdr[shape_words[i]] == shape[i];
  uint64_t have = same ? hdr[kPanels] : 0;
  if (hdr[kHash] != hash) have &= kInputRows;  // W_hh's (and W_hr's) panels are stale; W_ih's may not be
  if (need_input && hdr[kInputHash] != input_hash) have &= ~kInputRows;
  const bool fwd = !(have & kForwardPanels), bwd = need_backward && !(have & kBackwardPanel),
             input = need_input && !(have & kInputRows);
  if (fwd || bwd || input) {
    hdr[kMagic] = 0;  // invalid while being written
    build_panels(cell, geo, w_ih, w_hh, w_hr, data, fwd, bwd, input, threads);
    for (int i = 1; i < kShapeWords; ++i) hdr[shape_words[i]] = shape[i];  // the magic last, below
    hdr[kHash] = hash;
    if (input) hdr[kInputHash] = input_hash;
    hdr[kPanels] = have | kForwardPanels | (bwd ? kBackwardPanel : 0) | (input ? kInputRows : 0);
    hdr[kMagic] = kPackMagic;
  }
  return panels(cell, geo, data);
}

// ---- workspace ---------------------------------------------------------------------------------
template <typename P>
struct Workspace {
  P* states = nullptr;   // (T+1, B, H)
  P* cstates = nullptr;  // (T+1, B, H) LSTM
  P* acts = nullptr;     // (T, B, G·H) LSTM, GRU
  P* aux = nullptr;      // (T, B, H)   GRU
  P* proj = nullptr;     // (T, B, H)   LSTM with projections: m_t = o ⊙ tanh c_t
};

template <typename P>
Workspace<P> carve(const CellSpec& cell, P* base, int steps, int batch, int hidden) {
  const WorkspaceLayout l = workspace_layout(cell, steps, batch, hidden);
  Workspace<P> w;
  w.states = base + l.states;
  if (l.cstates >= 0) w.cstates = base + l.cstates;
  if (l.acts >= 0) w.acts = base + l.acts;
  if (l.aux >= 0) w.aux = base + l.aux;
  if (l.proj >= 0) w.proj = base + l.proj;
  return w;
}

// Workspace slot of the state before / after the step at time position t (see recurrent.h).
inline int slot_prev(int t, bool reverse) { return reverse ? t + 1 : t; }
inline int slot_next(int t, bool reverse) { return reverse ? t : t + 1; }

inline bool active(const int32_t* lengths, int b, int t) { return lengths == nullptr || t < lengths[b]; }

// A buffer that every call fills completely before reading: no zero-fill (std::vector's would be a
// serial pass over megabytes before the team starts), from the block pool (no fresh pages per call).
template <typename T>
class Uninit {
 public:
  explicit Uninit(std::size_t count)
      : p_(count ? static_cast<T*>(block_pool::take(count * sizeof(T))) : nullptr), n_(count) {}
  ~Uninit() {
    block_pool::give(p_, n_ * sizeof(T));
  }
  Uninit(const Uninit&) = delete;
  Uninit& operator=(const Uninit&) = delete;
  T* data() { return p_; }
  std::size_t size() const { return n_; }

 private:
  T* p_;
  std::size_t n_;
};

template <typename T>
void copy_n(const T* src, idx n, T* dst) { std::copy(src, src + n, dst); }
template <typename T>
void zero_n(T* dst, idx n) { std::fill(dst, dst + n, T(0)); }

// ---- pointwise forward of one batch row over units [j0, j0+hs) -----------------------------------
// zx: the row of x·W_ihᵀ + b_ih (G·H, gate blocks of H); zh: the recurrent product of these units
// (gate g at zh + g·zs); bh: b_hh (zeros when bias=False); ac: the row's saved gates (G·H), or null
// for the LSTM row in inference, where nothing reads them.

template <typename T>
void lstm_forward_row(int H, int j0, int hs, const T* zx, const T* zh, int zs, const T* bh, const T* c_prev,
                      T* c_next, T* h_next, T* y, T* ac) {
  // One pointer per gate block: the vectoriser gives up on this loop when it has to prove that
  // zh[3·zs + jj] and the stores do not overlap from index arithmetic.
  const T *zi = zh, *zf = zh + zs, *zg = zh + 2 * zs, *zo = zh + 3 * zs;
  const T *xi = zx + j0, *xf = zx + H + j0, *xg = zx + 2 * H + j0, *xo = zx + 3 * H + j0;
  const T *bi = bh + j0, *bf = bh + H + j0, *bg = bh + 2 * H + j0, *bo = bh + 3 * H + j0;
  T *ai = ac ? ac + j0 : nullptr, *af = ac ? ac + H + j0 : nullptr, *ag = ac ? ac + 2 * H + j0 : nullptr,
    *ao = ac ? ac + 3 * H + j0 : nullptr;
  c_prev += j0, c_next += j0, h_next += j0, y += j0;
  int vector_end = 0;
  if constexpr (std::is_same_v<T, float>) {
    // Whole vectors as explicit vector code, the activations inlined: the scalar loop below calls
    // their SIMD clones, and each call clobbers every vector register (spills, reloads). Same
    // operations in the same order, so the same bits as the loop (AVX-512: its own activations, and
    // the partial last vector masked instead of the loop).
    using V = FloatVec;
    vector_end = for_each_vector(hs, [&](int jj, auto load, auto store) {
      auto pre = [&](const T* x, const T* z, const T* b) { return load(x + jj) + load(z + jj) + load(b + jj); };
      const LstmGates<V> g = lstm_gates(pre(xi, zi, bi), pre(xf, zf, bf), pre(xg, zg, bg), pre(xo, zo, bo));
      const V c = lstm_cell_state(g, load(c_prev + jj));
      const V h = lstm_hidden(g, c);
      store(c_next + jj, c);
      store(h_next + jj, h);
      store(y + jj, h);
      if (ac) {
        store(ai + jj, g.i), store(af + jj, g.f);
        store(ag + jj, g.g), store(ao + jj, g.o);
      }
    });
  }
#pragma omp simd
  for (int jj = vector_end; jj < hs; ++jj) {
    const LstmGates<T> g = lstm_gates(xi[jj] + zi[jj] + bi[jj], xf[jj] + zf[jj] + bf[jj], xg[jj] + zg[jj] + bg[jj],
                                      xo[jj] + zo[jj] + bo[jj]);
    const T c = lstm_cell_state(g, c_prev[jj]);
    const T h = lstm_hidden(g, c);
    c_next[jj] = c;
    h_next[jj] = h;
    y[jj] = h;
    if (ac) ai[jj] = g.i, af[jj] = g.f, ag[jj] = g.g, ao[jj] = g.o;
  }
}

// GRU, reset_after = true: the whole step. aux ← W_hn h + b_hn.
template <typename T>
void gru_forward_row(int H, int j0, int hs, const T* zx, const T* zh, int zs, const T* bh, const T* h_prev,
                     T* h_next, T* y, T* ac, T* aux) {
#pragma omp simd
  for (int jj = 0; jj < hs; ++jj) {
    const int j = j0 + jj;
    const T r = sigmoid(zx[j] + zh[jj] + bh[j]);
    const T u = sigmoid(zx[H + j] + zh[zs + jj] + bh[H + j]);
    const T hn = zh[2 * zs + jj] + bh[2 * H + j];
    const T n = gru_candidate(zx[2 * H + j], r, hn, true);
    const T h = gru_hidden(u, n, h_prev[j]);
    h_next[j] = h;
    y[j] = h;
    ac[j] = r; ac[H + j] = u; ac[2 * H + j] = n;
    aux[j] = hn;
  }
}

// GRU, reset_after = false, phase 1: r and u; rh ← r ⊙ h_{t-1} (the input of W_hn).
template <typename T>
void gru_gates_row(int H, int j0, int hs, const T* zx, const T* zh, int zs, const T* bh, const T* h_prev, T* rh,
                   T* ac) {
#pragma omp simd
  for (int jj = 0; jj < hs; ++jj) {
    const int j = j0 + jj;
    const T r = sigmoid(zx[j] + zh[jj] + bh[j]);
    ac[j] = r;
    ac[H + j] = sigmoid(zx[H + j] + zh[zs + jj] + bh[H + j]);
    rh[j] = r * h_prev[j];
  }
}

// GRU, reset_after = false, phase 2: candidate from zh_n = (r ⊙ h)·W_hnᵀ, then the new state.
template <typename T>
void gru_candidate_row(int H, int j0, int hs, const T* zx, const T* zh_n, const T* bh, const T* h_prev, T* h_next,
                       T* y, T* ac) {
#pragma omp simd
  for (int jj = 0; jj < hs; ++jj) {
    const int j = j0 + jj;
    const T n = gru_candidate(zx[2 * H + j], T(0), zh_n[jj] + bh[2 * H + j], false);
    const T h = gru_hidden(ac[H + j], n, h_prev[j]);
    ac[2 * H + j] = n;
    h_next[j] = h;
    y[j] = h;
  }
}

template <typename T, Activation A>
void rnn_forward_row(int j0, int hs, const T* zx, const T* zh, const T* bh, T* h_next, T* y) {
#pragma omp simd
  for (int jj = 0; jj < hs; ++jj) {
    const int j = j0 + jj;
    h_next[j] = y[j] = rnn_hidden(A, zx[j], zh[jj] + bh[j]);
  }
}

// ---- pointwise backward of one batch row over units [j0, j0+hs) ----------------------------------
// dh = dy + dh_in is the total gradient reaching h_t. Writes the pre-activation gradients dz (and dzh
// for GRU reset_after) and the direct part of dh_{t-1} (the W_hh part is added by the product).

// kProj (LSTM with projections): `dy` is dm = dh_t·W_hr of these units, chunk-local, the whole
// gradient reaching o ⊙ tanh c_t; dh_in and dh_out are unused (h_{t-1}'s gradient comes from the
// W_hh product alone).
template <typename T, bool kProj = false>
void lstm_backward_row(int H, int j0, int hs, const T* dy, const T* dh_in, const T* ac, const T* c, const T* c_prev,
                       T* dc, T* dz, T* dh_out) {
  int vector_end = 0;
  if constexpr (std::is_same_v<T, float>) {
    // Whole vectors as explicit vector code, tanh inlined (see lstm_forward_row).
    using V = FloatVec;
    vector_end = for_each_vector(hs, [&](int jj, auto load, auto store) {
      const int j = j0 + jj;
      const LstmGates<V> g{load(ac + j), load(ac + H + j), load(ac + 2 * H + j), load(ac + 3 * H + j)};
      LstmGates<V> d;
      V dc_prev;
      const V dh = kProj ? load(dy + jj) : load(dy + j) + load(dh_in + j);
      lstm_unit_backward(dh, load(dc + j), g, load(c + j), load(c_prev + j), &d, &dc_prev);
      store(dz + j, d.i), store(dz + H + j, d.f);
      store(dz + 2 * H + j, d.g), store(dz + 3 * H + j, d.o);
      store(dc + j, dc_prev);
      if constexpr (!kProj) store(dh_out + j, V{});
    });
  }
#pragma omp simd
  for (int jj = vector_end; jj < hs; ++jj) {
    const int j = j0 + jj;
    const LstmGates<T> g{ac[j], ac[H + j], ac[2 * H + j], ac[3 * H + j]};
    LstmGates<T> d;
    T dc_prev;
    if constexpr (kProj)
      lstm_unit_backward(dy[jj], dc[j], g, c[j], c_prev[j], &d, &dc_prev);
    else
      lstm_unit_backward(dy[j] + dh_in[j], dc[j], g, c[j], c_prev[j], &d, &dc_prev);
    dz[j] = d.i; dz[H + j] = d.f; dz[2 * H + j] = d.g; dz[3 * H + j] = d.o;
    dc[j] = dc_prev;
    if constexpr (!kProj) dh_out[j] = T(0);
  }
}

template <typename T, bool ResetAfter>
void gru_backward_row(int H, int j0, int hs, const T* dy, const T* dh_in, const T* ac, const T* h_prev, const T* aux,
                      T* dz, T* dzh, T* dh_out) {
#pragma omp simd
  for (int jj = 0; jj < hs; ++jj) {
    const int j = j0 + jj;
    const T r = ac[j], u = ac[H + j], n = ac[2 * H + j];
    T du, dn, direct;
    gru_unit_backward_un(dy[j] + dh_in[j], u, n, h_prev[j], &du, &dn, &direct);
    dz[H + j] = du;
    dz[2 * H + j] = dn;
    dh_out[j] = direct;
    if constexpr (ResetAfter) {  // n = tanh(zx_n + r ⊙ hn): dr = dn_pre ⊙ hn; the recurrent n block sees r ⊙ dn_pre
      const T dr = dn * aux[j] * dsigmoid_from_output(r);
      dz[j] = dr;
      dzh[j] = dr; dzh[H + j] = du; dzh[2 * H + j] = dn * r;
    } else {
      dz[j] = T(0);  // the r gate needs d(r ⊙ h) = dn_pre·W_hn of every unit: phase 2
    }
  }
}

// GRU reset_after=false, phase 2: drh = d(r ⊙ h_{t-1}) of these units (from the product).
template <typename T>
void gru_reset_row(int j0, int hs, const T* drh, const T* h_prev, const T* r, T* dz_r, T* dh_out) {
#pragma omp simd
  for (int jj = 0; jj < hs; ++jj) {
    const int j = j0 + jj;
    dz_r[j] = drh[jj] * h_prev[j] * dsigmoid_from_output(r[j]);
    dh_out[j] += drh[jj] * r[j];
  }
}

template <typename T, Activation A>
void rnn_backward_row(int j0, int hs, const T* dy, const T* dh_in, const T* h, T* dz, T* dh_out) {
#pragma omp simd
  for (int jj = 0; jj < hs; ++jj) {
    const int j = j0 + jj;
    dz[j] = rnn_unit_backward(A, dy[j] + dh_in[j], h[j]);
    dh_out[j] = T(0);
  }
}

template <typename T>
void add_row(int j0, int hs, const T* v, T* dst) {
#pragma omp simd
  for (int jj = 0; jj < hs; ++jj) dst[j0 + jj] += v[jj];
}

// ---- cell traits: chosen once per call ----------------------------------------------------------
struct LstmCell { static constexpr CellKind kind = CellKind::Lstm; static constexpr bool reset_after = true; static constexpr Activation act = Activation::Tanh; };
template <bool R> struct GruCell { static constexpr CellKind kind = CellKind::Gru; static constexpr bool reset_after = R; static constexpr Activation act = Activation::Tanh; };
template <Activation A> struct RnnCell { static constexpr CellKind kind = CellKind::Rnn; static constexpr bool reset_after = true; static constexpr Activation act = A; };

template <typename F>
void with_cell(const CellSpec& cell, F&& f) {
  switch (cell.kind) {
    case CellKind::Lstm: return f(LstmCell{});
    case CellKind::Gru: return cell.reset_after ? f(GruCell<true>{}) : f(GruCell<false>{});
    case CellKind::Rnn:
      return cell.activation == Activation::Tanh ? f(RnnCell<Activation::Tanh>{}) : f(RnnCell<Activation::Relu>{});
  }
}

template <typename T>
struct Shared {  // what every member of a forward team reads
  int steps, B, H, G;
  bool reverse, training;
  const int32_t* lengths;
  const T* xz;          // row b of step t's input pre-activation (x·W_ihᵀ + b_ih) at xz + t·xz_step + b·xz_row;
  idx xz_step, xz_row;  // with a fused input, b_ih alone (both strides 0): the step adds x_t·W_ihᵀ
  const T* x;           // fused input: (T, B, I) rows for the fused panel's W_ih rows; else null
  int I;
  const T* bh;
  T* y;
  int ldy;
  Workspace<T> ws;
  T* acts_step;  // inference: the gates of the current step
};

// ---- staged tasks --------------------------------------------------------------------------------
// The recurrence as tasks: stage s (a step, or a phase of one) × chunk c of Q hidden units. A member
// starts a stage once every task of the previous one has finished, runs its own chunks (the same
// ones every stage, so the packed weights of a chunk stay in one core's L2: B = 1 forwards 5-9 %
// faster than taking chunks in arrival order), then takes whatever chunks of the stage nobody has
// started. So a member that loses its core (another program, or torch's OpenMP workers still
// spinning after the op before ours) holds up at most the one task it has started; whoever runs
// takes the rest. A task is claimed just before it runs. Which member computes a chunk never
// changes its bits: every chunk is computed the same way.
template <typename T, typename Task>
void run_staged(int threads, long stages, int chunks, std::size_t scratch_elems, Task&& task) {
  const long total = stages * chunks;
  SK_CHECK(total < (1L << 31), "sequence too long for the task counter (" << stages << " stages)");
  struct alignas(64) Claim {
    std::atomic<long> stage{-1};  // the last stage for which this chunk was taken
  };
  std::unique_ptr<Claim[]> claims(new Claim[chunks]);
  alignas(64) std::atomic<uint32_t> done{0};
  std::atomic<int> sleepers{0};
  team_run(threads, [&](const TeamMember& me) {
    std::vector<T> scratch(scratch_elems);
    // Member m of n owns chunks [m·chunks/n, (m+1)·chunks/n).
    const int n = std::max(1, std::min(me.size, chunks)), m = std::min(me.rank, n - 1);
    const int home0 = static_cast<int>(static_cast<long>(m) * chunks / n);
    auto run = [&](long stage, int c) {
      long expect = stage - 1;
      if (!claims[c].stage.compare_exchange_strong(expect, stage, std::memory_order_acq_rel)) return;
      task(stage, c, scratch.data());
      done.fetch_add(1, std::memory_order_seq_cst);
      wake_all(done, sleepers);
    };
    // A member that joins late starts at the stage under way.
    for (long stage = done.load(std::memory_order_acquire) / chunks; stage < stages; ++stage) {
      const uint32_t need = static_cast<uint32_t>(stage * chunks);
      for (uint32_t d = done.load(std::memory_order_acquire); d < need; d = done.load(std::memory_order_acquire))
        wait_while_equal(done, d, sleepers);
      for (int i = 0; i < chunks; ++i) run(stage, (home0 + i) % chunks);  // own chunks first, then the rest
    }
  });
}

// ============================================================================================
// Forward
// ============================================================================================
template <typename T, typename C>
void forward_recurrence(const Shared<T>& s, const Packed<T>& pk, const Geometry<T>& geo, int threads) {
  constexpr bool kGruBefore = C::kind == CellKind::Gru && !C::reset_after;
  constexpr bool kLstm = C::kind == CellKind::Lstm;
  const int B = s.B, H = s.H, G = s.G;
  const idx GH = static_cast<idx>(G) * H, BH = static_cast<idx>(B) * H;
  auto prev_slot = [&](int step, int t) { return s.training ? slot_prev(t, s.reverse) : (step & 1); };
  auto next_slot = [&](int step, int t) { return s.training ? slot_next(t, s.reverse) : ((step + 1) & 1); };

  const int phases = kGruBefore ? 2 : 1;
  run_staged<T>(threads, static_cast<long>(s.steps) * phases, geo.chunks, task_scratch(pk, B, G),
                [&](long stage, int chunk, T* out) {
    const int step = static_cast<int>(stage / phases), phase = static_cast<int>(stage % phases);
    const int u0 = chunk * geo.Q, u1 = std::min(H, u0 + geo.Q), hs = u1 - u0;
    const int t = s.reverse ? s.steps - 1 - step : step;
    const T* h_prev = s.ws.states + prev_slot(step, t) * BH;
    T* h_next = s.ws.states + next_slot(step, t) * BH;
    const T* c_prev = kLstm ? s.ws.cstates + prev_slot(step, t) * BH : nullptr;
    T* c_next = kLstm ? s.ws.cstates + next_slot(step, t) * BH : nullptr;
    T* aux_t = s.ws.aux ? s.ws.aux + (s.training ? t * BH : 0) : nullptr;
    const T* zx_t = s.xz + t * s.xz_step;
    T* y_t = s.y + static_cast<idx>(t) * B * s.ldy;
    auto acts_row = [&](int b) {
      return s.training ? s.ws.acts + (static_cast<idx>(t) * B + b) * GH : s.acts_step + b * GH;
    };
    // Past a sequence's end: carry the state, output 0.
    auto carry = [&](int b) {
      const idx o = b * static_cast<idx>(H);
      copy_n(h_prev + o + u0, hs, h_next + o + u0);
      if (kLstm) copy_n(c_prev + o + u0, hs, c_next + o + u0);
      zero_n(y_t + b * static_cast<idx>(s.ldy) + u0, hs);
      if (s.training && s.ws.acts)
        for (int g = 0; g < G; ++g) zero_n(acts_row(b) + g * H + u0, hs);
      if (aux_t) zero_n(aux_t + o + u0, hs);
    };
    if (phase == 0) {
      // This chunk's products for every row (h_{t-1} · its tiles), then one epilogue per row.
      const InputRows<T> in{s.x ? s.I : 0, s.x ? s.x + static_cast<idx>(t) * B * s.I : nullptr, s.I};
      const Panel<T>& panel = s.x ? pk.fused : pk.forward[0];
      panel_range_rows(panel, kGruBefore ? 2 : G, u0, u1, B, h_prev, H, out, [&](int b, const T* zh, int zs) {
        if (!active(s.lengths, b, t)) return carry(b);
        const idx o = b * static_cast<idx>(H);
        const T* zx = zx_t + b * s.xz_row;
        T* y = y_t + b * static_cast<idx>(s.ldy);
        if constexpr (kLstm)
          lstm_forward_row(H, u0, hs, zx, zh, zs, s.bh, c_prev + o, c_next + o, h_next + o, y,
                           s.training ? acts_row(b) : nullptr);
        else if constexpr (C::kind == CellKind::Gru && C::reset_after)
          gru_forward_row(H, u0, hs, zx, zh, zs, s.bh, h_prev + o, h_next + o, y, acts_row(b), aux_t + o);
        else if constexpr (kGruBefore)
          gru_gates_row(H, u0, hs, zx, zh, zs, s.bh, h_prev + o, aux_t + o, acts_row(b));
        else
          rnn_forward_row<T, C::act>(u0, hs, zx, zh, s.bh, h_next + o, y);
      }, in);
    } else {
      // GRU reset_after=false, phase 2: the candidate's product needs r ⊙ h_{t-1} of every unit.
      panel_range_rows(pk.forward[1], 1, u0, u1, B, aux_t, H, out, [&](int b, const T* zh_n, int) {
        if (!active(s.lengths, b, t)) return;
        const idx o = b * static_cast<idx>(H);
        gru_candidate_row(H, u0, hs, zx_t + b * s.xz_row, zh_n, s.bh, h_prev + o, h_next + o,
                          y_t + b * static_cast<idx>(s.ldy), acts_row(b));
      });
    }
  });
}

// LSTM with projections: two stages per step. Stage 0, per chunk of hidden units: the gates from
// h_{t-1}·W_hhᵀ (K = R), c_t and m_t = o ⊙ tanh c_t (into ws.proj). Stage 1, per chunk of units of
// h: h_t = m_t·W_hrᵀ (K = H), which needs m_t of every hidden unit. A stage has max(chunks, rchunks)
// tasks; those past its own chunk count do nothing.
template <typename T>
void forward_recurrence_proj(const Shared<T>& s, const Packed<T>& pk, const Geometry<T>& geo, int threads) {
  const int B = s.B, H = s.H, R = geo.R, G = s.G;
  const idx GH = static_cast<idx>(G) * H, BH = static_cast<idx>(B) * H, BR = static_cast<idx>(B) * R;
  auto prev_slot = [&](int step, int t) { return s.training ? slot_prev(t, s.reverse) : (step & 1); };
  auto next_slot = [&](int step, int t) { return s.training ? slot_next(t, s.reverse) : ((step + 1) & 1); };
  run_staged<T>(threads, static_cast<long>(s.steps) * 2, std::max(geo.chunks, geo.rchunks), task_scratch(pk, B, G),
                [&](long stage, int chunk, T* out) {
    const int step = static_cast<int>(stage / 2), phase = static_cast<int>(stage % 2);
    const int t = s.reverse ? s.steps - 1 - step : step;
    const T* h_prev = s.ws.states + prev_slot(step, t) * BR;
    T* h_next = s.ws.states + next_slot(step, t) * BR;
    T* m_t = s.ws.proj + (s.training ? t * BH : 0);
    T* y_t = s.y + static_cast<idx>(t) * B * s.ldy;
    if (phase == 0) {
      if (chunk >= geo.chunks) return;
      const int u0 = chunk * geo.Q, u1 = std::min(H, u0 + geo.Q), hs = u1 - u0;
      const T* c_prev = s.ws.cstates + prev_slot(step, t) * BH;
      T* c_next = s.ws.cstates + next_slot(step, t) * BH;
      const T* zx_t = s.xz + t * s.xz_step;
      panel_range_rows(pk.forward[0], G, u0, u1, B, h_prev, R, out, [&](int b, const T* zh, int zs) {
        const idx o = b * static_cast<idx>(H);
        T* ac = s.training ? s.ws.acts + (static_cast<idx>(t) * B + b) * GH : s.acts_step + b * GH;
        if (!active(s.lengths, b, t)) {  // past the sequence's end: carry c, m = 0
          copy_n(c_prev + o + u0, hs, c_next + o + u0);
          zero_n(m_t + o + u0, hs);
          if (s.training)
            for (int g = 0; g < G; ++g) zero_n(ac + g * H + u0, hs);
          return;
        }
        // m_t goes where h_t goes without projections (the row writes it twice: h and y)
        lstm_forward_row(H, u0, hs, zx_t + b * s.xz_row, zh, zs, s.bh, c_prev + o, c_next + o, m_t + o, m_t + o,
                         s.training ? ac : nullptr);
      });
      return;
    }
    if (chunk >= geo.rchunks) return;
    const int p0 = chunk * geo.Q, p1 = std::min(R, p0 + geo.Q), ps = p1 - p0;
    panel_range_rows(pk.proj_forward, 1, p0, p1, B, m_t, H, out, [&](int b, const T* h, int) {
      const idx o = b * static_cast<idx>(R);
      T* y = y_t + b * static_cast<idx>(s.ldy) + p0;
      if (!active(s.lengths, b, t)) {
        copy_n(h_prev + o + p0, ps, h_next + o + p0);
        zero_n(y, ps);
        return;
      }
      copy_n(h, ps, h_next + o + p0);
      copy_n(h, ps, y);
    });
  });
}

template <typename T>
void recurrent_forward_impl(const CellSpec& cell, const ForwardArgs<T>& a) {
  const int steps = a.steps, B = a.batch, I = a.input, H = a.hidden, G = cell.gates();
  const int R = cell.state_size(H);
  const idx GH = static_cast<idx>(G) * H, BH = static_cast<idx>(B) * H, BR = static_cast<idx>(B) * R;
  const bool training = a.workspace != nullptr, projected = cell.proj > 0;
  const Geometry<T> geo(cell, I, H);
  const int team = team_size(a.num_threads);
  const int threads = std::min(team, std::max(geo.chunks, geo.rchunks));
  // Both products in each step's pass over [W_ih | W_hh] (recurrent.h: fuses_input); or the input's
  // for every step at once first, from W_ih's packed rows where the cell has them, else by OpenBLAS.
  // A one-step call for one row (decoding) reads each weight once: its products come from the
  // weights' rows, and the pack is left alone (nothing hashed or read from it); both products then
  // run in the step, as in the fused form.
  const bool one_step = one_row_step(steps, B);
  const bool fused = geo.X > 0 && (B >= kFusedInputMinBatch || one_step);
  const bool packed_input = geo.X > 0 && !fused;

  std::vector<T> private_pack;
  const Packed<T> pk = one_step ? panels_from_weights(cell, geo, a.w_ih, a.w_hh, a.w_hr)
                                : ensure_packed(cell, geo, a.w_ih, a.w_hh, a.w_hr, a.pack, a.pack_size, false,
                                                geo.X > 0, private_pack, team);

  // A missing bias reads as zeros. Fused: every row's input pre-activation is b_ih, to which the
  // step adds both products; from the packed rows, b_ih is added to each row's product.
  std::vector<T> zero_bias((a.b_hh && (a.b_ih || geo.X == 0)) ? 0 : static_cast<size_t>(GH), T(0));
  const T* b_ih = a.b_ih ? a.b_ih : zero_bias.data();
  const T* b_hh = a.b_hh ? a.b_hh : zero_bias.data();
  // Else the input projection for every step at once: xz = x·W_ihᵀ + b_ih, (T·B, G·H).
  Uninit<T> xz(fused ? 0 : static_cast<size_t>(steps) * B * GH);  // every task or piece writes its block
  if (packed_input) {
    // One task per chunk of units: all T·B rows against the chunk's tiles of W_ih's rows, the bias
    // added as each row block leaves the registers. The OpenBLAS call this replaces packed W_ih on
    // every call and ran a 50 × 1024 × 256 product at half our tiles' rate (bench/NOTES.md v12).
    const Panel<T> w_ih_rows{pk.fused.data, geo.X, pk.fused.U, pk.fused.NV, pk.fused.stride};
    team_parallel_for(std::min(team, geo.chunks), geo.chunks, [&](long chunk) {
      const int u0 = static_cast<int>(chunk) * geo.Q, u1 = std::min(H, u0 + geo.Q), hs = u1 - u0;
      alignas(64) T out[8 * 4 * Geometry<T>::Q];  // a block of at most 8 rows × G ≤ 4 gates × Q units
      panel_range_rows(w_ih_rows, G, u0, u1, steps * B, a.x, I, out, [&](int r, const T* z, int zs) {
        T* dst = xz.data() + static_cast<idx>(r) * GH + u0;
        for (int g = 0; g < G; ++g) {
          const T* bias = b_ih + static_cast<idx>(g) * H + u0;
#pragma omp simd
          for (int j = 0; j < hs; ++j) dst[g * H + j] = z[g * zs + j] + bias[j];
        }
      });
    });
  } else if (!fused) {  // each piece starts from the bias (or zero) and adds its product
    const blas::GemmPieces<T> proj{false, true, steps * B, static_cast<int>(GH), I, T(1), T(1), a.x, I, a.w_ih, I,
                                   xz.data(), static_cast<int>(GH)};
    team_parallel_for(team, proj.count(), [&](long piece) {
      int r0, r1, c0, c1;
      proj.bounds(piece, &r0, &r1, &c0, &c1);
      for (int r = r0; r < r1; ++r) {
        T* dst = xz.data() + static_cast<idx>(r) * GH;
        if (a.b_ih) copy_n(a.b_ih + c0, c1 - c0, dst + c0);
        else zero_n(dst + c0, c1 - c0);
      }
      proj.run(piece);
    });
  }

  // State storage: the training workspace, or ping-pong slots (and scratch) for inference.
  Workspace<T> ws;
  std::vector<T> scratch;
  const bool lstm = cell.has_cell_state(), gru = cell.kind == CellKind::Gru;
  if (training) {
    ws = carve(cell, a.workspace, steps, B, H);
  } else {
    scratch.assign(static_cast<size_t>(2 * BR + BH * ((lstm ? 2 : 0) + (gru ? 1 : 0) + (projected ? 1 : 0))), T(0));
    ws.states = scratch.data();                                    // 2 slots
    ws.cstates = lstm ? scratch.data() + 2 * BR : nullptr;         // 2 slots
    ws.aux = gru ? scratch.data() + 2 * BR : nullptr;              // one step of aux
    ws.proj = projected ? scratch.data() + 2 * BR + 2 * BH : nullptr;   // one step of m
  }
  std::vector<T> acts_step(training ? 0 : static_cast<size_t>(B) * GH);
  {
    const int t0 = a.reverse ? steps - 1 : 0;
    const int first = training ? slot_prev(t0, a.reverse) : 0;
    T* h = ws.states + first * BR;
    if (a.h0) copy_n(a.h0, BR, h); else zero_n(h, BR);
    if (lstm) {
      T* c = ws.cstates + first * BH;
      if (a.c0) copy_n(a.c0, BH, c); else zero_n(c, BH);
    }
  }
  const Shared<T> s{steps, B, H, G, a.reverse, training, a.lengths,
                    fused ? b_ih : xz.data(), fused ? 0 : B * GH, fused ? 0 : GH,
                    fused ? a.x : nullptr, I,
                    b_hh, a.y, a.ldy, ws, acts_step.data()};
  if (projected)
    forward_recurrence_proj(s, pk, geo, threads);
  else
    with_cell(cell, [&](auto c) { forward_recurrence<T, decltype(c)>(s, pk, geo, threads); });

  const int last = a.reverse ? 0 : steps - 1;
  const int final_slot = training ? slot_next(last, a.reverse) : (steps & 1);
  copy_n(ws.states + final_slot * BR, BR, a.h_n);
  if (lstm && a.c_n) copy_n(ws.cstates + final_slot * BH, BH, a.c_n);
}

// ============================================================================================
// Backward through time
// ============================================================================================
template <typename T>
struct BackShared {
  int steps, B, H, G;
  bool reverse;
  const int32_t* lengths;
  Workspace<T> ws;
  const T* dy;
  int ldy;
  T* dzx;    // (T, B, G·H)
  T* dzh;    // (T, B, G·H): dzx, or its own array for GRU reset_after
  T* dh;     // 2 × (B, H) ping-pong: gradient reaching h_t / h_{t-1}
  T* dc;     // (B, H) LSTM
};

template <typename T, typename C>
void backward_recurrence(const BackShared<T>& s, const Packed<T>& pk, const Geometry<T>& geo, int threads) {
  constexpr bool kGruBefore = C::kind == CellKind::Gru && !C::reset_after;
  constexpr bool kGruAfter = C::kind == CellKind::Gru && C::reset_after;
  const int B = s.B, H = s.H, G = s.G;
  const idx GH = static_cast<idx>(G) * H, BH = static_cast<idx>(B) * H;
  const Panel<T>& pb = pk.backward;  // K = G·H, U = Q

  // Per backward step: the pointwise gradients of each chunk, then the product dz_t · W_hh, which
  // needs dz_t of every unit (GRU with reset_after=false: d(r ⊙ h) through W_hn, then the r and u
  // blocks). The next step's pointwise gradients of a chunk need only this step's dh_{t-1} of the
  // same chunk, so they run in the epilogue of its last product, row by row while the row is in L1:
  // one stage (one wait) per product phase, plus a first stage for step 0's pointwise gradients.
  if (s.steps <= 0) return;
  const int products = kGruBefore ? 2 : 1;
  const std::size_t scratch = static_cast<std::size_t>(8) * geo.Q;
  struct StepAt {
    int t;
    const T* dh_in;  // gradient reaching h_t from later steps
    T* dh_out;       // gradient reaching h_{t-1}
    T* dzx;
    T* dzh;
  };
  auto step_at = [&](int r) {
    const int step = s.steps - 1 - r;  // the forward processing step this backward step undoes
    const int t = s.reverse ? s.steps - 1 - step : step;
    return StepAt{t, s.dh + (r & 1) * BH, s.dh + ((r + 1) & 1) * BH, s.dzx + static_cast<idx>(t) * B * GH,
                  s.dzh + static_cast<idx>(t) * B * GH};
  };
  // Pointwise gradients of row b, units [u0, u0 + hs), backward step r.
  auto pointwise = [&](const StepAt& at, int b, int u0, int hs) {
    const int t = at.t;
    const idx o = b * static_cast<idx>(H);
    T* dz = at.dzx + b * GH;
    if (!active(s.lengths, b, t)) {  // the state was carried through: so is its gradient
      for (int g = 0; g < G; ++g) zero_n(dz + g * H + u0, hs);
      if (kGruAfter) for (int g = 0; g < G; ++g) zero_n(at.dzh + b * GH + g * H + u0, hs);
      copy_n(at.dh_in + o + u0, hs, at.dh_out + o + u0);
      return;
    }
    const T* dy = s.dy + (static_cast<idx>(t) * B + b) * s.ldy;
    const T* ac = s.ws.acts ? s.ws.acts + (static_cast<idx>(t) * B + b) * GH : nullptr;
    if constexpr (C::kind == CellKind::Lstm)
      lstm_backward_row(H, u0, hs, dy, at.dh_in + o, ac, s.ws.cstates + slot_next(t, s.reverse) * BH + o,
                        s.ws.cstates + slot_prev(t, s.reverse) * BH + o, s.dc + o, dz, at.dh_out + o);
    else if constexpr (C::kind == CellKind::Gru)
      gru_backward_row<T, C::reset_after>(H, u0, hs, dy, at.dh_in + o, ac,
                                          s.ws.states + slot_prev(t, s.reverse) * BH + o,
                                          s.ws.aux + static_cast<idx>(t) * BH + o, dz, at.dzh + b * GH, at.dh_out + o);
    else
      rnn_backward_row<T, C::act>(u0, hs, dy, at.dh_in + o, s.ws.states + slot_next(t, s.reverse) * BH + o, dz,
                                  at.dh_out + o);
  };
  run_staged<T>(threads, 1 + static_cast<long>(s.steps) * products, geo.chunks, scratch,
                [&](long stage, int chunk, T* out) {
    const int u0 = chunk * geo.Q, u1 = std::min(H, u0 + geo.Q), hs = u1 - u0;
    if (stage == 0) {
      const StepAt first = step_at(0);
      for (int b = 0; b < B; ++b) pointwise(first, b, u0, hs);
      return;
    }
    const int r = static_cast<int>((stage - 1) / products), phase = static_cast<int>((stage - 1) % products);
    const StepAt at = step_at(r);
    const int t = at.t;
    const bool has_next = r + 1 < s.steps;
    const StepAt next = has_next ? step_at(r + 1) : at;
    // dh_{t-1}[:, chunk] += dz_t · W_hh[:, chunk] over rows [k0, k0+K) of W_hh.
    auto product = [&](const T* a, int k0, int K, auto&& epilogue) {
      if (!pb.data) {  // one row, one step: from W_hh's own rows
        columns_product(pb.from[0], k0, K, u0, u1, B, a + k0, GH, out, geo.Q);
        for (int b = 0; b < B; ++b) epilogue(b, out + b * geo.Q, geo.Q);
        return;
      }
      Panel<T> sub = pb;
      sub.K = K;
      sub.data = pb.data + static_cast<idx>(k0) * geo.Q;  // the same rows of every tile
      panel_range_rows(sub, 1, u0, u1, B, a + k0, GH, out, epilogue);
    };
    // The last product's epilogue: this row's dh_{t-1} is complete, so the next step's pointwise
    // gradients of the row can follow.
    auto add_to_dh = [&](int b, const T* v, int) {
      if (active(s.lengths, b, t)) add_row(u0, hs, v, at.dh_out + b * static_cast<idx>(H));
      if (has_next) pointwise(next, b, u0, hs);
    };
    if constexpr (kGruBefore) {
      if (phase == 0) {  // d(r ⊙ h_{t-1}) = dn_pre·W_hn needs dn_pre of every unit; then the r gate
        const T* h_prev = s.ws.states + slot_prev(t, s.reverse) * BH;
        product(at.dzx, 2 * H, H, [&](int b, const T* drh, int) {
          if (!active(s.lengths, b, t)) return;
          const idx o = b * static_cast<idx>(H);
          gru_reset_row(u0, hs, drh, h_prev + o, s.ws.acts + (static_cast<idx>(t) * B + b) * GH, at.dzx + b * GH,
                        at.dh_out + o);
        });
      } else {
        product(at.dzx, 0, 2 * H, add_to_dh);  // the r and u blocks through W_hr, W_hz
      }
    } else {
      product(at.dzh, 0, G * H, add_to_dh);
    }
  });
}

// LSTM with projections, three stages per backward step. Stage 0, per chunk of units of h: the
// total gradient reaching h_t, dht = dy_t + (carried), saved for dW_hr. Stage 1, per chunk of
// hidden units: dm = dht·W_hr (K = R) and the cell's pointwise gradients. Stage 2, per chunk of
// units of h: dh_{t-1} = dz_t·W_hh (K = G·H).
template <typename T>
void backward_recurrence_proj(const BackShared<T>& s, const Packed<T>& pk, const Geometry<T>& geo, int threads,
                              T* dht) {
  const int B = s.B, H = s.H, R = geo.R, G = s.G;
  const idx GH = static_cast<idx>(G) * H, BH = static_cast<idx>(B) * H, BR = static_cast<idx>(B) * R;
  const std::size_t scratch = static_cast<std::size_t>(8) * geo.Q;
  run_staged<T>(threads, static_cast<long>(s.steps) * 3, std::max(geo.chunks, geo.rchunks), scratch,
                [&](long stage, int chunk, T* out) {
    const int r = static_cast<int>(stage / 3), phase = static_cast<int>(stage % 3);
    const int step = s.steps - 1 - r;
    const int t = s.reverse ? s.steps - 1 - step : step;
    const T* dh_in = s.dh + (r & 1) * BR;
    T* dh_out = s.dh + ((r + 1) & 1) * BR;
    T* dht_t = dht + static_cast<idx>(t) * BR;
    T* dz_t = s.dzx + static_cast<idx>(t) * B * GH;
    if (phase == 1) {
      if (chunk >= geo.chunks) return;
      const int u0 = chunk * geo.Q, u1 = std::min(H, u0 + geo.Q), hs = u1 - u0;
      const T* c = s.ws.cstates + slot_next(t, s.reverse) * BH;
      const T* c_prev = s.ws.cstates + slot_prev(t, s.reverse) * BH;
      panel_range_rows(pk.proj_backward, 1, u0, u1, B, dht_t, R, out, [&](int b, const T* dm, int) {
        T* dz = dz_t + b * GH;
        if (!active(s.lengths, b, t)) {  // the state was carried through: so is its gradient
          for (int g = 0; g < G; ++g) zero_n(dz + g * H + u0, hs);
          return;
        }
        const idx o = b * static_cast<idx>(H);
        lstm_backward_row<T, true>(H, u0, hs, dm, nullptr, s.ws.acts + (static_cast<idx>(t) * B + b) * GH, c + o,
                                   c_prev + o, s.dc + o, dz, nullptr);
      });
      return;
    }
    if (chunk >= geo.rchunks) return;
    const int p0 = chunk * geo.Q, p1 = std::min(R, p0 + geo.Q), ps = p1 - p0;
    if (phase == 0) {
      for (int b = 0; b < B; ++b) {
        const idx o = b * static_cast<idx>(R) + p0;
        if (!active(s.lengths, b, t)) {
          zero_n(dht_t + o, ps);
          copy_n(dh_in + o, ps, dh_out + o);
          continue;
        }
        const T* dy = s.dy + (static_cast<idx>(t) * B + b) * s.ldy + p0;
#pragma omp simd
        for (int j = 0; j < ps; ++j) dht_t[o + j] = dy[j] + dh_in[o + j];
        zero_n(dh_out + o, ps);
      }
      return;
    }
    panel_range_rows(pk.backward, 1, p0, p1, B, dz_t, GH, out, [&](int b, const T* v, int) {
      if (active(s.lengths, b, t)) add_row(p0, ps, v, dh_out + b * static_cast<idx>(R));
    });
  });
}

template <typename T>
void recurrent_backward_impl(const CellSpec& cell, const BackwardArgs<T>& a) {
  const int steps = a.steps, B = a.batch, I = a.input, H = a.hidden, G = cell.gates();
  const int R = cell.state_size(H);
  const idx GH = static_cast<idx>(G) * H, BH = static_cast<idx>(B) * H, BR = static_cast<idx>(B) * R;
  const bool gru_reset_before_product = cell.kind == CellKind::Gru && !cell.reset_after;
  const bool gru_reset_after_product = cell.kind == CellKind::Gru && cell.reset_after;
  const bool proj = cell.proj > 0;
  const Workspace<T> ws = carve(cell, const_cast<T*>(a.workspace), steps, B, H);
  const Geometry<T> geo(cell, I, H);
  const int team = team_size(a.num_threads);
  const int threads = std::min(team, std::max(geo.chunks, geo.rchunks));

  // One row, one step (a training step while decoding): nothing to reuse a pack for, so none is
  // hashed, read or built; the product reads W_hh's rows (columns_product), with the same bits.
  const bool one_step = one_row_step(steps, B) && !proj;
  std::vector<T> private_pack;
  const Packed<T> pk =
      one_step ? panels_from_weights(cell, geo, a.w_ih, a.w_hh, a.w_hr)
               : ensure_packed(cell, geo, a.w_ih, a.w_hh, a.w_hr, a.pack, a.pack_size, true, false, private_pack, team);

  // dzx: gradient w.r.t. the input pre-activation (x·W_ihᵀ + b_ih), (T, B, G·H).
  // dzh: w.r.t. the recurrent pre-activation (h·W_hhᵀ + b_hh). They differ only for GRU with
  // reset_after, where r scales the n block of the recurrent part.
  Uninit<T> dzx(static_cast<size_t>(steps) * B * GH);  // phase 1 writes every element of each step
  Uninit<T> dzh_store(gru_reset_after_product ? dzx.size() : 0);
  T* dzh = gru_reset_after_product ? dzh_store.data() : dzx.data();
  std::vector<T> dh_buf(2 * static_cast<size_t>(BR), T(0)), dc(cell.has_cell_state() ? BH : 0, T(0));
  if (a.dh_n) copy_n(a.dh_n, BR, dh_buf.data());
  if (cell.has_cell_state() && a.dc_n) copy_n(a.dc_n, BH, dc.data());

  const BackShared<T> s{steps, B, H, G, a.reverse, a.lengths, ws, a.dy, a.ldy, dzx.data(), dzh, dh_buf.data(),
                        dc.data()};
  Uninit<T> dht(proj ? static_cast<size_t>(steps) * BR : 0);  // stage 0 writes every element of each step
  if (proj)
    backward_recurrence_proj(s, pk, geo, threads, dht.data());
  else
    with_cell(cell, [&](auto c) { backward_recurrence<T, decltype(c)>(s, pk, geo, threads); });

  copy_n(dh_buf.data() + (steps & 1) * BR, BR, a.dh0);
  if (cell.has_cell_state() && a.dc0) copy_n(dc.data(), BH, a.dc0);

  // Time-parallel gradients: one GEMM each over all T·B rows, all in one pool of pieces.
  const int rows = steps * B, gh = static_cast<int>(GH);
  const T* h_prev_all = ws.states + (a.reverse ? BR : 0);  // h_{t-1} of every t, (T, B, R)
  std::vector<T> ones(a.db_ih || a.db_hh ? static_cast<size_t>(rows) : 0, T(1));  // column sums as Aᵀ·1
  std::vector<blas::GemmPieces<T>> products;
  auto product = [&](bool ta, int M, int N, const T* A, int lda, const T* Bm, int ldb, T beta, T* C, int ldc) {
    const int K = ta ? rows : gh;  // dX contracts the gates; every weight gradient the T·B rows
    products.push_back({ta, false, M, N, K, T(1), beta, A, lda, Bm, ldb, C, ldc});
  };
  product(false, rows, I, dzx.data(), gh, a.w_ih, I, a.accumulate_dx ? T(1) : T(0), a.dx, I);
  product(true, gh, I, dzx.data(), gh, a.x, I, T(0), a.dw_ih, I);
  if (gru_reset_before_product) {  // the n block's recurrent input was r ⊙ h_{t-1}, saved in aux
    product(true, 2 * H, H, dzx.data(), gh, h_prev_all, H, T(0), a.dw_hh, H);
    product(true, H, H, dzx.data() + 2 * H, gh, ws.aux, H, T(0), a.dw_hh + 2 * static_cast<idx>(H) * H, H);
  } else {
    product(true, gh, R, dzh, gh, h_prev_all, R, T(0), a.dw_hh, R);
  }
  if (proj)  // h_t = m_t·W_hrᵀ: dW_hr = Σ_t dht_tᵀ·m_t, one GEMM over the saved m_t
    product(true, R, H, dht.data(), R, ws.proj, H, T(0), a.dw_hr, H);
  // Both biases enter the same pre-activation unless GRU scales the recurrent part: then one sum.
  const bool one_bias_sum = a.db_ih && a.db_hh && dzh == dzx.data();
  if (a.db_ih) product(true, gh, 1, dzx.data(), gh, ones.data(), 1, T(0), a.db_ih, 1);
  if (a.db_hh && !one_bias_sum) product(true, gh, 1, dzh, gh, ones.data(), 1, T(0), a.db_hh, 1);
  blas::parallel_gemms(products.data(), static_cast<int>(products.size()), team);
  if (one_bias_sum) copy_n(a.db_ih, gh, a.db_hh);
}

}  // namespace

template <typename T>
void recurrent_forward(const CellSpec& cell, const ForwardArgs<T>& a) { recurrent_forward_impl(cell, a); }
template <typename T>
void recurrent_backward(const CellSpec& cell, const BackwardArgs<T>& a) { recurrent_backward_impl(cell, a); }

void activation(int fn, bool vector_form, const float* x, float* y, std::ptrdiff_t n) {
  std::ptrdiff_t done = 0;
  if (vector_form) {  // as the LSTM rows' explicit vector code computes them
    for (; done < n; done += Simd<float>::W) {
      const int lanes = static_cast<int>(std::min<std::ptrdiff_t>(Simd<float>::W, n - done));
      const int end = for_each_vector(lanes, [&](int, auto load, auto store) {
        const FloatVec v = load(x + done);
        store(y + done, fn == 0 ? exp_(v) : fn == 1 ? tanh_act(v) : sigmoid(v));
      });
      if (end < lanes) break;  // a partial vector without masks: the scalar loop below
    }
  }
#pragma omp simd
  for (std::ptrdiff_t i = done; i < n; ++i) y[i] = fn == 0 ? exp_(x[i]) : fn == 1 ? tanh_act(x[i]) : sigmoid(x[i]);
}

template void recurrent_forward<float>(const CellSpec&, const ForwardArgs<float>&);
template void recurrent_forward<double>(const CellSpec&, const ForwardArgs<double>&);
template void recurrent_backward<float>(const CellSpec&, const BackwardArgs<float>&);
template void recurrent_backward<double>(const CellSpec&, const BackwardArgs<double>&);

}  // namespace SK_CPU_CAPABILITY
}  // namespace seqkernels
