// Runtime choice of the instruction set for the CPU kernels (the habit of ATen's CPU_CAPABILITY).
//
// The pointwise parts of the kernels (gate math, softmax) only run fast when they vectorise with the
// machine's widest vectors, but a wheel must also run on a plain x86-64 CPU. So every kernel
// translation unit that has such loops is compiled once per capability below, each copy inside its
// own namespace `seqkernels::cpu_<name>` (CMakeLists.txt: SEQKERNELS_CPU_KERNELS), and a dispatcher
// calls the best copy the CPU supports. The environment variable SEQKERNELS_CPU_CAPABILITY
// (default | avx2 | avx512) caps the choice, and tests switch it with set_cpu_capability().
#pragma once

#include <string>

namespace seqkernels {

enum class CpuCapability : int { Default = 0, Avx2 = 1, Avx512 = 2 };

// The capability the dispatchers use now.
CpuCapability cpu_capability();
// The best capability this CPU (and this build) supports.
CpuCapability best_cpu_capability();
// Selects a capability by name ("default", "avx2", "avx512"); throws std::invalid_argument for an
// unknown name or one the CPU cannot run.
void set_cpu_capability(const std::string& name);
const char* cpu_capability_name(CpuCapability c);

}  // namespace seqkernels

// In a dispatcher: return `name(args...)` from the namespace of the current capability.
#define SK_CPU_DISPATCH(name, ...)                                           \
  switch (::seqkernels::cpu_capability()) {                                  \
    case ::seqkernels::CpuCapability::Avx512: return cpu_avx512::name(__VA_ARGS__); \
    case ::seqkernels::CpuCapability::Avx2: return cpu_avx2::name(__VA_ARGS__);     \
    default: return cpu_default::name(__VA_ARGS__);                          \
  }

// Inside a kernel translation unit: the namespace of this copy (set by CMake per capability).
#ifndef SK_CPU_CAPABILITY
#define SK_CPU_CAPABILITY cpu_default
#endif
