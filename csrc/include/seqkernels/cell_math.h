// Gate activations, their derivatives and the pointwise part of each cell, written once and shared
// by the C++ kernels (csrc/rnn) and the CUDA kernels (cuda/rnn). Equations: docs/ops.md §1.
//
// Derivatives are taken from saved *outputs* (dsigmoid(y) = y(1−y), dtanh(y) = 1−y²), so the
// forward pass saves post-activation gates and backward never re-evaluates an exponential.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "seqkernels/common.h"

#if defined(__AVX512F__) && !defined(__CUDACC__)
#include <immintrin.h>
#endif

// Every function here has internal linkage (static). The CPU kernels are compiled once
// per instruction set (cpu_capability.h); with ordinary `inline` functions the linker keeps ONE copy
// of each — compiled for whichever ISA it met first — and every kernel copy calls it out of line:
// the pointwise loops stop vectorising, and a plain x86-64 CPU may be handed AVX-512 code.
#if defined(__CUDACC__)
#define SK_CELL_FN static __host__ __device__ __forceinline__
#else
#define SK_CELL_FN static inline
#endif

namespace seqkernels {

// exp and tanh in the working type. On the device: CUDA's expf/tanhf. On the host, float uses the
// branch-free forms below so that the pointwise loops vectorise (libm's scalar expf/tanhf made the
// gate math cost more than the GEMMs); double (used to check kernels against the float64
// reference) uses libm. Both float forms are within 2 ulp over the whole range (tested).
#if defined(__CUDA_ARCH__)
SK_CELL_FN float exp_(float x) { return expf(x); }
SK_CELL_FN float tanh_(float x) { return tanhf(x); }
#else
// The float forms are templates over F = float or a GCC float vector (vector_size): the same
// operations in the same order either way, so the kernels' explicit vector code (recurrent.cpp) and
// scalar loops give the same bits for a unit.
template <typename F> static inline F splat(float v) { return F{} + v; }
// 2^n for integer-valued n in [-126, 127] (NaN: 1, so a NaN input stays NaN through the polynomial;
// converting NaN to int and shifting the result would be undefined behaviour).
template <typename F> static inline F exp2_int(F n) {
  if constexpr (sizeof(F) == sizeof(float)) {
    return __builtin_bit_cast(F, ((n == n ? static_cast<int>(n) : 0) + 127) << 23);
  } else {
    typedef int I __attribute__((vector_size(sizeof(F))));
    return __builtin_bit_cast(F, (__builtin_convertvector(n, I) + 127) << 23);
  }
}
template <typename F> static inline F exp_core(F x) {
  // exp(x) = 2^n · e^r, n = round(x / ln 2), |r| <= ln2 / 2; Cephes-style minimax polynomial for e^r.
  x = x < -87.0f ? splat<F>(-87.0f) : (x > 88.0f ? splat<F>(88.0f) : x);  // keeps 2^n a normal float
  const F n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  const F r = (x - n * 0.693359375f) - n * -2.12194440e-4f;           // ln 2 split in two parts
  F p = splat<F>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * exp2_int(n);
}
template <typename F> static inline F tanh_core(F x) {
  const F ax = x < 0.0f ? -x : x;
  // |x| < 0.625: odd minimax polynomial (no cancellation near 0); else (1 − e^{−2|x|}) / (1 + e^{−2|x|}).
  const F z = x * x;
  F p = splat<F>(-5.70498872745e-3f);
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const F small = x + x * z * p;
  const F e = exp_core(-2.0f * ax);
  const F big = (1.0f - e) / (1.0f + e);
  return ax < 0.625f ? small : (x < 0.0f ? -big : big);
}
// Scalar loops: exp_ and tanh_ are never inlined into them (inlined, their selects sometimes stay
// branches and the loop stays scalar, depending on what else the translation unit holds); with
// `declare simd` the vectoriser calls their SIMD clones, one call per vector of units.
#pragma omp declare simd notinbranch
static __attribute__((noinline, unused)) float exp_(float x) { return exp_core(x); }
#pragma omp declare simd notinbranch
static __attribute__((noinline, unused)) float tanh_(float x) { return tanh_core(x); }
// Explicit vector code (a GCC float vector): inlined, so no call clobbers the registers.
template <typename F>
using if_float_vector = std::enable_if_t<std::is_same_v<std::decay_t<decltype(std::declval<F>()[0])>, float>>;
template <typename F, typename = if_float_vector<F>>
__attribute__((always_inline)) static inline F exp_(F x) { return exp_core(x); }
template <typename F, typename = if_float_vector<F>>
__attribute__((always_inline)) static inline F tanh_(F x) { return tanh_core(x); }

#if defined(__AVX512F__) && !defined(__CUDACC__)
// AVX-512: sigmoid and tanh of one 16-float vector, for the explicit vector code of the LSTM rows
// (the gate math costs ~20 % of the recurrence, and the forms above spend most of theirs on the
// clamp, the rounding and the 2^n of exp and on selects). Here
//   e^s = 2^n · e^r,  n a multiple of 1/16 (|r| ≤ ln2/32),  2^n = 2^⌊n⌋ · 2^(j/16)
// with 2^(j/16) from a 16-entry table in registers (vpermps indexes it with the low 4 bits of the
// rounding sum's bits), 2^⌊n⌋ applied by vscalefps, and e^r − 1 = r + r²/2 + r³/6 (error ≤ r⁴/24 ≈
// 1e-8). sigmoid adds the table's rounding error back (a second table), which keeps it within the
// generic form's accuracy; tanh does not need it. Both within the ulp bounds of the tests.
// GCC 12 warns (falsely) that the unmasked intrinsics' undefined pass-through operand may be used
// uninitialized (GCC bug 105593); the masked forms with a full mask compile to the same instructions.
namespace avx512_math {
constexpr __mmask16 kAll = 0xFFFF;
// float(2^(j/16)) and float(2^(j/16) − float(2^(j/16))), j = 0..15.
alignas(64) static constexpr float kExp2Hi[16] = {
    0x1.000000p+0f, 0x1.0b5586p+0f, 0x1.172b84p+0f, 0x1.2387a6p+0f, 0x1.306fe0p+0f, 0x1.3dea64p+0f,
    0x1.4bfdaep+0f, 0x1.5ab07ep+0f, 0x1.6a09e6p+0f, 0x1.7a1148p+0f, 0x1.8ace54p+0f, 0x1.9c4918p+0f,
    0x1.ae89fap+0f, 0x1.c199bep+0f, 0x1.d5818ep+0f, 0x1.ea4afap+0f};
alignas(64) static constexpr float kExp2Lo[16] = {
    0x0.0p+0f,       0x1.9f3122p-25f,  -0x1.c15742p-27f, 0x1.ceac48p-25f,  0x1.4636e2p-25f,  0x1.824684p-25f,
    -0x1.593abcp-25f, -0x1.5bd5ecp-27f, 0x1.9fcef4p-26f,  -0x1.829fd0p-25f, 0x1.15506ep-27f,  0x1.51f848p-27f,
    -0x1.a94b14p-26f, -0x1.3d56b2p-27f, -0x1.822dbcp-27f, 0x1.52486cp-27f};

// e^s = (2^n_int · table) · (1 + expm1_r), s = K·x for K = −1 or −2 (folded into the rounding).
struct ExpParts {
  __m512 rounding_sum;  // K·x·log2(e) + 1.5·2^19: its last mantissa bit is worth 1/16, so its low
                        // 4 bits are j (two's complement) and sum − 1.5·2^19 is n rounded to 1/16
  __m512 n, scale, expm1_r;
};
// table[j] · 2^⌊n⌋ for each lane (j: the rounding sum's low 4 bits, which vpermps reads).
static inline __m512 scaled_entry(const ExpParts& p, const float* table) {
  const __m512 entry = _mm512_maskz_permutexvar_ps(kAll, _mm512_castps_si512(p.rounding_sum), _mm512_load_ps(table));
  return _mm512_maskz_scalef_ps(kAll, entry, p.n);
}
template <int K>
static inline ExpParts exp_parts(__m512 x) {
  const __m512 magic = _mm512_set1_ps(786432.0f);
  ExpParts p;
  p.rounding_sum = _mm512_fmadd_ps(x, _mm512_set1_ps(K * 1.44269504088896341f), magic);
  p.n = _mm512_sub_ps(p.rounding_sum, magic);
  // r = s − n·ln2, ln2 in two parts (the first exact in n·ln2_hi for |n| < 2^8 with 4 fraction bits)
  const __m512 s = K == -1 ? _mm512_sub_ps(_mm512_setzero_ps(), x) : _mm512_mul_ps(x, _mm512_set1_ps(float(K)));
  __m512 r = _mm512_fnmadd_ps(p.n, _mm512_set1_ps(0x1.62e4p-1f), s);
  r = _mm512_fnmadd_ps(p.n, _mm512_set1_ps(0x1.7f7d1cp-20f), r);
  p.scale = scaled_entry(p, kExp2Hi);
  __m512 q = _mm512_fmadd_ps(r, _mm512_set1_ps(1.0f / 6), _mm512_set1_ps(0.5f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f));
  p.expm1_r = _mm512_mul_ps(q, r);
  return p;
}
// 1 / (1 + e^−x). x is clamped to [−88, 88] first (NaN kept): beyond it r would lose all meaning.
static inline __m512 sigmoid(__m512 x) {
  x = _mm512_maskz_min_ps(kAll, _mm512_set1_ps(88.0f), _mm512_maskz_max_ps(kAll, _mm512_set1_ps(-88.0f), x));
  const ExpParts p = exp_parts<-1>(x);
  const __m512 scale_lo = scaled_entry(p, kExp2Lo);
  // e = scale + (scale·expm1_r + scale_lo·(1 + expm1_r)): one significant rounding
  const __m512 e = _mm512_add_ps(
      p.scale, _mm512_fmadd_ps(p.scale, p.expm1_r, _mm512_fmadd_ps(scale_lo, p.expm1_r, scale_lo)));
  return _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(e, _mm512_set1_ps(1.0f)));
}
// |x| < 0.625: the odd polynomial of tanh_core; else (1 − e)/(1 + e), e = e^−2|x| (|x| clamped to 9,
// where tanh is 1 in float; NaN kept).
static inline __m512 tanh(__m512 x) {
  const __m512 ax = _mm512_maskz_min_ps(kAll, _mm512_set1_ps(9.0f), _mm512_abs_ps(x));
  const __m512 z = _mm512_mul_ps(x, x);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(-5.70498872745e-3f), z, _mm512_set1_ps(2.06390887954e-2f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-5.37397155531e-2f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.33314422036e-1f));
  p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-3.33332819422e-1f));
  const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(x, z), p, x);
  const ExpParts q = exp_parts<-2>(ax);
  const __m512 e = _mm512_fmadd_ps(q.scale, q.expm1_r, q.scale);
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 big = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
  const __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN));
  const __m512 signed_big = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(big), sign));
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.625f), _CMP_LT_OQ), signed_big, small);
}
}  // namespace avx512_math
#endif
#endif
SK_CELL_FN double exp_(double x) { return exp(x); }
SK_CELL_FN double tanh_(double x) { return tanh(x); }

