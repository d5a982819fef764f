// GloVe training epoch (Stanford glove.c's AdaGrad step, Hogwild threads). Compiled once per CPU
// capability (CMakeLists.txt: SEQKERNELS_CPU_KERNELS) so the per-dimension update vectorises.
#include <omp.h>

#include <cmath>
#include <vector>

#include "seqkernels/cpu_capability.h"
#include "seqkernels/internal/cpu_kernels.h"
#include "seqkernels/glove.h"

namespace seqkernels {
namespace glove {
namespace SK_CPU_CAPABILITY {
namespace {

// One record (word row l1, context row l2 of W) exactly as Stanford updates it; returns its cost
// 0.5 * f * diff^2 measured before the update, or -1 when the record is skipped (diff not finite).
inline double update_record(double* W, double* G, int64_t l1, int64_t l2, double log_x, double f_x, int D,
                            const TrainArgs& a, double* upd_w, double* upd_c) {
  double* w = W + l1;
  double* c = W + l2;
  double* gw = G + l1;
  double* gc = G + l2;
  double diff = 0.0;
#pragma omp simd reduction(+ : diff)
  for (int b = 0; b < D; ++b) diff += w[b] * c[b];
  diff += w[D] + c[D] - log_x;
  const double fdiff = f_x * diff;  // f_x = 1 above x_max: the same bits as Stanford's `diff`
  if (!std::isfinite(diff) || !std::isfinite(fdiff)) return -1.0;
  const double cost = 0.5 * fdiff * diff;

  const double clip = a.grad_clip, eta = a.eta;
  double sum_w = 0.0, sum_c = 0.0;
#pragma omp simd reduction(+ : sum_w, sum_c)
  for (int b = 0; b < D; ++b) {
    double gradient_w = fdiff * c[b], gradient_c = fdiff * w[b];
    gradient_w = (gradient_w < -clip ? -clip : gradient_w > clip ? clip : gradient_w) * eta;
    gradient_c = (gradient_c < -clip ? -clip : gradient_c > clip ? clip : gradient_c) * eta;
    upd_w[b] = gradient_w / std::sqrt(gw[b]);
    upd_c[b] = gradient_c / std::sqrt(gc[b]);
    sum_w += upd_w[b];
    sum_c += upd_c[b];
    gw[b] += gradient_w * gradient_w;
    gc[b] += gradient_c * gradient_c;
  }
  if (std::isfinite(sum_w) && std::isfinite(sum_c)) {  // Stanford drops a non-finite vector update
#pragma omp simd
    for (int b = 0; b < D; ++b) {
      w[b] -= upd_w[b];
      c[b] -= upd_c[b];
    }
  }
  // Biases: Stanford's current glove.c applies neither eta nor clipping here.
  const double step_w = fdiff / std::sqrt(gw[D]), step_c = fdiff / std::sqrt(gc[D]);
  w[D] -= std::isfinite(step_w) ? step_w : 0.0;
  c[D] -= std::isfinite(step_c) ? step_c : 0.0;
  gw[D] += fdiff * fdiff;
  gc[D] += fdiff * fdiff;
  return cost;
}

}  // namespace

EpochResult train_epoch(const TrainArgs& a) {
  const int T = a.num_threads;
  const int64_t N = a.records, V = a.vocab_size, ld = a.vector_size + 1;
  const int D = a.vector_size;
  std::vector<double> cost(T, 0.0);
  std::vector<int64_t> skipped(T, 0);
#pragma omp parallel for schedule(static, 1) num_threads(T)
  for (int t = 0; t < T; ++t) {
    // Stanford's split: thread t starts at (N / T) * t; the last takes the remainder too.
    const int64_t begin = N / T * t, end = begin + N / T + (t == T - 1 ? N % T : 0);
    std::vector<double> upd(2 * static_cast<size_t>(D));
    double sum = 0.0;
    int64_t skip = 0;
    for (int64_t k = begin; k < end; ++k) {
      double log_x, f_x;
      if (a.log_values) {
        log_x = a.log_values[k];
        f_x = a.weights[k];
      } else {
        const double x = a.values[k];
        log_x = std::log(x);
        f_x = x > a.x_max ? 1.0 : std::pow(x / a.x_max, a.alpha);
      }
      const double c = update_record(a.W, a.gradsq, a.rows[k] * ld, (a.cols[k] + V) * ld, log_x, f_x, D, a,
                                     upd.data(), upd.data() + D);
      if (c < 0) ++skip;
      else sum += c;
    }
    cost[t] = sum;
    skipped[t] = skip;
  }
  EpochResult r;
  for (int t = 0; t < T; ++t) {
    r.cost += cost[t];
    r.skipped += skipped[t];
  }
  return r;
}

}  // namespace SK_CPU_CAPABILITY
}  // namespace glove
}  // namespace seqkernels
