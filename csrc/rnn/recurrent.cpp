// Fused CPU recurrence for LSTM, GRU and RNN: forward and backward through time of one direction
// of one layer. The contract (shapes, ownership, workspace layout) is in seqkernels/recurrent.h.
//
// Inside the time loop each thread owns hidden units [j0, j1). Per step it runs one BLAS call for
// its slice of the recurrent product and then the cell's pointwise math over its units, one batch
// row at a time (inner loops are `omp simd`: the float exp/tanh of cell_math.h vectorise).
//
// This file is compiled once per CPU capability (cpu_capability.h), each copy in its own namespace;
// recurrent_dispatch.cpp picks the copy at run time.
#include "seqkernels/recurrent.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "seqkernels/blas.h"

namespace seqkernels {
namespace SK_CPU_CAPABILITY {
namespace {

using idx = std::ptrdiff_t;

// Hidden units [j0, j1) owned by thread k of n. Boundaries are multiples of 8 so every slice
// starts on a SIMD-friendly column; recurrence_threads() keeps at least 32 units per thread.
struct Slice {
  int j0, j1;
  int size() const { return j1 - j0; }
};
Slice unit_slice(int hidden, int nthreads, int k) {
  auto bound = [&](int q) {
    if (q <= 0) return 0;
    if (q >= nthreads) return hidden;
    return static_cast<int>((static_cast<long>(hidden) * q / nthreads) & ~7L);
  };
  return {bound(k), bound(k + 1)};
}

template <typename P>
struct Workspace {
  P* states = nullptr;   // (T+1, B, H)
  P* cstates = nullptr;  // (T+1, B, H) LSTM
  P* acts = nullptr;     // (T, B, G·H) LSTM, GRU
  P* aux = nullptr;      // (T, B, H)   GRU
};

template <typename P>
Workspace<P> carve(const CellSpec& cell, P* base, int steps, int batch, int hidden) {
  Workspace<P> w;
  const idx state = static_cast<idx>(steps + 1) * batch * hidden;
  w.states = base;
  base += state;
  if (cell.kind == CellKind::Lstm) {
    w.cstates = base;
    base += state;
  }
  if (cell.kind != CellKind::Rnn) {
    w.acts = base;
    base += static_cast<idx>(steps) * batch * cell.gates() * hidden;
  }
  if (cell.kind == CellKind::Gru) w.aux = base;
  return w;
}

// Workspace slot of the state before / after the step at time position t (see recurrent.h).
inline int slot_prev(int t, bool reverse) { return reverse ? t + 1 : t; }
inline int slot_next(int t, bool reverse) { return reverse ? t : t + 1; }

inline bool active(const int32_t* lengths, int b, int t) { return lengths == nullptr || t < lengths[b]; }

template <typename T>
void copy_n(const T* src, int n, T* dst) { std::copy(src, src + n, dst); }
template <typename T>
void zero_n(T* dst, int n) { std::fill(dst, dst + n, T(0)); }

// Column sums of a (rows, cols) matrix through BLAS: out = Aᵀ·1.
template <typename T>
void column_sums(const T* a, int rows, int cols, T* out, int threads) {
  std::vector<T> ones(static_cast<size_t>(rows), T(1));
  blas::parallel_gemm(true, false, cols, 1, rows, T(1), a, cols, ones.data(), 1, T(0), out, 1, threads);
}

// ---- Pointwise forward of one batch row over units [j0, j0+hs) -----------------------------
// zx: the row of x·W_ihᵀ + b_ih (G·H, gate blocks of H); zh: this thread's recurrent product for
// the row (G·hs, gate blocks of hs); bh: b_hh (zeros when bias=False); ac: saved gates (G·H).

template <typename T>
void lstm_forward_row(int H, int j0, int hs, const T* zx, const T* zh, const T* bh, const T* c_prev, T* c_next,
                      T* h_next, T* y, T* ac) {
#pragma omp simd
  for (int jj = 0; jj < hs; ++jj) {
    const int j = j0 + jj;
    const LstmGates<T> g = lstm_gates(zx[j] + zh[jj] + bh[j], zx[H + j] + zh[hs + jj] + bh[H + j],
                                      zx[2 * H + j] + zh[2 * hs + jj] + bh[2 * H + j],
                                      zx[3 * H + j] + zh[3 * hs + jj] + bh[3 * H + j]);
    const T c = lstm_cell_state(g, c_prev[j]);
    const T h = lstm_hidden(g, c);
    c_next[j] = c;
    h_next[j] = h;
    y[j] = h;
    ac[j] = g.i; ac[H + j] = g.f; ac[2 * H + j] = g.g; ac[3 * H + j] = g.o;
  }
}

// GRU, reset_after = true: the whole step. aux ← W_hn h + b_hn.
template <typename T>
void gru_forward_row(int H, int j0, int hs, const T* zx, const T* zh, const T* bh, const T* h_prev, T* h_next, T* y,
                     T* ac, T* aux) {
#pragma omp simd
  for (int jj = 0; jj < hs; ++jj) {
    const int j = j0 + jj;
    const T r = sigmoid(zx[j] + zh[jj] + bh[j]);
    const T u = sigmoid(zx[H + j] + zh[hs + jj] + bh[H + j]);
    const T hn = zh[2 * hs + jj] + bh[2 * H + j];
    const T n = gru_candidate(zx[2 * H + j], r, hn, true);
    const T h = gru_hidden(u, n, h_prev[j]);
    h_next[j] = h;
    y[j] = h;
    ac[j] = r; ac[H + j] = u; ac[2 * H + j] = n;
    aux[j] = hn;
  }
}

// GRU, reset_after = false, phase 1: r and u; rh ← r ⊙ h_{t-1} (the input of W_hn).
template <typename T>
void gru_gates_row(int H, int j0, int hs, const T* zx, const T* zh, const T* bh, const T* h_prev, T* rh, T* ac) {
#pragma omp simd
  for (int jj = 0; jj < hs; ++jj) {
    const int j = j0 + jj;
    const T r = sigmoid(zx[j] + zh[jj] + bh[j]);
    ac[j] = r;
    ac[H + j] = sigmoid(zx[H + j] + zh[hs + jj] + bh[H + j]);
    rh[j] = r * h_prev[j];
  }
}

// GRU, reset_after = false, phase 2: candidate from zh_n = (r ⊙ h)·W_hnᵀ, then the new state.
template <typename T>
void gru_candidate_row(int H, int j0, int hs, const T* zx, const T* zh_n, const T* bh, const T* h_prev, T* h_next,
                       T* y, T* ac) {
#pragma omp simd
  for (int jj = 0; jj < hs; ++jj) {
    const int j = j0 + jj;
    const T n = gru_candidate(zx[2 * H + j], T(0), zh_n[jj] + bh[2 * H + j], false);
    const T h = gru_hidden(ac[H + j], n, h_prev[j]);
    ac[2 * H + j] = n;
    h_next[j] = h;
    y[j] = h;
  }
}

template <typename T>
void rnn_forward_row(Activation act, int j0, int hs, const T* zx, const T* zh, const T* bh, T* h_next, T* y) {
  if (act == Activation::Tanh) {
#pragma omp simd
    for (int jj = 0; jj < hs; ++jj) {
      const int j = j0 + jj;
      h_next[j] = y[j] = rnn_hidden(Activation::Tanh, zx[j], zh[jj] + bh[j]);
    }
  } else {
#pragma omp simd
    for (int jj = 0; jj < hs; ++jj) {
      const int j = j0 + jj;
      h_next[j] = y[j] = rnn_hidden(Activation::Relu, zx[j], zh[jj] + bh[j]);
    }
  }
}

// ---- Pointwise backward of one batch row over units [j0, j0+hs) ----------------------------
// dh = dy + dh_in is the total gradient reaching h_t. Writes the pre-activation gradients dz
// (and dzh for GRU reset_after) and the direct part of dh_{t-1} (the W_hh part is added after).

template <typename T>
void lstm_backward_row(int H, int j0, int hs, const T* dy, const T* dh_in, const T* ac, const T* c, const T* c_prev,
                       T* dc, T* dz, T* dh_out) {
#pragma omp simd
  for (int jj = 0; jj < hs; ++jj) {
    const int j = j0 + jj;
    const LstmGates<T> g{ac[j], ac[H + j], ac[2 * H + j], ac[3 * H + j]};
    LstmGates<T> d;
    T dc_prev;
    lstm_unit_backward(dy[j] + dh_in[j], dc[j], g, c[j], c_prev[j], &d, &dc_prev);
    dz[j] = d.i; dz[H + j] = d.f; dz[2 * H + j] = d.g; dz[3 * H + j] = d.o;
    dc[j] = dc_prev;
    dh_out[j] = T(0);
  }
}

template <typename T>
void gru_backward_row(bool reset_after, int H, int j0, int hs, const T* dy, const T* dh_in, const T* ac,
                      const T* h_prev, const T* aux, T* dz, T* dzh, T* dh_out) {
#pragma omp simd
  for (int jj = 0; jj < hs; ++jj) {
    const int j = j0 + jj;
    const T r = ac[j], u = ac[H + j], n = ac[2 * H + j];
    T du, dn, direct;
    gru_unit_backward_un(dy[j] + dh_in[j], u, n, h_prev[j], &du, &dn, &direct);
    dz[H + j] = du;
    dz[2 * H + j] = dn;
    dh_out[j] = direct;
    if (reset_after) {  // n = tanh(zx_n + r ⊙ hn): dr = dn_pre ⊙ hn, and the recurrent n block sees r ⊙ dn_pre
      const T dr = dn * aux[j] * dsigmoid_from_output(r);
      dz[j] = dr;
      dzh[j] = dr; dzh[H + j] = du; dzh[2 * H + j] = dn * r;
    } else {
      dz[j] = T(0);  // the r gate needs d(r ⊙ h) = dn_pre·W_hn of every unit: phase 2
    }
  }
}

// GRU reset_after=false, phase 2: drh = d(r ⊙ h_{t-1}) for this row's units.
template <typename T>
void gru_reset_row(int j0, int hs, const T* drh, const T* h_prev, const T* r, T* dz_r, T* dh_out) {
#pragma omp simd
  for (int jj = 0; jj < hs; ++jj) {
    const int j = j0 + jj;
    dz_r[j] = drh[j] * h_prev[j] * dsigmoid_from_output(r[j]);
    dh_out[j] += drh[j] * r[j];
  }
}

template <typename T>
void rnn_backward_row(Activation act, int j0, int hs, const T* dy, const T* dh_in, const T* h, T* dz, T* dh_out) {
#pragma omp simd
  for (int jj = 0; jj < hs; ++jj) {
    const int j = j0 + jj;
    dz[j] = rnn_unit_backward(act, dy[j] + dh_in[j], h[j]);
    dh_out[j] = T(0);
  }
}

}  // namespace

// ============================================================================================
// Forward
// ============================================================================================
template <typename T>
void recurrent_forward(const CellSpec& cell, const ForwardArgs<T>& a) {
  const int steps = a.steps, B = a.batch, I = a.input, H = a.hidden, G = cell.gates();
  const idx GH = static_cast<idx>(G) * H, BH = static_cast<idx>(B) * H;
  const bool training = a.workspace != nullptr;
  const bool gru_before = cell.kind == CellKind::Gru && !cell.reset_after;

  // Input projection for every step at once: xz = x·W_ihᵀ + b_ih, (T·B, G·H).
  const idx rows = static_cast<idx>(steps) * B;
  std::vector<T> xz(static_cast<size_t>(rows * GH));
  if (a.b_ih) {
    // Wake the team only when the copy is big enough to pay for it (a tiny forward stays serial).
#pragma omp parallel for schedule(static) num_threads(team_size(a.num_threads)) if (rows * GH >= (idx(1) << 18))
    for (idx r = 0; r < rows; ++r) copy_n(a.b_ih, static_cast<int>(GH), xz.data() + r * GH);
  }
  blas::parallel_gemm(false, true, static_cast<int>(rows), static_cast<int>(GH), I, T(1), a.x, I, a.w_ih, I,
                      a.b_ih ? T(1) : T(0), xz.data(), static_cast<int>(GH), team_size(a.num_threads));

  // State storage: the training workspace, or ping-pong slots (and scratch) for inference.
  Workspace<T> ws;
  std::vector<T> scratch;
  if (training) {
    ws = carve(cell, a.workspace, steps, B, H);
  } else {
    const bool lstm = cell.has_cell_state(), gru = cell.kind == CellKind::Gru;
    scratch.assign(static_cast<size_t>(BH) * (2 + (lstm ? 2 : 0) + (gru ? 1 : 0)), T(0));
    ws.states = scratch.data();                                 // 2 slots
    ws.cstates = lstm ? scratch.data() + 2 * BH : nullptr;      // 2 slots
    ws.aux = gru ? scratch.data() + 2 * BH : nullptr;           // one step of aux
  }
  // Inference keeps the gates of the current step only (GRU reset_after=false reads u in phase 2).
  std::vector<T> acts_step(training ? 0 : static_cast<size_t>(B) * GH);
  std::vector<T> zero_bias(a.b_hh ? 0 : static_cast<size_t>(GH), T(0));
  const T* bh = a.b_hh ? a.b_hh : zero_bias.data();

  // Processing step s works on time t; the state slots it reads and writes.
  auto prev_slot = [&](int s, int t) { return training ? slot_prev(t, a.reverse) : (s & 1); };
  auto next_slot = [&](int s, int t) { return training ? slot_next(t, a.reverse) : ((s + 1) & 1); };
  {
    const int t0 = a.reverse ? steps - 1 : 0;
    T* h = ws.states + prev_slot(0, t0) * BH;
    if (a.h0) copy_n(a.h0, static_cast<int>(BH), h); else zero_n(h, static_cast<int>(BH));
    if (cell.has_cell_state()) {
      T* c = ws.cstates + prev_slot(0, t0) * BH;
      if (a.c0) copy_n(a.c0, static_cast<int>(BH), c); else zero_n(c, static_cast<int>(BH));
    }
  }

  std::vector<T> w_packed(static_cast<size_t>(GH) * H);  // per-thread slices of W_hh, gate-major
  std::vector<T> hz_all(static_cast<size_t>(B) * GH);     // per-thread recurrent products
  const int nthreads = recurrence_threads(H, a.num_threads);

#pragma omp parallel num_threads(nthreads)
  {
    const Slice sl = unit_slice(H, omp_get_num_threads(), omp_get_thread_num());
    const int hs = sl.size(), ghs = G * hs, j0 = sl.j0;
    T* wp = w_packed.data() + static_cast<idx>(G) * j0 * H;  // (G·hs, H): rows g·H + j for j in the slice
    T* hz = hz_all.data() + static_cast<idx>(B) * G * j0;    // (B, G·hs)
    for (int g = 0; g < G; ++g)
      for (int j = j0; j < sl.j1; ++j)
        copy_n(a.w_hh + (g * H + j) * static_cast<idx>(H), H, wp + (static_cast<idx>(g) * hs + (j - j0)) * H);

    for (int s = 0; s < steps; ++s) {
      const int t = a.reverse ? steps - 1 - s : s;
      const T* h_prev = ws.states + prev_slot(s, t) * BH;
      T* h_next = ws.states + next_slot(s, t) * BH;
      const T* c_prev = cell.has_cell_state() ? ws.cstates + prev_slot(s, t) * BH : nullptr;
      T* c_next = cell.has_cell_state() ? ws.cstates + next_slot(s, t) * BH : nullptr;
      T* aux_t = ws.aux ? ws.aux + (training ? t * BH : 0) : nullptr;
      const T* zx_t = xz.data() + static_cast<idx>(t) * B * GH;
      T* y_t = a.y + static_cast<idx>(t) * B * a.ldy;
      auto acts_row = [&](int b) { return training ? ws.acts + (static_cast<idx>(t) * B + b) * GH : acts_step.data() + b * GH; };

      if (hs > 0)  // this slice's recurrent product; for GRU reset_after=false only the r, u rows
        blas::gemm(false, true, B, gru_before ? 2 * hs : ghs, H, T(1), h_prev, H, wp, H, T(0), hz, ghs);

      for (int b = 0; b < B; ++b) {
        const idx o = b * static_cast<idx>(H);
        T* y = y_t + b * static_cast<idx>(a.ldy);
        if (!active(a.lengths, b, t)) {  // past this sequence's end: carry the state, output 0
          copy_n(h_prev + o + j0, hs, h_next + o + j0);
          if (c_next) copy_n(c_prev + o + j0, hs, c_next + o + j0);
          zero_n(y + j0, hs);
          if (training && ws.acts) for (int g = 0; g < G; ++g) zero_n(acts_row(b) + g * H + j0, hs);
          if (aux_t) zero_n(aux_t + o + j0, hs);
          continue;
        }
        const T* zx = zx_t + b * GH;
        const T* zh = hz + static_cast<idx>(b) * ghs;
        switch (cell.kind) {
          case CellKind::Lstm:
            lstm_forward_row(H, j0, hs, zx, zh, bh, c_prev + o, c_next + o, h_next + o, y, acts_row(b));
            break;
          case CellKind::Gru:
            if (gru_before) gru_gates_row(H, j0, hs, zx, zh, bh, h_prev + o, aux_t + o, acts_row(b));
            else gru_forward_row(H, j0, hs, zx, zh, bh, h_prev + o, h_next + o, y, acts_row(b), aux_t + o);
            break;
          case CellKind::Rnn:
            rnn_forward_row(cell.activation, j0, hs, zx, zh, bh, h_next + o, y);
            break;
        }
      }
      if (gru_before) {
        // Phase 2: the candidate's recurrent product needs r ⊙ h_{t-1} of every unit.
#pragma omp barrier
        T* zh_n = hz + 2 * hs;
        if (hs > 0) blas::gemm(false, true, B, hs, H, T(1), aux_t, H, wp + static_cast<idx>(2) * hs * H, H, T(0), zh_n, ghs);
        for (int b = 0; b < B; ++b) {
          if (!active(a.lengths, b, t)) continue;
          const idx o = b * static_cast<idx>(H);
          gru_candidate_row(H, j0, hs, zx_t + b * GH, zh_n + static_cast<idx>(b) * ghs, bh, h_prev + o, h_next + o,
                            y_t + b * static_cast<idx>(a.ldy), acts_row(b));
        }
      }
#pragma omp barrier
    }
  }

  const int last = a.reverse ? 0 : steps - 1;
  const int final_slot = next_slot(steps - 1, last);
  copy_n(ws.states + final_slot * BH, static_cast<int>(BH), a.h_n);
  if (cell.has_cell_state() && a.c_n) copy_n(ws.cstates + final_slot * BH, static_cast<int>(BH), a.c_n);
}

// ============================================================================================
// Backward through time
// ============================================================================================
template <typename T>
void recurrent_backward(const CellSpec& cell, const BackwardArgs<T>& a) {
  const int steps = a.steps, B = a.batch, I = a.input, H = a.hidden, G = cell.gates();
  const idx GH = static_cast<idx>(G) * H, BH = static_cast<idx>(B) * H;
  const bool gru_before = cell.kind == CellKind::Gru && !cell.reset_after;
  const bool gru_after = cell.kind == CellKind::Gru && cell.reset_after;
  const Workspace<T> ws = carve(cell, const_cast<T*>(a.workspace), steps, B, H);

  // dzx: gradient w.r.t. the input pre-activation (x·W_ihᵀ + b_ih), (T, B, G·H).
  // dzh: w.r.t. the recurrent pre-activation (h·W_hhᵀ + b_hh). They differ only for GRU with
  // reset_after, where r scales the n block of the recurrent part.
  std::vector<T> dzx(static_cast<size_t>(steps) * B * GH);
  std::vector<T> dzh_store(gru_after ? dzx.size() : 0);
  T* dzh = gru_after ? dzh_store.data() : dzx.data();
  std::vector<T> dh_buf(2 * static_cast<size_t>(BH), T(0)), dc(cell.has_cell_state() ? BH : 0, T(0));
  std::vector<T> drh(gru_before ? BH : 0);
  if (a.dh_n) copy_n(a.dh_n, static_cast<int>(BH), dh_buf.data());
  if (cell.has_cell_state() && a.dc_n) copy_n(a.dc_n, static_cast<int>(BH), dc.data());
  const int nthreads = recurrence_threads(H, a.num_threads);

#pragma omp parallel num_threads(nthreads)
  {
    const Slice sl = unit_slice(H, omp_get_num_threads(), omp_get_thread_num());
    const int hs = sl.size(), j0 = sl.j0;

    for (int r = 0; r < steps; ++r) {  // r-th step of the backward sweep
      const int s = steps - 1 - r;       // the forward processing step it undoes
      const int t = a.reverse ? steps - 1 - s : s;
      const T* dh_in = dh_buf.data() + (r & 1) * BH;   // gradient reaching h_t from later steps
      T* dh_out = dh_buf.data() + ((r + 1) & 1) * BH;  // gradient reaching h_{t-1}
      const T* h_prev = ws.states + slot_prev(t, a.reverse) * BH;
      const T* h_next = ws.states + slot_next(t, a.reverse) * BH;
      const T* dy_t = a.dy + static_cast<idx>(t) * B * a.ldy;
      T* dzx_t = dzx.data() + static_cast<idx>(t) * B * GH;
      T* dzh_t = dzh + static_cast<idx>(t) * B * GH;

      // Phase 1: pointwise gradients of this thread's units.
      for (int b = 0; b < B; ++b) {
        const idx o = b * static_cast<idx>(H);
        T* dz = dzx_t + b * GH;
        if (!active(a.lengths, b, t)) {  // the state was carried through: so is its gradient
          for (int g = 0; g < G; ++g) zero_n(dz + g * H + j0, hs);
          if (gru_after) for (int g = 0; g < G; ++g) zero_n(dzh_t + b * GH + g * H + j0, hs);
          copy_n(dh_in + o + j0, hs, dh_out + o + j0);
          continue;
        }
        const T* dy = dy_t + b * static_cast<idx>(a.ldy);
        const T* ac = ws.acts ? ws.acts + (static_cast<idx>(t) * B + b) * GH : nullptr;
        switch (cell.kind) {
          case CellKind::Lstm:
            lstm_backward_row(H, j0, hs, dy, dh_in + o, ac, ws.cstates + slot_next(t, a.reverse) * BH + o,
                              ws.cstates + slot_prev(t, a.reverse) * BH + o, dc.data() + o, dz, dh_out + o);
            break;
          case CellKind::Gru:
            gru_backward_row(cell.reset_after, H, j0, hs, dy, dh_in + o, ac, h_prev + o,
                             ws.aux + static_cast<idx>(t) * BH + o, dz, dzh_t + b * GH, dh_out + o);
            break;
          case CellKind::Rnn:
            rnn_backward_row(cell.activation, j0, hs, dy, dh_in + o, h_next + o, dz, dh_out + o);
            break;
        }
      }
#pragma omp barrier
      if (gru_before) {
        // Phase 2: d(r ⊙ h_{t-1}) = dn_pre·W_hn needs dn_pre of every unit; then the r gate.
        if (hs > 0)
          blas::gemm(false, false, B, hs, H, T(1), dzx_t + 2 * H, static_cast<int>(GH),
                     a.w_hh + 2 * static_cast<idx>(H) * H + j0, H, T(0), drh.data() + j0, H);
        for (int b = 0; b < B; ++b) {
          if (!active(a.lengths, b, t)) continue;
          const idx o = b * static_cast<idx>(H);
          gru_reset_row(j0, hs, drh.data() + o, h_prev + o, ws.acts + (static_cast<idx>(t) * B + b) * GH,
                        dzx_t + b * GH, dh_out + o);
        }
#pragma omp barrier
        if (hs > 0)  // Phase 3: the r and u blocks through W_hr, W_hz
          blas::gemm(false, false, B, hs, 2 * H, T(1), dzx_t, static_cast<int>(GH), a.w_hh + j0, H, T(1),
                     dh_out + j0, H);
      } else if (hs > 0) {
        // dh_{t-1}[:, slice] += dzh_t · W_hh[:, slice]
        blas::gemm(false, false, B, hs, static_cast<int>(GH), T(1), dzh_t, static_cast<int>(GH), a.w_hh + j0, H, T(1),
                   dh_out + j0, H);
      }
      // No barrier needed here: the next step's phase 1 touches only this thread's units of
      // dh_out, and writes another time row of dzx/dzh.
    }
  }

  copy_n(dh_buf.data() + (steps & 1) * BH, static_cast<int>(BH), a.dh0);
  if (cell.has_cell_state() && a.dc0) copy_n(dc.data(), static_cast<int>(BH), a.dc0);

  // Time-parallel gradients: one GEMM each over all T·B rows.
  const int rows = steps * B, gh = static_cast<int>(GH), team = team_size(a.num_threads);
  const T* h_prev_all = ws.states + (a.reverse ? BH : 0);  // h_{t-1} of every t, (T, B, H)
  blas::parallel_gemm(false, false, rows, I, gh, T(1), dzx.data(), gh, a.w_ih, I, T(1), a.dx, I, team);
  blas::parallel_gemm(true, false, gh, I, rows, T(1), dzx.data(), gh, a.x, I, T(0), a.dw_ih, I, team);
  if (gru_before) {  // the n block's recurrent input was r ⊙ h_{t-1}, saved in aux
    blas::parallel_gemm(true, false, 2 * H, H, rows, T(1), dzx.data(), gh, h_prev_all, H, T(0), a.dw_hh, H, team);
    blas::parallel_gemm(true, false, H, H, rows, T(1), dzx.data() + 2 * H, gh, ws.aux, H, T(0),
                        a.dw_hh + 2 * static_cast<idx>(H) * H, H, team);
  } else {
    blas::parallel_gemm(true, false, gh, H, rows, T(1), dzh, gh, h_prev_all, H, T(0), a.dw_hh, H, team);
  }
  if (a.db_ih) column_sums(dzx.data(), rows, gh, a.db_ih, team);
  if (a.db_hh) column_sums(dzh, rows, gh, a.db_hh, team);
}

void activation(int fn, const float* x, float* y, std::ptrdiff_t n) {
#pragma omp simd
  for (std::ptrdiff_t i = 0; i < n; ++i) y[i] = fn == 0 ? exp_(x[i]) : fn == 1 ? tanh_act(x[i]) : sigmoid(x[i]);
}

template void recurrent_forward<float>(const CellSpec&, const ForwardArgs<float>&);
template void recurrent_forward<double>(const CellSpec&, const ForwardArgs<double>&);
template void recurrent_backward<float>(const CellSpec&, const BackwardArgs<float>&);
template void recurrent_backward<double>(const CellSpec&, const BackwardArgs<double>&);

}  // namespace SK_CPU_CAPABILITY
}  // namespace seqkernels