// Constants are plain literals (not T(1)) so that these also take float vectors.
template <typename T> SK_CELL_FN T sigmoid(T x) { return 1 / (1 + exp_(-x)); }
template <typename T> SK_CELL_FN T tanh_act(T x) { return tanh_(x); }
#if defined(__AVX512F__) && !defined(__CUDACC__)
// A 16-float vector (the LSTM rows' FloatVec) takes the AVX-512 forms (exact overloads: chosen over
// the templates above).
typedef float Float16Vec __attribute__((vector_size(64)));
static inline Float16Vec sigmoid(Float16Vec x) { return avx512_math::sigmoid(x); }
static inline Float16Vec tanh_act(Float16Vec x) { return avx512_math::tanh(x); }
#endif
template <typename T> SK_CELL_FN T relu(T x) { return x > T(0) ? x : T(0); }
template <typename T> SK_CELL_FN T dsigmoid_from_output(T y) { return y * (1 - y); }
template <typename T> SK_CELL_FN T dtanh_from_output(T y) { return 1 - y * y; }
template <typename T> SK_CELL_FN T drelu_from_output(T y) { return y > T(0) ? T(1) : T(0); }

enum class Activation : int { Tanh = 0, Relu = 1 };

template <typename T> SK_CELL_FN T activate(Activation a, T x) {
  return a == Activation::Tanh ? tanh_act(x) : relu(x);
}
template <typename T> SK_CELL_FN T dactivate_from_output(Activation a, T y) {
  return a == Activation::Tanh ? dtanh_from_output(y) : drelu_from_output(y);
}

