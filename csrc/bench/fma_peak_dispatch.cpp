// The FMA-peak runner (fma_peak.h): starts the threads together, lets each run the capability's
// loop in short blocks until a common deadline, and divides the FLOPs done by the wall time.
// Plain std::threads, not OpenMP, so the measurement neither depends on nor disturbs the kernels'
// OpenMP team; the threads are not pinned, so the OS places them as it places the kernels' threads.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

#include "seqkernels/common.h"
#include "seqkernels/cpu_capability.h"
#include "seqkernels/internal/cpu_kernels.h"
#include "seqkernels/fma_peak.h"

namespace seqkernels {
namespace {

FmaLoopShape loop_shape() { SK_CPU_DISPATCH(fma_loop_shape) }

float loop(std::int64_t iterations, float multiplier, float addend) {
  SK_CPU_DISPATCH(fma_loop, iterations, multiplier, addend)
}

// Iterations between clock reads: ~1 MFLOP for the narrowest loop, so reading the clock costs
// well under 0.1 % of the time and a thread overshoots the deadline by only tens of microseconds.
constexpr std::int64_t kBlockIterations = 1 << 14;

}  // namespace

FmaPeak fma_peak(int threads, double seconds) {
  SK_CHECK(threads >= 1 && threads <= 4096, "threads: expected 1..4096, got " << threads);
  SK_CHECK(std::isfinite(seconds) && seconds > 0 && seconds <= 60,
           "seconds: expected a duration in (0, 60], got " << seconds);
  using clock = std::chrono::steady_clock;
  const FmaLoopShape shape = loop_shape();
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  clock::time_point deadline;
  std::vector<std::int64_t> blocks(threads, 0);
  std::vector<float> sinks(threads, 0.0f);
  std::vector<std::thread> team;
  team.reserve(threads);
  auto work = [&](int i) {
    ready.fetch_add(1);
    while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
    float sink = 0.0f;
    std::int64_t done = 0;
    do {
      // multiplier < 1 and a small addend keep every accumulator near 1: no overflow, no denormals
      sink += loop(kBlockIterations, 0.999f, 0.001f);
      ++done;
    } while (clock::now() < deadline);
    blocks[i] = done;
    sinks[i] = sink;
  };
  try {
    for (int i = 0; i < threads; ++i) team.emplace_back(work, i);
  } catch (...) {  // could not start a thread: release the ones waiting, then report
    deadline = clock::now();
    go.store(true, std::memory_order_release);
    for (auto& t : team) t.join();
    throw;
  }
  while (ready.load() < threads) std::this_thread::yield();
  const clock::time_point start = clock::now();
  deadline = start + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
  go.store(true, std::memory_order_release);
  for (auto& t : team) t.join();
  const double elapsed = std::chrono::duration<double>(clock::now() - start).count();

  double flops = 0;
  for (std::int64_t b : blocks)
    flops += static_cast<double>(b) * kBlockIterations * shape.accumulators * shape.lanes * 2.0;
  volatile float keep = 0.0f;  // the loops' results are used, so no compiler can drop them
  for (float s : sinks) keep = keep + s;
  (void)keep;
  return {flops / elapsed * 1e-9, elapsed, flops, threads, shape};
}

}  // namespace seqkernels
