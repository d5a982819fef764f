// pybind11 module seqkernels._cuda. For now: device queries, so that the CUDA build is compiled by
// CI whenever nvcc is present and never rots. CUDA errors surface as Python RuntimeError.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <sstream>
#include <stdexcept>
#include <string>

namespace py = pybind11;

// Throw (never exit) with the file, line, call text and CUDA's own message.
#define SK_CUDA_CHECK(call)                                                                \
  do {                                                                                     \
    const cudaError_t sk_err_ = (call);                                                    \
    if (sk_err_ != cudaSuccess) {                                                          \
      std::ostringstream sk_os_;                                                           \
      sk_os_ << "CUDA error " << cudaGetErrorName(sk_err_) << ": " << cudaGetErrorString(sk_err_) \
             << " [" << #call << " at " << __FILE__ << ":" << __LINE__ << "]";             \
      throw std::runtime_error(sk_os_.str());                                              \
    }                                                                                      \
  } while (0)

namespace {

int device_count() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // no driver / no device: report zero, leave no sticky error behind
    return 0;
  }
  return n;
}

py::dict device_properties(int device) {
  const int n = device_count();
  if (device < 0 || device >= n) {
    std::ostringstream os;
    os << "device: expected an index in 0.." << (n - 1) << " (" << n << " CUDA devices), got " << device;
    throw std::invalid_argument(os.str());
  }
  cudaDeviceProp p{};
  SK_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  py::dict d;
  d["name"] = std::string(p.name);
  d["compute_capability"] = py::make_tuple(p.major, p.minor);
  d["multiprocessors"] = p.multiProcessorCount;
  d["total_memory"] = static_cast<size_t>(p.totalGlobalMem);
  d["shared_memory_per_block_optin"] = static_cast<size_t>(p.sharedMemPerBlockOptin);
  d["registers_per_multiprocessor"] = p.regsPerMultiprocessor;
  d["cooperative_launch"] = static_cast<bool>(p.cooperativeLaunch);
  return d;
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "seqkernels CUDA kernels (device queries for now).";
  m.attr("__version__") = SEQKERNELS_VERSION;
  m.def("device_count", &device_count, "Number of visible CUDA devices (0 when there is no driver or GPU).");
  m.def("device_properties", &device_properties, py::arg("device") = 0,
        "Name, compute capability, SM count, memory and cooperative-launch support of one device.");
  m.def("runtime_version", []() {
    int v = 0;
    SK_CUDA_CHECK(cudaRuntimeGetVersion(&v));
    return v;
  });
}
