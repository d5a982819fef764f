// A measured float32 FMA peak for the benchmarks: the rate (GFLOP/s) that N threads reach on a
// loop of independent vector fused multiply-adds whose operands never leave the registers. The
// bench scripts report every kernel's GFLOP/s as a percentage of it, so "% of peak" means the
// same thing on every machine instead of a datasheet figure (clock boost, pipe count, and whether
// 512-bit FMAs run at full width all show up in the measurement).
//
// The loop is compiled once per CPU capability (cpu_capability.h) and runs with the widest vectors
// of the capability in use, so a capped SEQKERNELS_CPU_CAPABILITY measures the peak those kernels
// can reach.
#pragma once

#include <cstdint>

namespace seqkernels {

// What one iteration of the loop does: `accumulators` independent chains of `lanes`-wide
// multiply-adds (2 FLOP per lane each). `fused` is false where the instruction set has no FMA
// (plain x86-64), in which case a multiply and an add are issued instead.
struct FmaLoopShape {
  int lanes;
  int accumulators;
  bool fused;
};

struct FmaPeak {
  double gflops;   // total over all threads
  double seconds;  // wall time from the common start to the last thread's finish
  double flops;
  int threads;
  FmaLoopShape shape;
};

// Starts `threads` threads together, each running the loop for about `seconds`; throws
// std::invalid_argument unless 1 <= threads <= 4096 and 0 < seconds <= 60.
FmaPeak fma_peak(int threads, double seconds);

}  // namespace seqkernels