// ---- LSTM (gate blocks i, f, g, o) ---------------------------------------------------------
// zx_*: input part of the pre-activation incl. b_ih; zh_*: recurrent part incl. b_hh.
template <typename T> struct LstmGates { T i, f, g, o; };

template <typename T>
SK_CELL_FN LstmGates<T> lstm_gates(T zi, T zf, T zg, T zo) {
  return {sigmoid(zi), sigmoid(zf), tanh_act(zg), sigmoid(zo)};
}
// c_t = f ⊙ c_{t-1} + i ⊙ g;  h_t = o ⊙ tanh(c_t)
template <typename T> SK_CELL_FN T lstm_cell_state(const LstmGates<T>& a, T c_prev) {
  return a.f * c_prev + a.i * a.g;
}
template <typename T> SK_CELL_FN T lstm_hidden(const LstmGates<T>& a, T c) { return a.o * tanh_act(c); }

// Backward of one unit. In: dh, dc (total gradients reaching h_t, c_t), saved gates, c_t, c_{t-1}.
// Out: pre-activation gradients dz (i, f, g, o) and dc_{t-1}.
template <typename T>
SK_CELL_FN void lstm_unit_backward(T dh, T dc, const LstmGates<T>& a, T c, T c_prev,
                                       LstmGates<T>* dz, T* dc_prev) {
  const T tc = tanh_act(c);
  const T d_o = dh * tc;
  dc += dh * a.o * dtanh_from_output(tc);
  dz->i = dc * a.g * dsigmoid_from_output(a.i);
  dz->f = dc * c_prev * dsigmoid_from_output(a.f);
  dz->g = dc * a.i * dtanh_from_output(a.g);
  dz->o = d_o * dsigmoid_from_output(a.o);
  *dc_prev = dc * a.f;
}

