// pybind11 bindings of the benchmark instruments (seqkernels/fma_peak.h) into seqkernels._C.
#include <pybind11/pybind11.h>

#include "seqkernels/cpu_capability.h"
#include "seqkernels/fma_peak.h"

namespace py = pybind11;
using namespace seqkernels;

void bind_bench(py::module_& m) {
  m.def(
      "fma_peak",
      [](int threads, double seconds) {
        FmaPeak r;
        {
          py::gil_scoped_release nogil;
          r = fma_peak(threads, seconds);
        }
        py::dict d;
        d["gflops"] = r.gflops;
        d["seconds"] = r.seconds;
        d["flops"] = r.flops;
        d["threads"] = r.threads;
        d["lanes"] = r.shape.lanes;
        d["accumulators"] = r.shape.accumulators;
        d["fused"] = r.shape.fused;
        d["cpu_capability"] = cpu_capability_name(cpu_capability());
        return d;
      },
      py::arg("threads"), py::arg("seconds") = 0.2,
      "Measured float32 FMA rate: `threads` std::threads started together, each running a "
      "register-resident loop of independent vector multiply-adds (the current CPU capability's "
      "widest vectors) for about `seconds`. Returns a dict: gflops (all threads), seconds, flops, "
      "threads, lanes, accumulators, fused, cpu_capability.");
}
