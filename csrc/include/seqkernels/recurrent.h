// One direction of one recurrent layer (LSTM, GRU, Elman RNN): forward over a whole sequence, and
// backward through time. Equations: docs/ops.md §1; dimensions as in common.h; G = 4 (LSTM), 3 (GRU),
// 1 (RNN).
//
// Work split (CPU; docs/architecture.md §6): the gradients dX, dW_ih, dW_hh are GEMMs over all T·B
// rows (OpenBLAS, cut into pieces fixed by the shape and spread over the thread team,
// thread_team.h). The recurrence is one team run for the whole sequence, as tasks (a step, or a
// phase of one) × (a chunk of hidden units) taken by whichever members run; a task computes its
// chunk's products with our register-blocked micro-kernel over weights packed once per weight
// change (the pack, below) and applies the cell's pointwise math (cell_math.h) to each finished
// tile while it is still in L1; a stage starts once the previous one is done. The input's product
// x_t·W_ihᵀ: for cells whose gates take one pre-activation x·W_ihᵀ + h·W_hhᵀ (fuses_input: LSTM
// without projections, RNN) and batches of at least kFusedInputMinBatch rows, the step's
// micro-kernel runs over [W_ih | W_hh] packed together (one pass, K = I + H); for fewer rows
// (where a step would stream W_ih for few rows) the same micro-kernel runs over W_ih's packed rows
// for all T·B rows before the recurrence; for the other cells (GRU, projections) that product is
// one OpenBLAS GEMM. A one-step call for one row (decoding) uses no pack: the forward's products
// are dot products along the weights' own rows, the backward's dz·W_hh sums W_hh's rows
// (kRowsProductMaxBatch; LSTM with projections keeps the pack). Results are bit-identical for any
// thread count (not across those thresholds: the forms round differently).
//
// Variable lengths (PackedSequence semantics): step t of sequence b is active iff t < lengths[b].
// Inactive steps write y = 0, keep the state, and pass the state gradient through unchanged.
// The reverse direction runs t = T−1 … 0, so each sequence starts at its own last valid step.
//
// LSTM with projections (CellSpec::proj = P, 0 < P < H; torch's proj_size): h_t = W_hr (o ⊙ tanh c_t)
// has R = P units while the gates and c_t keep H. W_hh is (4H, P), W_hr is (P, H); h0, h_n and
// this direction's columns of y have R units, c0 and c_n H. Without projections R = H. The
// projection is a second dependent product per step (a second task stage).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "seqkernels/cell_math.h"

