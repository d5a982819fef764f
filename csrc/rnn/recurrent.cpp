// Fused CPU recurrence for LSTM, GRU and RNN: forward and backward through time of one direction
// of one layer. The contract (shapes, ownership, workspace layout) is in seqkernels/recurrent.h.
#include "seqkernels/recurrent.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "seqkernels/blas.h"

namespace seqkernels {
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

// Column sums of a (rows, cols) matrix through BLAS: out = Aᵀ·1.
template <typename T>
void column_sums(const T* a, int rows, int cols, T* out) {
  std::vector<T> ones(static_cast<size_t>(rows), T(1));
  blas::gemm(true, false, cols, 1, rows, T(1), a, cols, ones.data(), 1, T(0), out, 1);
}

}  // namespace

std::size_t workspace_size(const CellSpec& cell, int steps, int batch, int hidden) {
  const std::size_t bh = static_cast<std::size_t>(batch) * hidden;
  std::size_t n = (steps + 1) * bh;                                      // states
  if (cell.kind == CellKind::Lstm) n += (steps + 1) * bh;                // cstates
  if (cell.kind != CellKind::Rnn) n += steps * bh * cell.gates();       // acts
  if (cell.kind == CellKind::Gru) n += steps * bh;                       // aux
  return n;
}

int recurrence_threads(int hidden, int requested) {
  const int most = requested > 0 ? requested : omp_get_max_threads();
  return std::max(1, std::min(most, hidden / 32));
}

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
  std::vector<T> xz(static_cast<size_t>(steps) * B * GH);
  const idx rows = static_cast<idx>(steps) * B;
  if (a.b_ih) {
#pragma omp parallel for schedule(static)
    for (idx r = 0; r < rows; ++r) std::copy(a.b_ih, a.b_ih + GH, xz.data() + r * GH);
  }
  blas::gemm(false, true, static_cast<int>(rows), static_cast<int>(GH), I, T(1), a.x, I, a.w_ih, I,
             a.b_ih ? T(1) : T(0), xz.data(), static_cast<int>(GH));

  // State storage: the training workspace, or two ping-pong slots for inference.
  Workspace<T> ws;
  std::vector<T> inference(training ? 0 : static_cast<size_t>(BH) * (cell.kind == CellKind::Lstm ? 4 : 2));
  std::vector<T> rh_scratch(gru_before && !training ? static_cast<size_t>(BH) : 0);
  if (training) ws = carve(cell, a.workspace, steps, B, H);
  auto h_slot = [&](int s_or_slot) { return (training ? ws.states : inference.data()) + s_or_slot * BH; };
  auto c_slot = [&](int s_or_slot) { return (training ? ws.cstates : inference.data() + 2 * BH) + s_or_slot * BH; };
  // Processing step s works on time t; its previous/next state slots:
  auto prev_slot = [&](int s, int t) { return training ? slot_prev(t, a.reverse) : (s & 1); };
  auto next_slot = [&](int s, int t) { return training ? slot_next(t, a.reverse) : ((s + 1) & 1); };

  {
    const int t0 = a.reverse ? steps - 1 : 0;
    T* h = h_slot(prev_slot(0, t0));
    if (a.h0) std::copy(a.h0, a.h0 + BH, h); else std::fill(h, h + BH, T(0));
    if (cell.kind == CellKind::Lstm) {
      T* c = c_slot(prev_slot(0, t0));
      if (a.c0) std::copy(a.c0, a.c0 + BH, c); else std::fill(c, c + BH, T(0));
    }
  }

  std::vector<T> w_packed(static_cast<size_t>(GH) * H);  // per-thread slices of W_hh, gate-major
  std::vector<T> hz_all(static_cast<size_t>(B) * GH);     // per-thread recurrent products
  const int nthreads = recurrence_threads(H, a.num_threads);

  blas::SingleThreadedScope single_threaded_blas;
