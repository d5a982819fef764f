// pybind11 module seqkernels._cuda: device queries and the CUDA kernels' raw-pointer entries (the
// Python layer owns the arrays). Compiled by CI whenever nvcc is present, so it never rots.
// CUDA errors surface as Python RuntimeError, bad arguments as ValueError.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include "seqkernels/cuda/beam_search.h"
#include "seqkernels/cuda/glove.h"
#include "seqkernels/cuda/recurrent.h"

#include <cstdint>
#include <initializer_list>
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

// Why CUDA is (un)usable, for build_info(): the driver's CUDA version (0 when libcuda.so.1 is not
// found), the runtime this module was built with, and the error of the device query, if any.
py::dict driver_status() {
  py::dict d;
  int driver = 0;
  if (cudaDriverGetVersion(&driver) != cudaSuccess) {
    (void)cudaGetLastError();
    driver = 0;
  }
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  d["driver_version"] = driver;
  d["runtime_version"] = CUDART_VERSION;
  d["device_count"] = err == cudaSuccess ? n : 0;
  d["error"] = err == cudaSuccess ? std::string()
                                  : std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
  if (err != cudaSuccess) (void)cudaGetLastError();
  return d;
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

void check_arg(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

// The device that holds every non-null pointer of `ptrs` (device or managed memory). Kernels must
// run there whatever the caller's current device is (a tensor on cuda:1 while cuda:0 is current).
int device_of(std::initializer_list<std::uintptr_t> ptrs, const char* what) {
  int device = -1;
  for (const std::uintptr_t p : ptrs) {
    if (p == 0) continue;
    cudaPointerAttributes attr{};
    SK_CUDA_CHECK(cudaPointerGetAttributes(&attr, reinterpret_cast<const void*>(p)));
    check_arg(attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged,
              std::string(what) + ": expected GPU memory, got a host pointer");
    check_arg(device < 0 || attr.device == device,
              std::string(what) + ": the arrays are on different devices (" + std::to_string(device) + " and " +
                  std::to_string(attr.device) + ")");
    device = attr.device;
  }
  check_arg(device >= 0, std::string(what) + ": no device pointer given");
  return device;
}

// Makes `device` current for the launch and restores the caller's device afterwards; checks that
// a non-default `stream` belongs to `device` (a kernel cannot be queued on another device's stream).
class DeviceGuard {
 public:
  DeviceGuard(int device, std::uintptr_t stream, const char* what) {
    SK_CUDA_CHECK(cudaGetDevice(&previous_));
    if (device != previous_) SK_CUDA_CHECK(cudaSetDevice(device));
    changed_ = device != previous_;
    if (stream != 0) {
      int stream_device = -1;
      const cudaError_t err = cudaStreamGetDevice(reinterpret_cast<cudaStream_t>(stream), &stream_device);
      if (err != cudaSuccess) restore();
      SK_CUDA_CHECK(err);
      if (stream_device != device) {
        restore();
        throw std::invalid_argument(std::string(what) + ": the stream belongs to device " +
                                    std::to_string(stream_device) + " but the arrays are on device " +
                                    std::to_string(device));
      }
    }
  }
  ~DeviceGuard() { restore(); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  void restore() noexcept {
    if (changed_) (void)cudaSetDevice(previous_);
    changed_ = false;
  }
  int previous_ = 0;
  bool changed_ = false;
};

// The decoding controls as the CUDA step reads them (device pointers, 0 = none; seqkernels/beam_search.h).
struct StepControls {
  std::uintptr_t forced = 0, mark_offsets = 0, mark_tokens = 0, mark_kinds = 0;
  double repetition_penalty = 1.0;
};

// Raw-pointer entry of the fused beam step; seqkernels.ops owns the CuPy arrays and passes their
// device pointers and the current stream.
template <typename T>
void beam_step_t(std::uintptr_t scores, std::uintptr_t beam_scores, int items, int beams, int vocab, int eos_id,
                 bool log_probs, bool forbid_eos, std::uintptr_t cand_score, std::uintptr_t cand_beam,
                 std::uintptr_t cand_token, std::uintptr_t cand_logp, std::uintptr_t cand_finished,
                 std::uintptr_t alive, std::uintptr_t scratch, std::uintptr_t bad_item, std::uintptr_t stream,
                 const StepControls& c) {
  using namespace seqkernels;
  check_arg(items >= 1, "beam_scores: expected N >= 1");
  check_arg(beams >= 1 && beams <= cuda::kMaxBeams,
            "beam_size: the CUDA beam step supports 1.." + std::to_string(cuda::kMaxBeams) + " beams, got " +
                std::to_string(beams));
  check_arg(vocab >= 1, "scores: expected V >= 1");
  check_arg(static_cast<long long>(beams) * vocab < INT32_MAX, "scores: B*V must be below 2^31");
  check_arg(eos_id >= 0 && eos_id < vocab, "eos_id: outside the vocabulary");
  const cuda::BeamStepGrid grid = cuda::beam_step_grid(items, beams, vocab);
  check_arg(grid.rows < INT32_MAX && grid.chunk_blocks < INT32_MAX,
            "scores: N*B and the number of candidate chunks (beam_step_grid) must be below 2^31");
  BeamStepArgs<T> a;
  a.items = items; a.beams = beams; a.vocab = vocab; a.eos_id = eos_id;
  a.log_probs = log_probs; a.forbid_eos = forbid_eos;
  a.scores = reinterpret_cast<const T*>(scores);
  a.beam_scores = reinterpret_cast<const T*>(beam_scores);
  a.cand_score = reinterpret_cast<T*>(cand_score);
  a.cand_beam = reinterpret_cast<int32_t*>(cand_beam);
  a.cand_token = reinterpret_cast<int32_t*>(cand_token);
  a.cand_logp = reinterpret_cast<T*>(cand_logp);
  a.cand_finished = reinterpret_cast<uint8_t*>(cand_finished);
  a.alive = reinterpret_cast<int32_t*>(alive);
  a.forced = reinterpret_cast<const int32_t*>(c.forced);
  a.mark_offsets = reinterpret_cast<const int32_t*>(c.mark_offsets);
  a.mark_tokens = reinterpret_cast<const int32_t*>(c.mark_tokens);
  a.mark_kinds = reinterpret_cast<const uint8_t*>(c.mark_kinds);
  a.repetition_penalty = c.repetition_penalty;
  const DeviceGuard guard(device_of({scores, beam_scores, cand_score, cand_beam, cand_token, cand_logp, cand_finished,
                                     alive, scratch, bad_item, c.forced, c.mark_offsets, c.mark_tokens, c.mark_kinds},
                                    "beam_step"),
                          stream, "beam_step");
  SK_CUDA_CHECK(static_cast<cudaError_t>(cuda::beam_step<T>(a, reinterpret_cast<void*>(scratch),
                                                             reinterpret_cast<int*>(bad_item),
                                                             reinterpret_cast<void*>(stream))));
}

template <typename P>
P* dev(std::uintptr_t p) { return reinterpret_cast<P*>(p); }  // 0 → null

template <typename T>
void recurrent_forward_t(const seqkernels::CellSpec& cell, int steps, int batch, int hidden, std::uintptr_t xz,
                         std::uintptr_t w_hh, std::uintptr_t b_hh, std::uintptr_t h0, std::uintptr_t c0,
                         std::uintptr_t lengths, bool reverse, std::uintptr_t y, int ldy, std::uintptr_t h_n,
                         std::uintptr_t c_n, std::uintptr_t workspace, std::uintptr_t scratch, std::uintptr_t stream,
                         std::uintptr_t w_hr) {
  seqkernels::cuda::ForwardArgs<T> a;
  a.steps = steps; a.batch = batch; a.hidden = hidden;
  a.xz = dev<const T>(xz); a.w_hh = dev<const T>(w_hh); a.w_hr = dev<const T>(w_hr); a.b_hh = dev<const T>(b_hh);
  a.h0 = dev<const T>(h0); a.c0 = dev<const T>(c0); a.lengths = dev<const int32_t>(lengths);
  a.reverse = reverse; a.y = dev<T>(y); a.ldy = ldy; a.h_n = dev<T>(h_n); a.c_n = dev<T>(c_n);
  a.workspace = dev<T>(workspace); a.scratch = dev<T>(scratch);
  check_arg(a.xz && a.w_hh && a.y && a.h_n, "recurrent_forward: xz, w_hh, y and h_n are required");
  check_arg(a.workspace || a.scratch, "recurrent_forward: pass a workspace (training) or a scratch (inference)");
  check_arg((cell.proj > 0) == (a.w_hr != nullptr), "recurrent_forward: w_hr is required with proj_size > 0 only");
  const DeviceGuard guard(device_of({xz, w_hh, w_hr, b_hh, h0, c0, lengths, y, h_n, c_n, workspace, scratch},
                                    "recurrent_forward"),
                          stream, "recurrent_forward");
  SK_CUDA_CHECK(static_cast<cudaError_t>(seqkernels::cuda::recurrent_forward<T>(cell, a, dev<void>(stream))));
}

template <typename T>
void recurrent_backward_t(const seqkernels::CellSpec& cell, int steps, int batch, int hidden, std::uintptr_t w_hh,
                          std::uintptr_t lengths, bool reverse, std::uintptr_t dy, int ldy, std::uintptr_t dh_n,
                          std::uintptr_t dc_n, std::uintptr_t workspace, std::uintptr_t dzx, std::uintptr_t dzh,
                          std::uintptr_t dh0, std::uintptr_t dc0, std::uintptr_t scratch, std::uintptr_t stream,
                          std::uintptr_t w_hr, std::uintptr_t dht) {
  seqkernels::cuda::BackwardArgs<T> a;
  a.steps = steps; a.batch = batch; a.hidden = hidden;
  a.w_hr = dev<const T>(w_hr); a.dht = dev<T>(dht);
  a.w_hh = dev<const T>(w_hh); a.lengths = dev<const int32_t>(lengths); a.reverse = reverse;
  a.dy = dev<const T>(dy); a.ldy = ldy; a.dh_n = dev<const T>(dh_n); a.dc_n = dev<const T>(dc_n);
  a.workspace = dev<const T>(workspace); a.dzx = dev<T>(dzx); a.dzh = dev<T>(dzh);
  a.dh0 = dev<T>(dh0); a.dc0 = dev<T>(dc0); a.scratch = dev<T>(scratch);
  check_arg(a.w_hh && a.dy && a.workspace && a.dzx && a.dh0 && a.scratch,
            "recurrent_backward: w_hh, dy, workspace, dzx, dh0 and scratch are required");
  check_arg(!(cell.kind == seqkernels::CellKind::Gru && cell.reset_after) || a.dzh,
            "recurrent_backward: GRU with reset_after needs dzh");
  check_arg(cell.proj == 0 || (a.w_hr && a.dht), "recurrent_backward: proj_size > 0 needs w_hr and dht");
  const DeviceGuard guard(device_of({w_hh, w_hr, lengths, dy, dh_n, dc_n, workspace, dzx, dzh, dh0, dc0, scratch, dht},
                                    "recurrent_backward"),
                          stream, "recurrent_backward");
  SK_CUDA_CHECK(static_cast<cudaError_t>(seqkernels::cuda::recurrent_backward<T>(cell, a, dev<void>(stream))));
}

void check_sizes(int steps, int batch, int hidden) {
  check_arg(steps >= 1 && batch >= 1 && hidden >= 1, "steps, batch and hidden must be >= 1");
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "seqkernels CUDA kernels: device queries and the fused beam-search step.";
  m.attr("__version__") = SEQKERNELS_VERSION;
  m.attr("cuda_archs") = SEQKERNELS_CUDA_ARCHS;  // CMAKE_CUDA_ARCHITECTURES of this build, space-separated
  m.def("driver_status", &driver_status,
        "{driver_version, runtime_version, device_count, error}: CUDA versions as 1000*major + 10*minor "
        "(driver 0: no driver found); error is the device query's CUDA error, empty when it succeeded.");
  m.def("device_count", &device_count, "Number of visible CUDA devices (0 when there is no driver or GPU).");
  m.def("device_properties", &device_properties, py::arg("device") = 0,
        "Name, compute capability, SM count, memory and cooperative-launch support of one device.");
  m.def("beam_step_scratch_bytes",
        [](int items, int beams, int vocab, int element_bytes) {
          return seqkernels::cuda::beam_step_scratch_bytes(items, beams, vocab, element_bytes);
        },
        py::arg("items"), py::arg("beams"), py::arg("vocab"), py::arg("element_bytes"));
  m.def("beam_step_grid",
        [](int items, int beams, int vocab) {
          const auto g = seqkernels::cuda::beam_step_grid(items, beams, vocab);
          return py::make_tuple(g.rows, g.chunks, g.chunk_blocks, g.items);
        },
        py::arg("items"), py::arg("beams"), py::arg("vocab"),
        "Blocks of the beam step's launches: (row_norm, chunks per item, chunk_top_k, merge).");
  m.def("beam_chunk_of_block",
        [](long long block, long long chunks, int beams, int vocab) {
          const auto c = seqkernels::cuda::beam_chunk_of_block(block, chunks, beams, vocab);
          return py::make_tuple(c.item, c.lo, c.hi);
        },
        py::arg("block"), py::arg("chunks"), py::arg("beams"), py::arg("vocab"),
        "(item, lo, hi): the candidates [lo, hi) of item `item` that chunk_top_k's block `block` ranks.");
  m.def("beam_step",
        [](const std::string& dtype, std::uintptr_t scores, std::uintptr_t beam_scores, int items, int beams, int vocab,
           int eos_id, bool log_probs, bool forbid_eos, std::uintptr_t cand_score, std::uintptr_t cand_beam,
           std::uintptr_t cand_token, std::uintptr_t cand_logp, std::uintptr_t cand_finished, std::uintptr_t alive,
           std::uintptr_t scratch, std::uintptr_t bad_item, std::uintptr_t stream) {
          check_arg(dtype == "float32" || dtype == "float64", "scores: expected float32 or float64, got " + dtype);
          auto f = dtype == "float32" ? &beam_step_t<float> : &beam_step_t<double>;
          f(scores, beam_scores, items, beams, vocab, eos_id, log_probs, forbid_eos, cand_score, cand_beam, cand_token,
            cand_logp, cand_finished, alive, scratch, bad_item, stream, StepControls{});
        },
        py::arg("dtype"), py::arg("scores"), py::arg("beam_scores"), py::arg("items"), py::arg("beams"),
        py::arg("vocab"), py::arg("eos_id"), py::arg("log_probs"), py::arg("forbid_eos"), py::arg("cand_score"),
        py::arg("cand_beam"), py::arg("cand_token"), py::arg("cand_logp"), py::arg("cand_finished"),
        py::arg("alive"), py::arg("scratch"), py::arg("bad_item"), py::arg("stream"),
        "Fused beam step on device pointers (seqkernels/beam_search.h); queued on `stream`. "
        "Use seqkernels.ops.beam_step, which owns the arrays.");
  m.def("beam_step_controls",
        [](const std::string& dtype, std::uintptr_t scores, std::uintptr_t beam_scores, int items, int beams, int vocab,
           int eos_id, bool log_probs, bool forbid_eos, std::uintptr_t cand_score, std::uintptr_t cand_beam,
           std::uintptr_t cand_token, std::uintptr_t cand_logp, std::uintptr_t cand_finished, std::uintptr_t alive,
           std::uintptr_t scratch, std::uintptr_t bad_item, std::uintptr_t stream, std::uintptr_t forced,
           std::uintptr_t mark_offsets, std::uintptr_t mark_tokens, std::uintptr_t mark_kinds,
           double repetition_penalty) {
          check_arg(dtype == "float32" || dtype == "float64", "scores: expected float32 or float64, got " + dtype);
          auto f = dtype == "float32" ? &beam_step_t<float> : &beam_step_t<double>;
          f(scores, beam_scores, items, beams, vocab, eos_id, log_probs, forbid_eos, cand_score, cand_beam, cand_token,
            cand_logp, cand_finished, alive, scratch, bad_item, stream,
            StepControls{forced, mark_offsets, mark_tokens, mark_kinds, repetition_penalty});
        },
        py::arg("dtype"), py::arg("scores"), py::arg("beam_scores"), py::arg("items"), py::arg("beams"),
        py::arg("vocab"), py::arg("eos_id"), py::arg("log_probs"), py::arg("forbid_eos"), py::arg("cand_score"),
        py::arg("cand_beam"), py::arg("cand_token"), py::arg("cand_logp"), py::arg("cand_finished"),
        py::arg("alive"), py::arg("scratch"), py::arg("bad_item"), py::arg("stream"), py::arg("forced"),
        py::arg("mark_offsets"), py::arg("mark_tokens"), py::arg("mark_kinds"), py::arg("repetition_penalty"),
        "beam_step with the decoding controls: forced (N*B,) int32 and the CSR marks of "
        "seqkernels._C.beam_step_marks, as device pointers (0 = none). Use seqkernels.ops.beam_step.");
  m.def("recurrent_scratch_sizes",
        [](const std::string& mode, bool reset_after, const std::string& nonlinearity, int batch, int hidden,
           int proj_size) {
          const auto cell = seqkernels::cell_spec(mode, reset_after, nonlinearity, proj_size);
          return py::make_tuple(seqkernels::cuda::forward_scratch_size(cell, batch, hidden),
                                seqkernels::cuda::backward_scratch_size(cell, batch, hidden));
        },
        py::arg("mode"), py::arg("reset_after"), py::arg("nonlinearity"), py::arg("batch"), py::arg("hidden"),
        py::arg("proj_size"),
        "(forward inference scratch, backward scratch) in elements of the working type.");
  m.def("recurrent_forward",
        [](const std::string& dtype, const std::string& mode, bool reset_after, const std::string& nonlinearity,
           int steps, int batch, int hidden, std::uintptr_t xz, std::uintptr_t w_hh, std::uintptr_t b_hh,
           std::uintptr_t h0, std::uintptr_t c0, std::uintptr_t lengths, bool reverse, std::uintptr_t y, int ldy,
           std::uintptr_t h_n, std::uintptr_t c_n, std::uintptr_t workspace, std::uintptr_t scratch,
           std::uintptr_t stream, int proj_size, std::uintptr_t w_hr) {
          const auto cell = seqkernels::cell_spec(mode, reset_after, nonlinearity, proj_size);
          check_sizes(steps, batch, hidden);
          check_arg(proj_size < hidden, "proj_size must be smaller than hidden");
          check_arg(dtype == "float32" || dtype == "float64", "dtype: expected float32 or float64, got " + dtype);
          auto f = dtype == "float32" ? &recurrent_forward_t<float> : &recurrent_forward_t<double>;
          py::gil_scoped_release nogil;
          f(cell, steps, batch, hidden, xz, w_hh, b_hh, h0, c0, lengths, reverse, y, ldy, h_n, c_n, workspace, scratch,
            stream, w_hr);
        },
        py::arg("dtype"), py::arg("mode"), py::arg("reset_after"), py::arg("nonlinearity"), py::arg("steps"),
        py::arg("batch"), py::arg("hidden"), py::arg("xz"), py::arg("w_hh"), py::arg("b_hh"), py::arg("h0"),
        py::arg("c0"), py::arg("lengths"), py::arg("reverse"), py::arg("y"), py::arg("ldy"), py::arg("h_n"),
        py::arg("c_n"), py::arg("workspace"), py::arg("scratch"), py::arg("stream"), py::arg("proj_size"),
        py::arg("w_hr"),
        "Recurrence of one layer-direction on device pointers (seqkernels/recurrent.h, CUDA); 0 = null. "
        "proj_size > 0 (LSTM with projections) takes w_hr (R, H). Use seqkernels.nn, which owns the arrays.");
  m.def("recurrent_backward",
        [](const std::string& dtype, const std::string& mode, bool reset_after, const std::string& nonlinearity,
           int steps, int batch, int hidden, std::uintptr_t w_hh, std::uintptr_t lengths, bool reverse,
           std::uintptr_t dy, int ldy, std::uintptr_t dh_n, std::uintptr_t dc_n, std::uintptr_t workspace,
           std::uintptr_t dzx, std::uintptr_t dzh, std::uintptr_t dh0, std::uintptr_t dc0, std::uintptr_t scratch,
           std::uintptr_t stream, int proj_size, std::uintptr_t w_hr, std::uintptr_t dht) {
          const auto cell = seqkernels::cell_spec(mode, reset_after, nonlinearity, proj_size);
          check_sizes(steps, batch, hidden);
          check_arg(proj_size < hidden, "proj_size must be smaller than hidden");
          check_arg(dtype == "float32" || dtype == "float64", "dtype: expected float32 or float64, got " + dtype);
          auto f = dtype == "float32" ? &recurrent_backward_t<float> : &recurrent_backward_t<double>;
          py::gil_scoped_release nogil;
          f(cell, steps, batch, hidden, w_hh, lengths, reverse, dy, ldy, dh_n, dc_n, workspace, dzx, dzh, dh0, dc0,
            scratch, stream, w_hr, dht);
        },
        py::arg("dtype"), py::arg("mode"), py::arg("reset_after"), py::arg("nonlinearity"), py::arg("steps"),
        py::arg("batch"), py::arg("hidden"), py::arg("w_hh"), py::arg("lengths"), py::arg("reverse"), py::arg("dy"),
        py::arg("ldy"), py::arg("dh_n"), py::arg("dc_n"), py::arg("workspace"), py::arg("dzx"), py::arg("dzh"),
        py::arg("dh0"), py::arg("dc0"), py::arg("scratch"), py::arg("stream"), py::arg("proj_size"), py::arg("w_hr"),
        py::arg("dht"),
        "Backward through time of one layer-direction on device pointers: writes dzx (and dzh), dh0, dc0 "
        "(and, with proj_size > 0, dht: the gradient reaching h_t).");
  m.def("last_launch_plan", []() {
    const auto p = seqkernels::cuda::last_launch_plan();
    py::dict d;
    d["blocks"] = p.blocks; d["units_per_block"] = p.units; d["shared_memory"] = p.smem;
    d["weights_in_shared_memory"] = p.smem > 0;
    d["staging_bytes"] = p.stage;
    return d;
  });
  m.def("glove_resident_warps", &seqkernels::glove::cuda::resident_epoch_warps,
        "Warps of the GloVe epoch kernel resident at once on the current device (0 if unknown).");
  m.def("glove_epoch_blocks", &seqkernels::glove::cuda::epoch_blocks_for, py::arg("warps"),
        "Blocks (and partial sums) of a GloVe epoch run by `warps` warps.");
  m.def("glove_train_epoch",
        [](std::uintptr_t W, std::uintptr_t gradsq, std::uintptr_t rows, std::uintptr_t cols,
           std::uintptr_t log_values, std::uintptr_t weights, long long vocab_size, int vector_size, long long records,
           double eta, double grad_clip, std::uintptr_t block_cost, std::uintptr_t block_skipped, int warps,
           std::uintptr_t stream) {
          check_arg(vocab_size >= 1 && records >= 0, "vocab_size >= 1 and records >= 0 expected");
          check_arg(vector_size >= 1 && vector_size <= seqkernels::glove::cuda::kMaxCudaVectorSize,
                    "vector_size: the CUDA epoch supports 1.." +
                        std::to_string(seqkernels::glove::cuda::kMaxCudaVectorSize));
          check_arg(warps >= 1, "warps: expected >= 1, got " + std::to_string(warps));
          seqkernels::glove::TrainArgs a;
          a.vocab_size = vocab_size; a.vector_size = vector_size; a.records = records;
          a.W = dev<double>(W); a.gradsq = dev<double>(gradsq);
          a.rows = dev<const int32_t>(rows); a.cols = dev<const int32_t>(cols);
          a.log_values = dev<const double>(log_values); a.weights = dev<const double>(weights);
          a.eta = eta; a.grad_clip = grad_clip;
          check_arg(a.W && a.gradsq && a.rows && a.cols && a.log_values && a.weights && block_cost && block_skipped,
                    "glove_train_epoch: null pointer");
          const DeviceGuard guard(
              device_of({W, gradsq, rows, cols, log_values, weights, block_cost, block_skipped}, "glove_train_epoch"),
              stream, "glove_train_epoch");
          SK_CUDA_CHECK(static_cast<cudaError_t>(seqkernels::glove::cuda::train_epoch(
              a, dev<double>(block_cost), dev<long long>(block_skipped), warps, dev<void>(stream))));
        },
        py::arg("W"), py::arg("gradsq"), py::arg("rows"), py::arg("cols"), py::arg("log_values"), py::arg("weights"),
        py::arg("vocab_size"), py::arg("vector_size"), py::arg("records"), py::arg("eta"), py::arg("grad_clip"),
        py::arg("block_cost"), py::arg("block_skipped"), py::arg("warps"), py::arg("stream"),
        "One GloVe AdaGrad epoch on device pointers (seqkernels/glove.h, CUDA) run by `warps` warps; "
        "per-block partial sums (glove_epoch_blocks(warps) of each).");
  m.def("runtime_version", []() {
    int v = 0;
    SK_CUDA_CHECK(cudaRuntimeGetVersion(&v));
    return v;
  });
}
