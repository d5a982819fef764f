#include "seqkernels/cpu_capability.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace seqkernels {
namespace {

bool supports(CpuCapability c) {
#if defined(__x86_64__) || defined(_M_X64)
  switch (c) {
    case CpuCapability::Default: return true;
    case CpuCapability::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CpuCapability::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("fma");
  }
  return false;
#else
  return c == CpuCapability::Default;  // other architectures: one portable copy
#endif
}

CpuCapability parse(const std::string& name) {
  if (name == "default") return CpuCapability::Default;
  if (name == "avx2") return CpuCapability::Avx2;
  if (name == "avx512") return CpuCapability::Avx512;
  throw std::invalid_argument("CPU capability must be 'default', 'avx2' or 'avx512', got '" + name + "'");
}

CpuCapability initial() {
  CpuCapability best = best_cpu_capability();
  if (const char* env = std::getenv("SEQKERNELS_CPU_CAPABILITY")) {
    try {
      const CpuCapability asked = parse(env);
      if (static_cast<int>(asked) < static_cast<int>(best)) best = asked;  // a cap, never a raise
    } catch (const std::invalid_argument&) {
      // An unknown value keeps the best capability; build_info() shows what was chosen.
    }
  }
  return best;
}

std::atomic<int>& current() {
  static std::atomic<int> c{static_cast<int>(initial())};
  return c;
}

}  // namespace

CpuCapability best_cpu_capability() {
  for (CpuCapability c : {CpuCapability::Avx512, CpuCapability::Avx2})
    if (supports(c)) return c;
  return CpuCapability::Default;
}

CpuCapability cpu_capability() { return static_cast<CpuCapability>(current().load(std::memory_order_relaxed)); }

void set_cpu_capability(const std::string& name) {
  const CpuCapability c = parse(name);
  if (!supports(c)) throw std::invalid_argument("this CPU cannot run the '" + name + "' kernels");
  current().store(static_cast<int>(c));
}

const char* cpu_capability_name(CpuCapability c) {
  switch (c) {
    case CpuCapability::Avx2: return "avx2";
    case CpuCapability::Avx512: return "avx512";
    default: return "default";
  }
}

}  // namespace seqkernels
