// Runtime choice of the instruction set for the CPU kernels (the habit of ATen's CPU_CAPABILITY).
//
// The pointwise parts of the kernels (gate math, softmax) only run fast when they vectorise with the
// machine's widest vectors, but a wheel must also run on a plain x86-64 CPU. So every kernel
// translation unit that has such loops is compiled once per capability below, each copy inside its
// own namespace `seqkernels::cpu_<name>` (CMakeLists.txt: SEQKERNELS_CPU_KERNELS), and a dispatcher
// calls the best copy the CPU supports. The environment variable SEQKERNELS_CPU_CAPABILITY
// (one of the names below) caps the choice, and tests switch it with set_cpu_capability().
#pragma once

#include <string>
#include <vector>

// The one list of CPU kernel copies, narrowest first. Everything else reads it: CMakeLists.txt
// (one compile per entry, with the flags _sk_flags_<name>), the enum and dispatch below, each
// kernel header's declarations of its copies, and Python through _C.cpu_capabilities(). Adding a
// capability: an entry here, its flags in CMakeLists.txt and its CPU test in cpu_capability.cpp.
// X(name, extra...) is called once per entry with the caller's extra arguments.
#define SK_CPU_CAPABILITIES(X, ...) \
  X(default, __VA_ARGS__)           \
  X(avx2, __VA_ARGS__)              \
  X(avx512, __VA_ARGS__)

namespace seqkernels {

#define SK_CPU_CAPABILITY_ENUM(name, ...) cpu_##name,
enum class CpuCapability : int { SK_CPU_CAPABILITIES(SK_CPU_CAPABILITY_ENUM) };
#undef SK_CPU_CAPABILITY_ENUM

// The capability the dispatchers use now.
CpuCapability cpu_capability();
// The best capability this CPU (and this build) supports.
CpuCapability best_cpu_capability();
// Selects a capability by name; throws std::invalid_argument for an unknown name or one the CPU
// cannot run.
void set_cpu_capability(const std::string& name);
const char* cpu_capability_name(CpuCapability c);
// Every capability this build has a copy of, narrowest first (whether or not this CPU runs it).
std::vector<std::string> cpu_capability_names();

}  // namespace seqkernels

// In a dispatcher: return `name(args...)` from the namespace of the current capability.
#define SK_CPU_DISPATCH_CASE(cap, name, ...) \
  case ::seqkernels::CpuCapability::cpu_##cap: return cpu_##cap::name(__VA_ARGS__);
#define SK_CPU_DISPATCH(name, ...)                                      \
  switch (::seqkernels::cpu_capability()) {                             \
    SK_CPU_CAPABILITIES(SK_CPU_DISPATCH_CASE, name, __VA_ARGS__)        \
  }                                                                     \
  __builtin_unreachable(); /* the switch covers every enumerator */

// In a kernel header: SK_CPU_CAPABILITIES(DECLARE) with `#define DECLARE(cap, ...) namespace
// cpu_##cap { ... }` declares the copies of every capability.

// Inside a kernel translation unit: the namespace of this copy (set by CMake per capability).
#ifndef SK_CPU_CAPABILITY
#define SK_CPU_CAPABILITY cpu_default
#endif
