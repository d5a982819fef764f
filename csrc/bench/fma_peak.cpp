// The register-resident FMA loop of fma_peak.h, compiled once per CPU capability. Enough
// independent accumulators keep every FMA pipe busy despite the instruction's latency (latency 4
// × 2 pipes needs 8 chains on current x86 cores; 16 with 32 vector registers, 12 with 16).
#include <cstdint>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "seqkernels/cpu_capability.h"
#include "seqkernels/internal/cpu_kernels.h"
#include "seqkernels/fma_peak.h"

namespace seqkernels {
namespace SK_CPU_CAPABILITY {
namespace {

#if defined(__AVX512F__)
using Vec = __m512;
constexpr int kLanes = 16, kAccumulators = 16;
constexpr bool kFused = true;
inline Vec splat(float v) { return _mm512_set1_ps(v); }
inline Vec mul_add(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
#elif defined(__AVX2__) && defined(__FMA__)
using Vec = __m256;
constexpr int kLanes = 8, kAccumulators = 12;
constexpr bool kFused = true;
inline Vec splat(float v) { return _mm256_set1_ps(v); }
inline Vec mul_add(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
#else
// Plain x86-64 (SSE2) or another architecture: GCC vector types; the compiler contracts a * b + c
// into an FMA only where the target has one.
typedef float Vec __attribute__((vector_size(16)));
constexpr int kLanes = 4, kAccumulators = 12;
#if defined(__FMA__) || defined(__aarch64__)
constexpr bool kFused = true;
#else
constexpr bool kFused = false;
#endif
inline Vec splat(float v) { return Vec{v, v, v, v}; }
inline Vec mul_add(Vec a, Vec b, Vec c) { return a * b + c; }
inline Vec add(Vec a, Vec b) { return a + b; }
#endif

}  // namespace

FmaLoopShape fma_loop_shape() { return {kLanes, kAccumulators, kFused}; }

float fma_loop(std::int64_t iterations, float multiplier, float addend) {
  Vec acc[kAccumulators];
  for (int k = 0; k < kAccumulators; ++k) acc[k] = splat(1.0f + addend * static_cast<float>(k));
  const Vec m = splat(multiplier), c = splat(addend);
  for (std::int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
    for (int k = 0; k < kAccumulators; ++k) acc[k] = mul_add(acc[k], m, c);
  }
  Vec sum = acc[0];
  for (int k = 1; k < kAccumulators; ++k) sum = add(sum, acc[k]);
  alignas(64) float lanes[kLanes];
  static_assert(sizeof(Vec) == sizeof(lanes), "one vector fills the lane buffer");
  __builtin_memcpy(lanes, &sum, sizeof(lanes));
  float total = 0.0f;
  for (int l = 0; l < kLanes; ++l) total += lanes[l];
  return total;
}

}  // namespace SK_CPU_CAPABILITY
}  // namespace seqkernels
