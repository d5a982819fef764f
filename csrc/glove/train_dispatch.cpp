// Argument checks and CPU dispatch of the GloVe training epoch; Stanford's initialisation.
#include <cmath>

#include "seqkernels/cpu_capability.h"
#include "seqkernels/internal/cpu_kernels.h"
#include "seqkernels/glove.h"
#include "text.h"

namespace seqkernels {
namespace glove {

EpochResult train_epoch(const TrainArgs& args) {
  SK_CHECK(args.vocab_size >= 1, "vocab_size: expected >= 1, got " << args.vocab_size);
  SK_CHECK(args.vector_size >= 1, "vector_size: expected >= 1, got " << args.vector_size);
  SK_CHECK(args.records >= 0, "records: expected >= 0, got " << args.records);
  SK_CHECK(args.W && args.gradsq, "W and gradsq: expected arrays of shape (2V, D+1)");
  SK_CHECK(args.records == 0 || (args.rows && args.cols && args.values), "rows, cols, values: missing");
  SK_CHECK(std::isfinite(args.eta) && args.eta > 0, "learning_rate: expected a positive number, got " << args.eta);
  SK_CHECK(std::isfinite(args.x_max) && args.x_max > 0, "x_max: expected a positive number, got " << args.x_max);
  SK_CHECK(std::isfinite(args.alpha) && args.alpha > 0, "alpha: expected a positive number, got " << args.alpha);
  SK_CHECK(args.grad_clip > 0, "grad_clip: expected a positive number, got " << args.grad_clip);
  SK_CHECK(!args.log_values == !args.weights, "log_values and weights: give both or neither");
  TrainArgs a = args;
  a.num_threads = detail::resolve_threads(args.num_threads);
  SK_CPU_DISPATCH(train_epoch, a)
}

void record_terms(const double* values, int64_t n, double x_max, double alpha, double* log_values, double* weights,
                  int num_threads) {
  SK_CHECK(std::isfinite(x_max) && x_max > 0, "x_max: expected a positive number, got " << x_max);
  SK_CHECK(std::isfinite(alpha) && alpha > 0, "alpha: expected a positive number, got " << alpha);
  const int T = detail::resolve_threads(num_threads);
#pragma omp parallel for schedule(static) num_threads(T)
  for (int64_t k = 0; k < n; ++k) {
    const double x = values[k];
    log_values[k] = std::log(x);
    weights[k] = x > x_max ? 1.0 : std::pow(x / x_max, alpha);
  }
}

namespace {

// glibc's rand() after srand(seed) (the TYPE_3 additive feedback generator, degree 31, lag 3):
// r[0] = seed, r[i] = 16807 r[i-1] mod (2^31 - 1) for i < 31 (Schrage's form, as glibc computes it
// on int32), r[31..33] = r[0..2], then r[k] = r[k-31] + r[k-3] mod 2^32; rand() returns r[k] >> 1
// for k = 344, 345, ...
class GlibcRand {
 public:
  explicit GlibcRand(uint32_t seed) {
    if (seed == 0) seed = 1;
    int32_t word = static_cast<int32_t>(seed);
    r_[0] = static_cast<uint32_t>(word);
    for (int i = 1; i < 31; ++i) {
      const int32_t hi = word / 127773, lo = word % 127773;  // truncating, as in C
      word = 16807 * lo - 2836 * hi;
      if (word < 0) word += 2147483647;
      r_[i] = static_cast<uint32_t>(word);
    }
    for (int i = 31; i < 34; ++i) r_[i] = r_[i - 31];
    k_ = 34;
    for (int i = 34; i < 344; ++i) step();
  }
  uint32_t next() { return step() >> 1; }

 private:
  uint32_t step() {
    const uint32_t v = r_[(k_ - 31) % 34] + r_[(k_ - 3) % 34];
    r_[k_ % 34] = v;
    ++k_;
    return v;
  }
  uint32_t r_[34];
  uint64_t k_;
};

}  // namespace

void stanford_init(double* W, int64_t count, int vector_size, uint32_t seed) {
  SK_CHECK(vector_size >= 1, "vector_size: expected >= 1, got " << vector_size);
  SK_CHECK(count >= 0 && (W || count == 0), "stanford_init: bad output array");
  GlibcRand rng(seed);
  const double rand_max = 2147483647.0;
  for (int64_t k = 0; k < count; ++k)
    W[k] = (static_cast<double>(rng.next()) / rand_max - 0.5) / static_cast<double>(vector_size);
}

}  // namespace glove
}  // namespace seqkernels