namespace seqkernels {

enum class CellKind : int { Lstm = 0, Gru = 1, Rnn = 2 };

struct CellSpec {
  CellKind kind = CellKind::Lstm;
  bool reset_after = true;               // GRU only: PyTorch/cuDNN form (true) or Cho et al. 2014 (false)
  Activation activation = Activation::Tanh;  // RNN only
  int proj = 0;                          // LSTM only: projection size P (0 = no projection)
  SK_HOST_DEVICE int gates() const { return kind == CellKind::Lstm ? 4 : kind == CellKind::Gru ? 3 : 1; }
  SK_HOST_DEVICE bool has_cell_state() const { return kind == CellKind::Lstm; }
  // R, the units of h (and of y, h0, h_n): P with projections, else H.
  SK_HOST_DEVICE int state_size(int hidden) const { return proj > 0 ? proj : hidden; }
};

// The cell from the names the Python layer uses ("lstm" | "gru" | "rnn", "tanh" | "relu").
inline CellSpec cell_spec(const std::string& mode, bool reset_after, const std::string& nonlinearity,
                          int proj_size = 0) {
  CellSpec c;
  if (mode == "lstm") c.kind = CellKind::Lstm;
  else if (mode == "gru") c.kind = CellKind::Gru;
  else if (mode == "rnn") c.kind = CellKind::Rnn;
  else SK_CHECK(false, "mode must be 'lstm', 'gru' or 'rnn', got '" << mode << "'");
  SK_CHECK(nonlinearity == "tanh" || nonlinearity == "relu",
           "nonlinearity must be 'tanh' or 'relu', got '" << nonlinearity << "'");
  c.reset_after = reset_after;
  c.activation = nonlinearity == "tanh" ? Activation::Tanh : Activation::Relu;
  SK_CHECK(proj_size >= 0, "proj_size must be >= 0, got " << proj_size);
  SK_CHECK(proj_size == 0 || c.kind == CellKind::Lstm, "proj_size applies to mode 'lstm' only, got mode '" << mode << "'");
  c.proj = proj_size;
  return c;
}

// Training workspace, owned by the caller: filled by the forward pass, read by the backward pass.
// Layout, in elements of the working type, each block (·, B, ·) row-major:
//   states  (T+1, B, R)  hidden state before/after every step (R = cell.state_size(H)). Forward direction: slot 0 = h0,
//                         slot t+1 = state after step t. Reverse: slot T = h0, slot t = after step t.
//                         So h_{t-1} of every step is one contiguous (T, B, H) block.
//   cstates (T+1, B, H)  LSTM cell states, same slots (LSTM only)
//   acts    (T, B, G·H)  post-activation gates by time position: LSTM i,f,g,o; GRU r,u,n (not RNN)
//   aux     (T, B, H)    GRU only: reset_after → W_hn h + b_hn; otherwise r ⊙ h_{t-1}
//   proj    (T, B, H)    LSTM with projections only: m_t = o ⊙ tanh c_t, the input of W_hr
// This struct is the one definition of those offsets (CPU kernels, CUDA kernels and, through
// _C.workspace_layout, Python); an absent block has offset −1.
struct WorkspaceLayout {
  long long states = 0, cstates = -1, acts = -1, aux = -1, proj = -1, size = 0;
};
SK_HOST_DEVICE WorkspaceLayout workspace_layout(const CellSpec& cell, int steps, int batch, int hidden) {
  const long long bh = static_cast<long long>(batch) * hidden, state = (steps + 1LL) * bh;
  WorkspaceLayout l;
  long long at = (steps + 1LL) * batch * cell.state_size(hidden);  // states first
  if (cell.kind == CellKind::Lstm) { l.cstates = at; at += state; }
  if (cell.kind != CellKind::Rnn) { l.acts = at; at += steps * bh * cell.gates(); }
  if (cell.kind == CellKind::Gru) { l.aux = at; at += steps * bh; }
  if (cell.proj > 0) { l.proj = at; at += steps * bh; }
  l.size = at;
  return l;
}
std::size_t workspace_size(const CellSpec& cell, int steps, int batch, int hidden);

// Cells whose gates take one pre-activation x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh, so that a step can
// compute both products in one pass over [W_ih | W_hh] (GRU keeps W_hn·h apart from x; an LSTM with
// projections runs two stages per step).
SK_HOST_DEVICE bool fuses_input(const CellSpec& c) {
  return c.kind == CellKind::Rnn || (c.kind == CellKind::Lstm && c.proj == 0);
}
// Fewer rows than this: the input's product for every step comes before the recurrence instead (a
// step would stream W_ih from L2 for a few rows; measured in bench/NOTES.md, CPU recurrence v11).
constexpr int kFusedInputMinBatch = 4;
// A one-step call (decoding) with at most this many rows takes its products straight from the
// weights' rows (dot products, each weight read once) and leaves the pack alone: with one step there
// is nothing to reuse a pack for, and hashing it and reading it cost more than the products
// (bench/NOTES.md, CPU recurrence v14; with 2–8 rows the result was mixed, so they keep the pack).
// The forward's bits then differ from those of the same step inside a longer call; the backward's
// product adds in the packed tiles' order and keeps their bits (v15).
constexpr int kRowsProductMaxBatch = 1;

// Packed recurrent weights, owned by the caller (optional): the layout the CPU micro-kernels read,
// built from W_hh (and W_hr with projections; W_ih too where fuses_input) inside the kernels. A
// buffer of packed_weights_size() elements starts with a header recording the CPU capability, cell,
// sizes and content hashes of the weights it was built from; every call that reads it hashes the
// weights it will read (one read each) and rebuilds only the part whose weights differ. So a layer
// packs once per weight change (load, optimizer step, in-place edit), never per step, and can never
// use a stale pack. Without a buffer each call packs into a private one.
template <typename T> constexpr std::size_t pack_header_elements() { return 128 / sizeof(T); }
template <typename T>
std::size_t packed_weights_size(const CellSpec& cell, int input, int hidden) {
  // forward panels (W_ih's rows first where fuses_input) and the transposed backward panel of
  // W_hh, output units padded to a multiple of 64 (the widest chunk of any capability); with
  // projections, the same two for W_hr
  auto padded = [](int n) { return (static_cast<std::size_t>(n) + 63) / 64 * 64; };
  const std::size_t G = static_cast<std::size_t>(cell.gates()), H = hidden, R = cell.state_size(hidden);
  const std::size_t X = fuses_input(cell) ? static_cast<std::size_t>(input) : 0;
  std::size_t n = G * (X + R) * padded(hidden) + G * H * padded(static_cast<int>(R));
  if (cell.proj > 0) n += H * padded(static_cast<int>(R)) + R * padded(hidden);
  return pack_header_elements<T>() + n;
}

template <typename T>
struct ForwardArgs {
  int steps = 0, batch = 0, input = 0, hidden = 0;  // T, B, I, H
  const T* x = nullptr;        // (T, B, I)
  const T* w_ih = nullptr;     // (G·H, I), PyTorch layout
  const T* w_hh = nullptr;     // (G·H, R)
  const T* w_hr = nullptr;     // (R, H) with projections, else null
  const T* b_ih = nullptr;     // (G·H) or null (bias=False)
  const T* b_hh = nullptr;     // (G·H) or null
  const T* h0 = nullptr;       // (B, R) or null for zeros
  const T* c0 = nullptr;       // (B, H) or null for zeros; LSTM only
  const int32_t* lengths = nullptr;  // (B), each in 1..T, or null for all T
  bool reverse = false;
  T* y = nullptr;              // out (T, B, ·) with row stride ldy: this direction's R columns
  int ldy = 0;                 //     (the caller offsets y by d·R for direction d)
  T* h_n = nullptr;            // out (B, R)
  T* c_n = nullptr;            // out (B, H); LSTM only
  T* workspace = nullptr;      // training: workspace_size() elements, caller-owned; null = inference
  T* pack = nullptr;           // packed weights (see above), caller-owned and updated here; or null
  std::size_t pack_size = 0;   //     its length in elements
  int num_threads = 0;         // 0 = the default team size (thread_team.h)
};

template <typename T>
struct BackwardArgs {
  int steps = 0, batch = 0, input = 0, hidden = 0;
  const T* x = nullptr;        // (T, B, I)   the forward input
  const T* w_ih = nullptr;     // (G·H, I)
  const T* w_hh = nullptr;     // (G·H, R)
  const T* w_hr = nullptr;     // (R, H) with projections, else null
  const int32_t* lengths = nullptr;
  bool reverse = false;
  const T* dy = nullptr;       // (T, B, ·) row stride ldy, offset by d·R like y
  int ldy = 0;
  const T* dh_n = nullptr;     // (B, R) or null
  const T* dc_n = nullptr;     // (B, H) or null; LSTM only
  const T* workspace = nullptr;  // as left by the training forward
  T* dx = nullptr;             // (T, B, I)  accumulated into (+=), so directions can share it ...
  bool accumulate_dx = true;   // ... or, when false, written (the first direction: no zeroing first)
  T* dh0 = nullptr;            // out (B, R)
  T* dc0 = nullptr;            // out (B, H); LSTM only (may be null)
  T* dw_ih = nullptr;          // out (G·H, I)
  T* dw_hh = nullptr;          // out (G·H, R)
  T* dw_hr = nullptr;          // out (R, H) with projections, else null
  T* db_ih = nullptr;          // out (G·H) or null
  T* db_hh = nullptr;          // out (G·H) or null
  T* pack = nullptr;           // packed weights as in ForwardArgs (gains the backward panel), or null
  std::size_t pack_size = 0;
  int num_threads = 0;
};

// These dispatch to the copy compiled for the CPU's capability (cpu_capability.h).
template <typename T> void recurrent_forward(const CellSpec& cell, const ForwardArgs<T>& a);
template <typename T> void recurrent_backward(const CellSpec& cell, const BackwardArgs<T>& a);

// The float32 activations the kernels use, y[i] = f(x[i]) with fn 0 = exp, 1 = tanh, 2 = sigmoid
// (exposed for the accuracy tests), dispatched like the kernels. vector_form: as the LSTM rows'
// explicit vector code computes them (AVX-512 has its own forms there), else as the scalar loops.
void activation(int fn, bool vector_form, const float* x, float* y, std::ptrdiff_t n);

// Threads: `num_threads` through team_size() (thread_team.h); the recurrence itself uses at most
// one thread per chunk of 4·SIMD-width units.

}  // namespace seqkernels
