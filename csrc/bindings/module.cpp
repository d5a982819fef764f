// pybind11 module seqkernels._C: NumPy in, NumPy out. Every array is checked here (dtype, shape,
// contiguity, writability) so that no call from Python can reach a kernel with a bad pointer;
// seqkernels.nn does the user-facing validation with friendlier messages first.
#include <omp.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "array_checks.h"
#include "seqkernels/beam_search.h"
#include "seqkernels/blas.h"
#include "seqkernels/block_pool.h"
#include "seqkernels/cpu_capability.h"
#include "seqkernels/recurrent.h"
#include "seqkernels/thread_team.h"

namespace py = pybind11;
using namespace seqkernels;

void bind_glove(py::module_& m);  // csrc/bindings/glove.cpp
void bind_bench(py::module_& m);  // csrc/bindings/bench.cpp
void bind_search(py::module_& m);  // csrc/bindings/search.cpp
void bind_word2vec(py::module_& m);  // csrc/bindings/word2vec.cpp

namespace {

using bindings::checked;  // csrc/bindings/array_checks.h: dtype, layout, writability, exact shape
using bindings::shape_str;

template <typename T>
T* opt_ptr(const py::object& o, const char* name, std::vector<py::ssize_t> shape, bool writable = false) {
  if (o.is_none()) return nullptr;
  SK_CHECK(py::isinstance<py::array>(o), name << ": expected a NumPy array or None");
  return checked<T>(o.cast<py::array>(), name, std::move(shape), writable);
}

const int32_t* lengths_ptr(const py::object& o, int steps, int batch) {
  const int32_t* p = opt_ptr<int32_t>(o, "lengths", {batch});
  for (int b = 0; p && b < batch; ++b)
    SK_CHECK(p[b] >= 1 && p[b] <= steps, "lengths: every entry must be in 1.." << steps << ", got " << p[b]
                                                                                 << " at index " << b);
  return p;
}

// The caller's pack buffer (recurrent.h): a 1-D writable array of the working type, at least
// packed_weights_size() long; None = a private pack per call.
template <typename T>
T* pack_ptr(const py::object& o, const CellSpec& cell, int input, int hidden, std::size_t* size) {
  *size = 0;
  if (o.is_none()) return nullptr;
  SK_CHECK(py::isinstance<py::array>(o), "pack: expected a NumPy array or None");
  const py::array a = o.cast<py::array>();
  SK_CHECK(a.ndim() == 1, "pack: expected a 1-D array, got " << shape_str(a));
  const std::size_t need = packed_weights_size<T>(cell, input, hidden);
  SK_CHECK(static_cast<std::size_t>(a.shape(0)) >= need,
           "pack: expected at least " << need << " elements (pack_size), got " << a.shape(0));
  *size = static_cast<std::size_t>(a.shape(0));
  return checked<T>(a, "pack", {a.shape(0)}, true);
}

// H: w_hh's columns, or with projections its rows / G (its columns are then P; the shape of
// every array is checked against these afterwards).
int hidden_from(const CellSpec& cell, const py::array& w_hh) {
  SK_CHECK(w_hh.ndim() == 2, "w_hh: expected 2 dimensions (G*H, R), got " << shape_str(w_hh));
  if (cell.proj == 0) return static_cast<int>(w_hh.shape(1));
  const int G = cell.gates();
  SK_CHECK(w_hh.shape(0) % G == 0, "w_hh: expected " << G << "*H rows, got " << shape_str(w_hh));
  const int H = static_cast<int>(w_hh.shape(0) / G);
  SK_CHECK(cell.proj < H, "proj_size must be smaller than the hidden size " << H << ", got " << cell.proj);
  return H;
}

// W_hr (R, H) with projections; must be None without.
template <typename T>
const T* w_hr_ptr(const py::object& w_hr, const CellSpec& cell, int H) {
  if (cell.proj == 0) {
    SK_CHECK(w_hr.is_none(), "w_hr: given, but proj_size is 0");
    return nullptr;
  }
  SK_CHECK(!w_hr.is_none(), "w_hr: expected a (" << cell.proj << ", " << H << ") array for proj_size " << cell.proj);
  return opt_ptr<T>(w_hr, "w_hr", {cell.proj, H});
}

template <typename T>
void forward_t(const CellSpec& cell, const py::array& x, const py::array& w_ih, const py::array& w_hh,
               const py::object& w_hr, const py::object& b_ih, const py::object& b_hh, const py::object& h0, const py::object& c0,
               const py::object& lengths, bool reverse, const py::array& y, int direction, const py::array& h_n,
               const py::object& c_n, const py::object& workspace, const py::object& pack, int num_threads) {
  SK_CHECK(x.ndim() == 3, "x: expected 3 dimensions (T, B, I), got " << shape_str(x));
  ForwardArgs<T> a;
  a.steps = static_cast<int>(x.shape(0));
  a.batch = static_cast<int>(x.shape(1));
  a.input = static_cast<int>(x.shape(2));
  a.hidden = hidden_from(cell, w_hh);
  const int G = cell.gates(), H = a.hidden, B = a.batch, R = cell.state_size(H);
  SK_CHECK(a.steps >= 1 && B >= 1 && a.input >= 1 && H >= 1, "x and w_hh: every size must be >= 1");
  SK_CHECK(y.ndim() == 3, "y: expected 3 dimensions (T, B, D*R), got " << shape_str(y));
  const py::ssize_t width = y.shape(2);
  SK_CHECK(direction >= 0 && (direction + 1) * static_cast<py::ssize_t>(R) <= width,
           "direction " << direction << " does not fit y of width " << width);
  a.x = checked<T>(x, "x", {a.steps, B, a.input});
  a.w_ih = checked<T>(w_ih, "w_ih", {G * H, a.input});
  a.w_hh = checked<T>(w_hh, "w_hh", {G * H, R});
  a.w_hr = w_hr_ptr<T>(w_hr, cell, H);
  a.b_ih = opt_ptr<T>(b_ih, "b_ih", {G * H});
  a.b_hh = opt_ptr<T>(b_hh, "b_hh", {G * H});
  a.h0 = opt_ptr<T>(h0, "h0", {B, R});
  a.c0 = cell.has_cell_state() ? opt_ptr<T>(c0, "c0", {B, H}) : nullptr;
  a.lengths = lengths_ptr(lengths, a.steps, B);
  a.reverse = reverse;
  a.y = checked<T>(y, "y", {a.steps, B, width}, true) + static_cast<std::ptrdiff_t>(direction) * R;
  a.ldy = static_cast<int>(width);
  a.h_n = checked<T>(h_n, "h_n", {B, R}, true);
  a.c_n = cell.has_cell_state() ? opt_ptr<T>(c_n, "c_n", {B, H}, true) : nullptr;
  a.workspace = opt_ptr<T>(workspace, "workspace",
                           {static_cast<py::ssize_t>(workspace_size(cell, a.steps, B, H))}, true);
  a.pack = pack_ptr<T>(pack, cell, a.input, H, &a.pack_size);
  a.num_threads = num_threads;
  py::gil_scoped_release release;
  recurrent_forward<T>(cell, a);
}

template <typename T>
void backward_t(const CellSpec& cell, const py::array& x, const py::array& w_ih, const py::array& w_hh,
                const py::object& w_hr, const py::object& lengths, bool reverse, const py::array& dy, int direction, const py::object& dh_n,
                const py::object& dc_n, const py::array& workspace, const py::array& dx, const py::array& dh0,
                const py::object& dc0, const py::array& dw_ih, const py::array& dw_hh, const py::object& db_ih,
                const py::object& db_hh, const py::object& dw_hr, const py::object& pack, int num_threads,
                bool accumulate_dx) {
  SK_CHECK(x.ndim() == 3, "x: expected 3 dimensions (T, B, I), got " << shape_str(x));
  BackwardArgs<T> a;
  a.steps = static_cast<int>(x.shape(0));
  a.batch = static_cast<int>(x.shape(1));
  a.input = static_cast<int>(x.shape(2));
  a.hidden = hidden_from(cell, w_hh);
  const int G = cell.gates(), H = a.hidden, B = a.batch, R = cell.state_size(H);
  SK_CHECK(a.steps >= 1 && B >= 1 && a.input >= 1 && H >= 1, "x and w_hh: every size must be >= 1");
  SK_CHECK(dy.ndim() == 3, "dy: expected 3 dimensions (T, B, D*R), got " << shape_str(dy));
  const py::ssize_t width = dy.shape(2);
  SK_CHECK(direction >= 0 && (direction + 1) * static_cast<py::ssize_t>(R) <= width,
           "direction " << direction << " does not fit dy of width " << width);
  a.x = checked<T>(x, "x", {a.steps, B, a.input});
  a.w_ih = checked<T>(w_ih, "w_ih", {G * H, a.input});
  a.w_hh = checked<T>(w_hh, "w_hh", {G * H, R});
  a.w_hr = w_hr_ptr<T>(w_hr, cell, H);
  a.lengths = lengths_ptr(lengths, a.steps, B);
  a.reverse = reverse;
  a.dy = checked<T>(dy, "dy", {a.steps, B, width}) + static_cast<std::ptrdiff_t>(direction) * R;
  a.ldy = static_cast<int>(width);
  a.dh_n = opt_ptr<T>(dh_n, "dh_n", {B, R});
  a.dc_n = cell.has_cell_state() ? opt_ptr<T>(dc_n, "dc_n", {B, H}) : nullptr;
  a.workspace = checked<T>(workspace, "workspace", {static_cast<py::ssize_t>(workspace_size(cell, a.steps, B, H))});
  a.dx = checked<T>(dx, "dx", {a.steps, B, a.input}, true);
  a.accumulate_dx = accumulate_dx;
  a.dh0 = checked<T>(dh0, "dh0", {B, R}, true);
  a.dc0 = cell.has_cell_state() ? opt_ptr<T>(dc0, "dc0", {B, H}, true) : nullptr;
  a.dw_ih = checked<T>(dw_ih, "dw_ih", {G * H, a.input}, true);
  a.dw_hh = checked<T>(dw_hh, "dw_hh", {G * H, R}, true);
  SK_CHECK(cell.proj == 0 || !dw_hr.is_none(), "dw_hr: expected a (" << R << ", " << H << ") array for proj_size " << R);
  a.dw_hr = cell.proj ? opt_ptr<T>(dw_hr, "dw_hr", {R, H}, true) : nullptr;
  a.db_ih = opt_ptr<T>(db_ih, "db_ih", {G * H}, true);
  a.db_hh = opt_ptr<T>(db_hh, "db_hh", {G * H}, true);
  a.pack = pack_ptr<T>(pack, cell, a.input, H, &a.pack_size);
  a.num_threads = num_threads;
  py::gil_scoped_release release;
  recurrent_backward<T>(cell, a);
}

bool is_float64(const py::array& x) {
  if (py::isinstance<py::array_t<double>>(x)) return true;
  SK_CHECK(py::isinstance<py::array_t<float>>(x),
           "x: expected dtype float32 or float64, got " << std::string(py::str(x.dtype())));
  return false;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "seqkernels CPU kernels (C++17, OpenMP, OpenBLAS). See seqkernels/recurrent.h.";
  m.attr("__version__") = SEQKERNELS_VERSION;
  bind_glove(m);
  bind_bench(m);
  bind_search(m);
  bind_word2vec(m);

  m.def("workspace_size",
        [](const std::string& mode, bool reset_after, const std::string& nonlinearity, int steps, int batch,
           int hidden, int proj_size) {
          SK_CHECK(steps >= 1 && batch >= 1 && hidden >= 1, "steps, batch and hidden must be >= 1");
          return workspace_size(cell_spec(mode, reset_after, nonlinearity, proj_size), steps, batch, hidden);
        },
        py::arg("mode"), py::arg("reset_after"), py::arg("nonlinearity"), py::arg("steps"), py::arg("batch"),
        py::arg("hidden"), py::arg("proj_size") = 0, "Elements of the training workspace of one layer-direction.");

  m.def("workspace_layout",
        [](const std::string& mode, bool reset_after, const std::string& nonlinearity, int steps, int batch,
           int hidden, int proj_size) {
          SK_CHECK(steps >= 1 && batch >= 1 && hidden >= 1, "steps, batch and hidden must be >= 1");
          const WorkspaceLayout l =
              workspace_layout(cell_spec(mode, reset_after, nonlinearity, proj_size), steps, batch, hidden);
          py::dict d;
          d["states"] = l.states, d["cstates"] = l.cstates, d["acts"] = l.acts, d["aux"] = l.aux, d["size"] = l.size;
          d["proj"] = l.proj;
          return d;
        },
        py::arg("mode"), py::arg("reset_after"), py::arg("nonlinearity"), py::arg("steps"), py::arg("batch"),
        py::arg("hidden"), py::arg("proj_size") = 0,
        "Element offsets of the workspace blocks (states, cstates, acts, aux, proj; -1 = absent) and its size.");

  m.def("pack_size",
        [](const std::string& mode, bool reset_after, const std::string& nonlinearity, int input, int hidden,
           const std::string& dtype, int proj_size) {
          SK_CHECK(input >= 1, "input must be >= 1");
          SK_CHECK(hidden >= 1, "hidden must be >= 1");
          SK_CHECK(dtype == "float32" || dtype == "float64", "dtype must be 'float32' or 'float64', got '" << dtype << "'");
          const CellSpec cell = cell_spec(mode, reset_after, nonlinearity, proj_size);
          return dtype == "float32" ? packed_weights_size<float>(cell, input, hidden)
                                    : packed_weights_size<double>(cell, input, hidden);
        },
        py::arg("mode"), py::arg("reset_after"), py::arg("nonlinearity"), py::arg("input"), py::arg("hidden"),
        py::arg("dtype"), py::arg("proj_size") = 0,
        "Elements of a pack buffer for one layer-direction's recurrent weights (W_hh, with W_ih where the cell "
        "fuses its input product into the step; pass it as pack= to forward/backward).");

  m.def("pooled_empty",
        [](const std::vector<py::ssize_t>& shape, const py::dtype& dtype) {
          SK_CHECK(dtype.equal(py::dtype::of<float>()) || dtype.equal(py::dtype::of<double>()),
                   "dtype must be float32 or float64");
          std::size_t bytes = static_cast<std::size_t>(dtype.itemsize());
          for (py::ssize_t n : shape) {
            SK_CHECK(n >= 0, "shape must not be negative");
            bytes *= static_cast<std::size_t>(n);
          }
          // The block goes back to the pool when the array (and whatever keeps it alive: a torch
          // tensor made by torch.from_numpy, a view) is freed.
          struct Block {
            void* data;
            std::size_t bytes;
          };
          bytes = std::max<std::size_t>(bytes, 1);  // an empty array still gets a block of its own
          auto* b = new Block{block_pool::take(bytes), bytes};
          py::capsule owner(b, [](void* p) {
            auto* freed = static_cast<Block*>(p);
            block_pool::give(freed->data, freed->bytes);
            delete freed;
          });
          return py::array(dtype, shape, b->data, owner);
        },
        py::arg("shape"), py::arg("dtype"),
        "An uninitialised C-contiguous array whose memory comes from (and returns to) the block pool, so "
        "that a buffer allocated every call (a training workspace) does not fault in fresh pages each time.");
  m.def("pool_free_bytes", &block_pool::free_bytes, "Bytes held by the block pool's free blocks.");
  m.def("pool_release", &block_pool::release, "Frees the block pool's free blocks; returns the bytes freed.");

  m.def("team_size", [](int requested) { return team_size(requested); }, py::arg("requested") = 0,
        "Threads a kernel call uses when asked for `requested` (0 = the default team size).");
  m.def("team_forks_seen", &team_forks_seen,
        "Times this process's thread team was re-created after fork() (0 in a process that never forked).");
  m.def("team_jobs_withdrawn", &team_jobs_withdrawn,
        "Team jobs the caller took back from workers that had not started when its own share ended.");
  m.def("set_team_sharing", &set_team_sharing, py::arg("share"),
        "Run the kernels' thread team on the process's libgomp pool (torch's) instead of our own threads.");
  m.def("team_shares_openmp_pool", &team_shares_openmp_pool,
        "Whether team runs go to a shared OpenMP pool (sharing on, a libgomp loaded, not a fork child; "
        "a second on our own team after late pool workers on a busy host is not reported).");

  m.def("forward",
        [](const std::string& mode, bool reset_after, const std::string& nonlinearity, const py::array& x,
           const py::array& w_ih, const py::array& w_hh, const py::object& b_ih, const py::object& b_hh,
           const py::object& h0, const py::object& c0, const py::object& lengths, bool reverse, const py::array& y,
           int direction, const py::array& h_n, const py::object& c_n, const py::object& workspace,
           const py::object& pack, int num_threads, int proj_size, const py::object& w_hr) {
          const CellSpec cell = cell_spec(mode, reset_after, nonlinearity, proj_size);
          if (is_float64(x))
            forward_t<double>(cell, x, w_ih, w_hh, w_hr, b_ih, b_hh, h0, c0, lengths, reverse, y, direction, h_n, c_n,
                              workspace, pack, num_threads);
          else
            forward_t<float>(cell, x, w_ih, w_hh, w_hr, b_ih, b_hh, h0, c0, lengths, reverse, y, direction, h_n, c_n,
                             workspace, pack, num_threads);
        },
        py::kw_only(), py::arg("mode"), py::arg("reset_after"), py::arg("nonlinearity"), py::arg("x"), py::arg("w_ih"),
        py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"), py::arg("h0"), py::arg("c0"), py::arg("lengths"),
        py::arg("reverse"), py::arg("y"), py::arg("direction"), py::arg("h_n"), py::arg("c_n"),
        py::arg("workspace"), py::arg("pack") = py::none(), py::arg("num_threads") = 0, py::arg("proj_size") = 0,
        py::arg("w_hr") = py::none(),
        "One direction of one layer over a whole sequence; writes y[:, :, d*R:(d+1)*R], h_n, c_n and, "
        "when a workspace is given (training), everything backward needs (R = proj_size or H).");

  m.def("backward",
        [](const std::string& mode, bool reset_after, const std::string& nonlinearity, const py::array& x,
           const py::array& w_ih, const py::array& w_hh, const py::object& lengths, bool reverse, const py::array& dy,
           int direction, const py::object& dh_n, const py::object& dc_n, const py::array& workspace,
           const py::array& dx, const py::array& dh0, const py::object& dc0, const py::array& dw_ih,
           const py::array& dw_hh, const py::object& db_ih, const py::object& db_hh, const py::object& pack,
           int num_threads, int proj_size, const py::object& w_hr, const py::object& dw_hr, bool accumulate_dx) {
          const CellSpec cell = cell_spec(mode, reset_after, nonlinearity, proj_size);
          if (is_float64(x))
            backward_t<double>(cell, x, w_ih, w_hh, w_hr, lengths, reverse, dy, direction, dh_n, dc_n, workspace, dx,
                               dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr, pack, num_threads, accumulate_dx);
          else
            backward_t<float>(cell, x, w_ih, w_hh, w_hr, lengths, reverse, dy, direction, dh_n, dc_n, workspace, dx,
                              dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr, pack, num_threads, accumulate_dx);
        },
        py::kw_only(), py::arg("mode"), py::arg("reset_after"), py::arg("nonlinearity"), py::arg("x"), py::arg("w_ih"),
        py::arg("w_hh"), py::arg("lengths"), py::arg("reverse"), py::arg("dy"), py::arg("direction"),
        py::arg("dh_n"), py::arg("dc_n"), py::arg("workspace"), py::arg("dx"), py::arg("dh0"), py::arg("dc0"),
        py::arg("dw_ih"), py::arg("dw_hh"), py::arg("db_ih"), py::arg("db_hh"), py::arg("pack") = py::none(),
        py::arg("num_threads") = 0, py::arg("proj_size") = 0, py::arg("w_hr") = py::none(),
        py::arg("dw_hr") = py::none(), py::arg("accumulate_dx") = true,
        "Backward through time of one direction of one layer: adds into dx (writes it with "
        "accumulate_dx=False: the first direction, so dx needs no zeroing), writes dh0, dc0 and the "
        "weight and bias gradients.");

  m.def("cell_math",
        [](const std::string& fn, py::array_t<float, py::array::c_style | py::array::forcecast> x, bool vector) {
          SK_CHECK(fn == "exp" || fn == "tanh" || fn == "sigmoid", "fn must be 'exp', 'tanh' or 'sigmoid', got '" << fn << "'");
          py::array_t<float> out(x.size());
          activation(fn == "exp" ? 0 : fn == "tanh" ? 1 : 2, vector, x.data(), out.mutable_data(), x.size());
          return out;
        },
        py::arg("fn"), py::arg("x"), py::arg("vector") = false,
        "The float32 activations the CPU kernels use (for accuracy tests): vector=False as the scalar "
        "loops (GRU, RNN) compute them, vector=True as the LSTM rows' explicit vector code does.");

  m.def("set_cpu_capability", &set_cpu_capability, py::arg("name"),
        "Select the CPU kernels' instruction set, one of cpu_capabilities() (tests use this; "
        "the environment variable SEQKERNELS_CPU_CAPABILITY caps the choice at import).");
  m.def("cpu_capability", []() { return std::string(cpu_capability_name(cpu_capability())); });
  m.def("cpu_capabilities", &cpu_capability_names,
        "Every CPU kernel copy this build has, narrowest first (not all may run on this CPU).");

  m.def("build_info", []() {
    py::dict d;
    d["version"] = SEQKERNELS_VERSION;
    d["blas"] = SEQKERNELS_BLAS_NAME;
    d["blas_config"] = blas::config();
    d["blas_core"] = blas::core_name();
    d["blas_threads"] = blas::num_threads();
    d["openmp_threads"] = omp_get_max_threads();
    d["team_threads"] = team_size(0);
    d["team_shares_openmp_pool"] = team_shares_openmp_pool();
    d["openmp_version"] = _OPENMP;
    d["cpu_capability"] = cpu_capability_name(cpu_capability());
    d["cpu_capability_best"] = cpu_capability_name(best_cpu_capability());
#if defined(__SANITIZE_ADDRESS__)
    d["address_sanitizer"] = true;  // the process's memory then includes ASan's shadow and quarantine
#else
    d["address_sanitizer"] = false;
#endif
    return d;
  });
}