// ---- GRU (gate blocks r, z, n; u below is PyTorch's z, the update gate) ----------------------
// reset_after=true : n = tanh(zx_n + r ⊙ hn),  hn = W_hn h + b_hn
// reset_after=false: n = tanh(zx_n + hn),      hn = W_hn (r ⊙ h) + b_hn
// h_t = (1 − u) ⊙ n + u ⊙ h_{t-1}
template <typename T> SK_CELL_FN T gru_candidate(T zx_n, T r, T hn, bool reset_after) {
  return tanh_act(reset_after ? zx_n + r * hn : zx_n + hn);
}
template <typename T> SK_CELL_FN T gru_hidden(T u, T n, T h_prev) { return (T(1) - u) * n + u * h_prev; }

// Gradients through the update and candidate for one unit, given dh (total into h_t).
// Out: du_pre (pre-activation of u), dn_pre (pre-activation of n), and the direct part dh ⊙ u of dh_{t-1}.
template <typename T>
SK_CELL_FN void gru_unit_backward_un(T dh, T u, T n, T h_prev, T* du_pre, T* dn_pre, T* dh_prev_direct) {
  *dn_pre = dh * (T(1) - u) * dtanh_from_output(n);
  *du_pre = dh * (h_prev - n) * dsigmoid_from_output(u);  // ∂h/∂u = h_{t-1} − n
  *dh_prev_direct = dh * u;
}

// ---- Elman RNN ------------------------------------------------------------------------------
template <typename T> SK_CELL_FN T rnn_hidden(Activation act, T zx, T zh) { return activate(act, zx + zh); }
template <typename T> SK_CELL_FN T rnn_unit_backward(Activation act, T dh, T h) {
  return dh * dactivate_from_output(act, h);
}

}  // namespace seqkernels
