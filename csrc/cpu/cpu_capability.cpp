#include "seqkernels/cpu_capability.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace seqkernels {
namespace {

bool supports(CpuCapability c) {
#if defined(__x86_64__) || defined(_M_X64)
  switch (c) {
    case CpuCapability::cpu_default: return true;
    case CpuCapability::cpu_avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CpuCapability::cpu_avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("fma");
  }
  return false;
#else
  return c == CpuCapability::cpu_default;  // other architectures: one portable copy
#endif
}

#define SK_CPU_CAPABILITY_ENTRY(name, ...) CpuCapability::cpu_##name,
constexpr CpuCapability kAll[] = {SK_CPU_CAPABILITIES(SK_CPU_CAPABILITY_ENTRY)};
#undef SK_CPU_CAPABILITY_ENTRY

CpuCapability parse(const std::string& name) {
  std::string known;
  for (CpuCapability c : kAll) {
    if (name == cpu_capability_name(c)) return c;
    known += (known.empty() ? "'" : ", '") + std::string(cpu_capability_name(c)) + "'";
  }
  throw std::invalid_argument("CPU capability must be one of " + known + ", got '" + name + "'");
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
  CpuCapability best = CpuCapability::cpu_default;
  for (CpuCapability c : kAll)
    if (supports(c)) best = c;  // the list runs narrowest first
  return best;
}

CpuCapability cpu_capability() { return static_cast<CpuCapability>(current().load(std::memory_order_relaxed)); }

void set_cpu_capability(const std::string& name) {
  const CpuCapability c = parse(name);
  if (!supports(c)) throw std::invalid_argument("this CPU cannot run the '" + name + "' kernels");
  current().store(static_cast<int>(c));
}

const char* cpu_capability_name(CpuCapability c) {
#define SK_CPU_CAPABILITY_NAME(name, ...) \
  case CpuCapability::cpu_##name: return #name;
  switch (c) { SK_CPU_CAPABILITIES(SK_CPU_CAPABILITY_NAME) }
#undef SK_CPU_CAPABILITY_NAME
  return "?";
}

std::vector<std::string> cpu_capability_names() {
  std::vector<std::string> names;
  for (CpuCapability c : kAll) names.emplace_back(cpu_capability_name(c));
  return names;
}

}  // namespace seqkernels