#pragma omp parallel num_threads(nthreads)
  {
    const int nt = omp_get_num_threads();
    const Slice sl = unit_slice(H, nt, omp_get_thread_num());
    const int hs = sl.size();
    const int ghs = G * hs;
    T* wp = w_packed.data() + static_cast<idx>(G) * sl.j0 * H;   // (G·hs, H): rows g·H + j, j in slice
    T* hz = hz_all.data() + static_cast<idx>(B) * G * sl.j0;      // (B, G·hs)
    for (int g = 0; g < G; ++g)
      for (int j = sl.j0; j < sl.j1; ++j)
        std::copy(a.w_hh + (g * H + j) * static_cast<idx>(H), a.w_hh + (g * H + j + 1) * static_cast<idx>(H),
                  wp + (static_cast<idx>(g) * hs + (j - sl.j0)) * H);
    auto bias_hh = [&](int g, int j) { return a.b_hh ? a.b_hh[g * H + j] : T(0); };

    for (int s = 0; s < steps; ++s) {
      const int t = a.reverse ? steps - 1 - s : s;
      const T* h_prev = h_slot(prev_slot(s, t));
      T* h_next = h_slot(next_slot(s, t));
      const T* zx_t = xz.data() + static_cast<idx>(t) * B * GH;
      T* y_t = a.y + static_cast<idx>(t) * B * a.ldy;
      T* acts_t = training && ws.acts ? ws.acts + static_cast<idx>(t) * B * GH : nullptr;

      if (hs > 0)  // recurrent product of this slice; for GRU reset_after=false only the r, u rows
        blas::gemm(false, true, B, gru_before ? 2 * hs : ghs, H, T(1), h_prev, H, wp, H, T(0), hz, ghs);

      if (cell.kind == CellKind::Lstm) {
        const T* c_prev = c_slot(prev_slot(s, t));
        T* c_next = c_slot(next_slot(s, t));
        for (int b = 0; b < B; ++b) {
          const bool on = active(a.lengths, b, t);
          const T* zx = zx_t + b * GH;
          const T* zh = hz + static_cast<idx>(b) * ghs;
          for (int j = sl.j0; j < sl.j1; ++j) {
            const int jj = j - sl.j0;
            const idx u = b * static_cast<idx>(H) + j;
            if (!on) {
              h_next[u] = h_prev[u];
              c_next[u] = c_prev[u];
              y_t[b * static_cast<idx>(a.ldy) + j] = T(0);
              if (acts_t) for (int g = 0; g < 4; ++g) acts_t[b * GH + g * H + j] = T(0);
              continue;
            }
            const LstmGates<T> gt = lstm_gates(zx[j] + zh[jj] + bias_hh(0, j), zx[H + j] + zh[hs + jj] + bias_hh(1, j),
                                               zx[2 * H + j] + zh[2 * hs + jj] + bias_hh(2, j),
                                               zx[3 * H + j] + zh[3 * hs + jj] + bias_hh(3, j));
            const T c = lstm_cell_state(gt, c_prev[u]);
            const T h = lstm_hidden(gt, c);
            c_next[u] = c;
            h_next[u] = h;
            y_t[b * static_cast<idx>(a.ldy) + j] = h;
            if (acts_t) {
              T* ac = acts_t + b * GH;
              ac[j] = gt.i; ac[H + j] = gt.f; ac[2 * H + j] = gt.g; ac[3 * H + j] = gt.o;
            }
          }
        }
      } else if (cell.kind == CellKind::Gru) {
        T* aux_t = training ? ws.aux + static_cast<idx>(t) * BH : nullptr;
        // Phase 1: r and u (and, with reset_after, the whole step).
        T* rh = gru_before ? (training ? aux_t : rh_scratch.data()) : nullptr;
        for (int b = 0; b < B; ++b) {
          const bool on = active(a.lengths, b, t);
          const T* zx = zx_t + b * GH;
          T* zh = hz + static_cast<idx>(b) * ghs;
          for (int j = sl.j0; j < sl.j1; ++j) {
            const int jj = j - sl.j0;
            const idx u_ = b * static_cast<idx>(H) + j;
            const T r = sigmoid(zx[j] + zh[jj] + bias_hh(0, j));
            const T u = sigmoid(zx[H + j] + zh[hs + jj] + bias_hh(1, j));
            if (gru_before) {
              rh[u_] = on ? r * h_prev[u_] : T(0);
              zh[hs + jj] = u;  // keep u for phase 2
              if (acts_t) { acts_t[b * GH + j] = on ? r : T(0); acts_t[b * GH + H + j] = on ? u : T(0); }
              continue;
            }
            if (!on) {
              h_next[u_] = h_prev[u_];
              y_t[b * static_cast<idx>(a.ldy) + j] = T(0);
              if (acts_t) { for (int g = 0; g < 3; ++g) acts_t[b * GH + g * H + j] = T(0); aux_t[u_] = T(0); }
              continue;
            }
            const T hn = zh[2 * hs + jj] + bias_hh(2, j);
            const T n = gru_candidate(zx[2 * H + j], r, hn, true);
            const T h = gru_hidden(u, n, h_prev[u_]);
            h_next[u_] = h;
            y_t[b * static_cast<idx>(a.ldy) + j] = h;
            if (acts_t) {
              acts_t[b * GH + j] = r; acts_t[b * GH + H + j] = u; acts_t[b * GH + 2 * H + j] = n;
              aux_t[u_] = hn;
            }
          }
        }
        if (gru_before) {
          // Phase 2: the candidate needs (r ⊙ h_{t-1}) of every unit.
#pragma omp barrier
          if (hs > 0)
            blas::gemm(false, true, B, hs, H, T(1), rh, H, wp + static_cast<idx>(2) * hs * H, H, T(0), hz + 2 * hs, ghs);
          for (int b = 0; b < B; ++b) {
            const bool on = active(a.lengths, b, t);
            const T* zx = zx_t + b * GH;
            const T* zh = hz + static_cast<idx>(b) * ghs;
            for (int j = sl.j0; j < sl.j1; ++j) {
              const int jj = j - sl.j0;
              const idx u_ = b * static_cast<idx>(H) + j;
              if (!on) {
                h_next[u_] = h_prev[u_];
                y_t[b * static_cast<idx>(a.ldy) + j] = T(0);
                if (acts_t) acts_t[b * GH + 2 * H + j] = T(0);
                continue;
              }
              const T u = zh[hs + jj];
              const T n = gru_candidate(zx[2 * H + j], T(0), zh[2 * hs + jj] + bias_hh(2, j), false);
              const T h = gru_hidden(u, n, h_prev[u_]);
              h_next[u_] = h;
              y_t[b * static_cast<idx>(a.ldy) + j] = h;
              if (acts_t) acts_t[b * GH + 2 * H + j] = n;
            }
          }
        }
      } else {  // Elman RNN
        for (int b = 0; b < B; ++b) {
          const bool on = active(a.lengths, b, t);
          const T* zx = zx_t + b * GH;
          const T* zh = hz + static_cast<idx>(b) * ghs;
          for (int j = sl.j0; j < sl.j1; ++j) {
            const idx u_ = b * static_cast<idx>(H) + j;
            const T h = on ? rnn_hidden(cell.activation, zx[j], zh[j - sl.j0] + bias_hh(0, j)) : h_prev[u_];
            h_next[u_] = h;
            y_t[b * static_cast<idx>(a.ldy) + j] = on ? h : T(0);
          }
        }
      }
#pragma omp barrier
    }
  }

  const int last = a.reverse ? 0 : steps - 1;
  const T* h_final = h_slot(next_slot(steps - 1, last));
  std::copy(h_final, h_final + BH, a.h_n);
  if (cell.kind == CellKind::Lstm && a.c_n) {
    const T* c_final = c_slot(next_slot(steps - 1, last));
    std::copy(c_final, c_final + BH, a.c_n);
  }
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
  std::vector<T> dh_buf(2 * static_cast<size_t>(BH)), dc_buf(cell.kind == CellKind::Lstm ? BH : 0);
  std::vector<T> drh(gru_before ? BH : 0);
  if (a.dh_n) std::copy(a.dh_n, a.dh_n + BH, dh_buf.begin()); else std::fill(dh_buf.begin(), dh_buf.begin() + BH, T(0));
  if (cell.kind == CellKind::Lstm) {
    if (a.dc_n) std::copy(a.dc_n, a.dc_n + BH, dc_buf.begin()); else std::fill(dc_buf.begin(), dc_buf.end(), T(0));
  }
  const int nthreads = recurrence_threads(H, a.num_threads);

  {
    blas::SingleThreadedScope single_threaded_blas;
#pragma omp parallel num_threads(nthreads)
    {
      const int nt = omp_get_num_threads();
      const Slice sl = unit_slice(H, nt, omp_get_thread_num());
      const int hs = sl.size();

      for (int r = 0; r < steps; ++r) {  // r-th step of the backward sweep
        const int s = steps - 1 - r;       // the forward processing step it undoes
        const int t = a.reverse ? steps - 1 - s : s;
        const T* dh_in = dh_buf.data() + (r & 1) * BH;      // gradient reaching h_t from later steps
        T* dh_out = dh_buf.data() + ((r + 1) & 1) * BH;     // gradient reaching h_{t-1}
        const T* h_prev = ws.states + slot_prev(t, a.reverse) * BH;
        const T* h_next = ws.states + slot_next(t, a.reverse) * BH;
        const T* dy_t = a.dy + static_cast<idx>(t) * B * a.ldy;
        const T* acts_t = ws.acts ? ws.acts + static_cast<idx>(t) * B * GH : nullptr;
        T* dzx_t = dzx.data() + static_cast<idx>(t) * B * GH;
        T* dzh_t = dzh + static_cast<idx>(t) * B * GH;

        // Phase 1: pointwise gradients of this thread's units.
        for (int b = 0; b < B; ++b) {
          const bool on = active(a.lengths, b, t);
          T* dz = dzx_t + b * GH;
          for (int j = sl.j0; j < sl.j1; ++j) {
            const idx u_ = b * static_cast<idx>(H) + j;
            if (!on) {  // state was carried: so is its gradient
              for (int g = 0; g < G; ++g) dz[g * H + j] = T(0);
              if (gru_after) for (int g = 0; g < 3; ++g) dzh_t[b * GH + g * H + j] = T(0);
              dh_out[u_] = dh_in[u_];
              continue;
            }
            const T dh = dy_t[b * static_cast<idx>(a.ldy) + j] + dh_in[u_];
            if (cell.kind == CellKind::Lstm) {
              const T* ac = acts_t + b * GH;
              const LstmGates<T> gt{ac[j], ac[H + j], ac[2 * H + j], ac[3 * H + j]};
              const T c = ws.cstates[slot_next(t, a.reverse) * BH + u_];
              const T c_prev = ws.cstates[slot_prev(t, a.reverse) * BH + u_];
              LstmGates<T> d;
              T dc_prev;
              lstm_unit_backward(dh, dc_buf[u_], gt, c, c_prev, &d, &dc_prev);
              dz[j] = d.i; dz[H + j] = d.f; dz[2 * H + j] = d.g; dz[3 * H + j] = d.o;
              dc_buf[u_] = dc_prev;
              dh_out[u_] = T(0);
            } else if (cell.kind == CellKind::Gru) {
              const T* ac = acts_t + b * GH;
              const T rr = ac[j], u = ac[H + j], n = ac[2 * H + j];
              T du, dn, direct;
              gru_unit_backward_un(dh, u, n, h_prev[u_], &du, &dn, &direct);
              dz[H + j] = du;
              dz[2 * H + j] = dn;
              dh_out[u_] = direct;
              if (gru_after) {
                const T hn = ws.aux[static_cast<idx>(t) * BH + u_];
                const T dr = dn * hn * dsigmoid_from_output(rr);
                dz[j] = dr;
                T* dzh_b = dzh_t + b * GH;
                dzh_b[j] = dr; dzh_b[H + j] = du; dzh_b[2 * H + j] = dn * rr;
              } else {
                dz[j] = T(0);  // completed in phase 2
              }
            } else {
              dz[j] = rnn_unit_backward(cell.activation, dh, h_next[u_]);
              dh_out[u_] = T(0);
            }
          }
        }
#pragma omp barrier
        if (gru_before) {
          // Phase 2: d(r ⊙ h_{t-1}) = dn_pre · W_hn, then the r gate.
          if (hs > 0)
            blas::gemm(false, false, B, hs, H, T(1), dzx_t + 2 * H, static_cast<int>(GH),
                       a.w_hh + 2 * static_cast<idx>(H) * H + sl.j0, H, T(0), drh.data() + sl.j0, H);
          for (int b = 0; b < B; ++b) {
            if (!active(a.lengths, b, t)) continue;
            const T* ac = acts_t + b * GH;
            for (int j = sl.j0; j < sl.j1; ++j) {
              const idx u_ = b * static_cast<idx>(H) + j;
              dzx_t[b * GH + j] = drh[u_] * h_prev[u_] * dsigmoid_from_output(ac[j]);
              dh_out[u_] += drh[u_] * ac[j];
            }
          }
#pragma omp barrier
          if (hs > 0)  // Phase 3: the r and u blocks through W_hr, W_hz
            blas::gemm(false, false, B, hs, 2 * H, T(1), dzx_t, static_cast<int>(GH), a.w_hh + sl.j0, H, T(1),
                       dh_out + sl.j0, H);
        } else if (hs > 0) {
          // dh_{t-1}[:, slice] += dzh_t · W_hh[:, slice]
          blas::gemm(false, false, B, hs, static_cast<int>(GH), T(1), dzh_t, static_cast<int>(GH), a.w_hh + sl.j0, H,
                     T(1), dh_out + sl.j0, H);
        }
      }
    }
  }

  const T* dh_final = dh_buf.data() + (steps & 1) * BH;
  std::copy(dh_final, dh_final + BH, a.dh0);
  if (cell.kind == CellKind::Lstm && a.dc0) std::copy(dc_buf.begin(), dc_buf.end(), a.dc0);

  // Time-parallel gradients: one GEMM each over all T·B rows.
  const int rows = steps * B;
  const T* h_prev_all = ws.states + (a.reverse ? BH : 0);  // h_{t-1} for every t, (T, B, H)
  blas::gemm(false, false, rows, I, static_cast<int>(GH), T(1), dzx.data(), static_cast<int>(GH), a.w_ih, I, T(1),
             a.dx, I);
  blas::gemm(true, false, static_cast<int>(GH), I, rows, T(1), dzx.data(), static_cast<int>(GH), a.x, I, T(0),
             a.dw_ih, I);
  if (gru_before) {
    blas::gemm(true, false, 2 * H, H, rows, T(1), dzx.data(), static_cast<int>(GH), h_prev_all, H, T(0), a.dw_hh, H);
    blas::gemm(true, false, H, H, rows, T(1), dzx.data() + 2 * H, static_cast<int>(GH), ws.aux, H, T(0),
               a.dw_hh + 2 * static_cast<idx>(H) * H, H);
  } else {
    blas::gemm(true, false, static_cast<int>(GH), H, rows, T(1), dzh, static_cast<int>(GH), h_prev_all, H, T(0),
               a.dw_hh, H);
  }
  if (a.db_ih) column_sums(dzx.data(), rows, static_cast<int>(GH), a.db_ih);
  if (a.db_hh) column_sums(dzh, rows, static_cast<int>(GH), a.db_hh);
}

template void recurrent_forward<float>(const CellSpec&, const ForwardArgs<float>&);
template void recurrent_forward<double>(const CellSpec&, const ForwardArgs<double>&);
template void recurrent_backward<float>(const CellSpec&, const BackwardArgs<float>&);
template void recurrent_backward<double>(const CellSpec&, const BackwardArgs<double>&);

}  // namespace seqkernels
