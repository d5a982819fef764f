// seqkernels — shared definitions for the C++ and CUDA kernels.
//
// Dimension legend (used in every header of this project):
//   T  time steps            B  batch size           I  input size (per layer: I for layer 0,
//   H  hidden size           G  gate blocks per cell     D·H for layers above it)
//   D  directions (1 or 2)   L  layers               V  vocabulary size
// Arrays are row-major and contiguous unless a leading dimension (ld*) says otherwise.
// Sequence-major (T, B, ·) is the native layout.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

#if defined(__CUDACC__)
#define SK_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define SK_HOST_DEVICE inline
#endif

namespace seqkernels {

// Thrown for bad arguments; pybind11 turns std::invalid_argument into Python's ValueError.
[[noreturn]] inline void fail_check(const char* file, int line, const char* cond, const std::string& msg) {
  std::ostringstream os;
  os << msg << " [check `" << cond << "` failed at " << file << ":" << line << "]";
  throw std::invalid_argument(os.str());
}

}  // namespace seqkernels

// SK_CHECK(cond, message-stream): validate an argument; never exit(), always throw.
#define SK_CHECK(cond, msg)                                                     \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::ostringstream sk_check_os_;                                          \
      sk_check_os_ << msg;                                                      \
      ::seqkernels::fail_check(__FILE__, __LINE__, #cond, sk_check_os_.str());  \
    }                                                                           \
  } while (0)
