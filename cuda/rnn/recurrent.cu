// Fused CUDA recurrence for LSTM, GRU and RNN: forward and backward through time of one direction
// of one layer (contract and work split: seqkernels/recurrent.h, "CUDA"). The pointwise math is
// cell_math.h, shared with the C++ kernels; the per-unit bodies below mirror the row functions of
// csrc/rnn/recurrent.cpp one unit at a time.
//
// Both kernels are persistent and cooperative: the grid lives for the whole sequence, block k owns
// hidden units [j0, j1) and one grid.sync() separates steps.
//   forward, per step: for every (batch row b, unit j) of the block, one warp computes the G dot
//     products h_{t-1}[b]·W_hh[g·H + j] (lanes split the H-long reduction, fixed butterfly order),
//     then lane 0 applies the cell and writes h_t, c_t, y, the saved gates.
//   backward, per step: phase 1 is pointwise over the block's units (dz from dh, saved gates);
//     after a grid barrier, phase 2 gives the block's columns k of dh_{t-1} = direct + dzh·W_hh[:, k]
//     (a warp per (b, k), lanes split the G·H-long reduction). The unit and column partitions are
//     the same, so the next step's phase 1 only needs a block barrier.
// The W_hh slice a block needs (its rows forward, its columns backward) sits in shared memory when
// it fits (kSmem), laid out so that consecutive lanes read consecutive words; otherwise it is read
// from global memory (L2 for moderate sizes), where the backward reduction gives each lane one
// column and a share of the rows so that a warp's loads cover whole sectors. The vector every warp
// of a block reduces against (h_{t-1}[b] forward, dz_t[b] backward) is staged in shared memory a
// few batch rows at a time (`stage_elems` elements after the weights; 0 = read from L2).
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <set>
#include <utility>

#include "seqkernels/cuda/recurrent.h"

namespace cg = cooperative_groups;

namespace seqkernels {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxGates = 4;

thread_local LaunchPlan g_last_plan;

__device__ __forceinline__ int slice_begin(int block, int blocks, int hidden) {
  return static_cast<int>(static_cast<long long>(hidden) * block / blocks);
}
__device__ __forceinline__ bool is_active(const int32_t* lengths, int b, int t) {
  return lengths == nullptr || t < lengths[b];
}
__device__ __forceinline__ int slot_prev(int t, bool reverse) { return reverse ? t + 1 : t; }
__device__ __forceinline__ int slot_next(int t, bool reverse) { return reverse ? t : t + 1; }

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {  // butterfly: every lane ends with the same total
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Runs body(b, q, row, staged) once per (batch row b < B, q < per_row), one warp per pair, with
// `row` = src + b·ld (len elements): copied to shared memory `stage` a group of rows at a time when
// a row fits in stage_elems (staged = true), else pointing at global memory (read it with __ldcg:
// other blocks wrote it during the last step). Every thread of the block must call it.
template <typename T, typename Body>
__device__ __forceinline__ void for_each_row_pair(const T* src, size_t ld, int len, int B, int per_row, T* stage,
                                                  int stage_elems, Body body) {
  const int warp = threadIdx.x / 32;
  const bool staged = stage_elems >= len;
  const int group = staged ? min(B, stage_elems / len) : B;
  for (int b0 = 0; b0 < B; b0 += group) {
    const int rows = min(group, B - b0);
    if (staged) {
      __syncthreads();  // the previous group's readers are done with the buffer
      for (int e = threadIdx.x; e < rows * len; e += kThreads) {  // coalesced, conflict-free
        const int r = e / len, k = e - r * len;
        stage[e] = __ldcg(src + static_cast<size_t>(b0 + r) * ld + k);
      }
      __syncthreads();
    }
    for (int p = warp; p < rows * per_row; p += kWarps) {
      const int r = p / per_row;
      body(b0 + r, p - r * per_row, staged ? stage + static_cast<size_t>(r) * len : src + static_cast<size_t>(b0 + r) * ld,
           staged);
    }
  }
}

// Views of the training workspace (same layout as the CPU kernels) or of the inference scratch.
template <typename T>
struct Buffers {
  T* states; T* cstates; T* acts; T* aux; T* proj;
};

// The training workspace carved by the one layout (WorkspaceLayout in seqkernels/recurrent.h).
template <typename T>
__device__ Buffers<T> workspace_views(const CellSpec& cell, T* p, int steps, int batch, int hidden) {
  const WorkspaceLayout l = workspace_layout(cell, steps, batch, hidden);
  Buffers<T> w{};
  w.states = p + l.states;
  if (l.cstates >= 0) w.cstates = p + l.cstates;
  if (l.acts >= 0) w.acts = p + l.acts;
  if (l.aux >= 0) w.aux = p + l.aux;
  if (l.proj >= 0) w.proj = p + l.proj;
  return w;
}

template <typename T>
__device__ Buffers<T> forward_buffers(const CellSpec& cell, const ForwardArgs<T>& a) {
  const size_t BH = static_cast<size_t>(a.batch) * a.hidden;
  const size_t GBH = BH * cell.gates();
  if (a.workspace) return workspace_views(cell, a.workspace, a.steps, a.batch, a.hidden);
  Buffers<T> w{};  // inference: two state slots, one step of gates and aux (or of m_t)
  T* p = a.scratch;
  w.states = p; p += 2 * static_cast<size_t>(a.batch) * cell.state_size(a.hidden);
  if (cell.kind == CellKind::Lstm) { w.cstates = p; p += 2 * BH; }
  w.acts = p; p += GBH;
  if (cell.kind == CellKind::Gru) w.aux = p;
  if (cell.proj > 0) w.proj = p;
  return w;
}

// ============================================================================================
// Forward
// ============================================================================================
template <typename T, bool kSmem>
__global__ void __launch_bounds__(kThreads) forward_kernel(CellSpec cell, ForwardArgs<T> a, int stage_elems) {
  cg::grid_group grid = cg::this_grid();
  extern __shared__ unsigned char smem_raw[];
  T* w_s = reinterpret_cast<T*>(smem_raw);
  const int H = a.hidden, B = a.batch, G = cell.gates();
  const size_t BH = static_cast<size_t>(B) * H, GH = static_cast<size_t>(G) * H;
  const int j0 = slice_begin(blockIdx.x, gridDim.x, H), j1 = slice_begin(blockIdx.x + 1, gridDim.x, H);
  const int hs = j1 - j0;
  const int units = (H + gridDim.x - 1) / gridDim.x;  // the largest slice: what the host sized
  T* stage = w_s + (kSmem ? static_cast<size_t>(G) * units * H : 0);
  const bool training = a.workspace != nullptr;
  const bool gru_reset_before_product = cell.kind == CellKind::Gru && !cell.reset_after;
  const Buffers<T> w = forward_buffers(cell, a);
  const int lane = threadIdx.x % 32;

  if (kSmem)  // this block's rows g·H + j of W_hh, as (G·hs, H) row-major
    for (size_t e = threadIdx.x; e < static_cast<size_t>(G) * hs * H; e += kThreads) {
      const int row = static_cast<int>(e / H), k = static_cast<int>(e % H);
      const int g = row / hs, jj = row % hs;
      w_s[e] = a.w_hh[(static_cast<size_t>(g) * H + j0 + jj) * H + k];
    }
  auto w_row = [&](int g, int jj) -> const T* {
    return kSmem ? w_s + (static_cast<size_t>(g) * hs + jj) * H : a.w_hh + (static_cast<size_t>(g) * H + j0 + jj) * H;
  };
  auto b_hh = [&](int g, int j) { return a.b_hh ? a.b_hh[g * H + j] : T(0); };
  auto prev_slot = [&](int s, int t) { return training ? slot_prev(t, a.reverse) : (s & 1); };
  auto next_slot = [&](int s, int t) { return training ? slot_next(t, a.reverse) : ((s + 1) & 1); };

  {  // initial state of this block's units
    const int t0 = a.reverse ? a.steps - 1 : 0;
    T* h = w.states + prev_slot(0, t0) * BH;
    T* c = w.cstates ? w.cstates + prev_slot(0, t0) * BH : nullptr;
    for (int p = threadIdx.x; p < B * hs; p += kThreads) {
      const size_t o = static_cast<size_t>(p / hs) * H + j0 + p % hs;
      h[o] = a.h0 ? a.h0[o] : T(0);
      if (c) c[o] = a.c0 ? a.c0[o] : T(0);
    }
  }
  __syncthreads();  // the slice in shared memory
  grid.sync();      // every block's initial state

  for (int s = 0; s < a.steps; ++s) {
    const int t = a.reverse ? a.steps - 1 - s : s;
    const T* h_prev = w.states + prev_slot(s, t) * BH;
    T* h_next = w.states + next_slot(s, t) * BH;
    const T* c_prev = w.cstates ? w.cstates + prev_slot(s, t) * BH : nullptr;
    T* c_next = w.cstates ? w.cstates + next_slot(s, t) * BH : nullptr;
    T* aux_t = w.aux ? w.aux + (training ? t * BH : 0) : nullptr;
    T* acts_t = w.acts + (training ? t * B * GH : 0);
    const T* zx_t = a.xz + static_cast<size_t>(t) * B * GH;
    T* y_t = a.y + static_cast<size_t>(t) * B * a.ldy;
    const int gates_now = gru_reset_before_product ? 2 : G;  // reset_before: the n row waits for r ⊙ h_{t-1}

    for_each_row_pair(h_prev, H, H, B, hs, stage, stage_elems, [&](int b, int jj, const T* hp, bool staged) {
      const int j = j0 + jj;
      const size_t o = static_cast<size_t>(b) * H + j;
      T* ac = acts_t + b * GH;
      if (!is_active(a.lengths, b, t)) {  // past this sequence's end: carry the state, output 0
        if (lane == 0) {
          h_next[o] = __ldcg(h_prev + o);
          if (c_next) c_next[o] = __ldcg(c_prev + o);
          y_t[static_cast<size_t>(b) * a.ldy + j] = T(0);
          if (training && w.acts) for (int g = 0; g < G; ++g) ac[g * H + j] = T(0);
          if (aux_t) aux_t[o] = T(0);
        }
        return;
      }
      T acc[kMaxGates] = {T(0), T(0), T(0), T(0)};
      for (int k = lane; k < H; k += 32) {
        const T hk = staged ? hp[k] : __ldcg(hp + k);
#pragma unroll
        for (int g = 0; g < kMaxGates; ++g)
          if (g < gates_now) acc[g] += hk * w_row(g, jj)[k];
      }
#pragma unroll
      for (int g = 0; g < kMaxGates; ++g) acc[g] = warp_sum(acc[g]);
      if (lane != 0) return;
      const T* zx = zx_t + b * GH;
      T* y = y_t + static_cast<size_t>(b) * a.ldy;
      switch (cell.kind) {
        case CellKind::Lstm: {
          const LstmGates<T> g = lstm_gates(zx[j] + acc[0] + b_hh(0, j), zx[H + j] + acc[1] + b_hh(1, j),
                                            zx[2 * H + j] + acc[2] + b_hh(2, j), zx[3 * H + j] + acc[3] + b_hh(3, j));
          const T c = lstm_cell_state(g, __ldcg(c_prev + o));
          const T h = lstm_hidden(g, c);
          c_next[o] = c; h_next[o] = h; y[j] = h;
          ac[j] = g.i; ac[H + j] = g.f; ac[2 * H + j] = g.g; ac[3 * H + j] = g.o;
          break;
        }
        case CellKind::Gru: {
          const T r = sigmoid(zx[j] + acc[0] + b_hh(0, j));
          const T u = sigmoid(zx[H + j] + acc[1] + b_hh(1, j));
          const T hp_j = __ldcg(h_prev + o);
          ac[j] = r; ac[H + j] = u;
          if (gru_reset_before_product) {
            aux_t[o] = r * hp_j;  // the candidate's recurrent input, for phase 2 and for dW_hh
          } else {
            const T hn = acc[2] + b_hh(2, j);
            const T n = gru_candidate(zx[2 * H + j], r, hn, true);
            const T h = gru_hidden(u, n, hp_j);
            aux_t[o] = hn; ac[2 * H + j] = n; h_next[o] = h; y[j] = h;
          }
          break;
        }
        case CellKind::Rnn: {
          const T h = rnn_hidden(cell.activation, zx[j], acc[0] + b_hh(0, j));
          h_next[o] = h; y[j] = h;
          break;
        }
      }
    });
    if (gru_reset_before_product) {  // phase 2: n = tanh(zx_n + W_hn (r ⊙ h_{t-1}) + b_hn) needs aux of every unit
      grid.sync();
      for_each_row_pair(aux_t, H, H, B, hs, stage, stage_elems, [&](int b, int jj, const T* rh, bool staged) {
        const int j = j0 + jj;
        if (!is_active(a.lengths, b, t)) return;
        const size_t o = static_cast<size_t>(b) * H + j;
        T acc = T(0);
        const T* wn = w_row(2, jj);
        for (int k = lane; k < H; k += 32) acc += (staged ? rh[k] : __ldcg(rh + k)) * wn[k];
        acc = warp_sum(acc);
        if (lane != 0) return;
        T* ac = acts_t + b * GH;
        const T* zx = zx_t + b * GH;
        const T n = gru_candidate(zx[2 * H + j], ac[j], acc + b_hh(2, j), false);
        const T h = gru_hidden(ac[H + j], n, __ldcg(h_prev + o));
        ac[2 * H + j] = n; h_next[o] = h; a.y[static_cast<size_t>(t) * B * a.ldy + static_cast<size_t>(b) * a.ldy + j] = h;
      });
    }
    grid.sync();  // h_t of every unit before the next step
  }

  const int last = a.reverse ? 0 : a.steps - 1;
  const int final_slot = next_slot(a.steps - 1, last);
  for (int p = threadIdx.x; p < B * hs; p += kThreads) {
    const size_t o = static_cast<size_t>(p / hs) * H + j0 + p % hs;
    a.h_n[o] = w.states[final_slot * BH + o];
    if (a.c_n && w.cstates) a.c_n[o] = w.cstates[final_slot * BH + o];
  }
}

// ============================================================================================
// Backward through time
// ============================================================================================
template <typename T, bool kSmem>
__global__ void __launch_bounds__(kThreads, 1) backward_kernel(CellSpec cell, BackwardArgs<T> a, int stage_elems) {
  cg::grid_group grid = cg::this_grid();
  extern __shared__ unsigned char smem_raw[];
  T* w_s = reinterpret_cast<T*>(smem_raw);
  const int H = a.hidden, B = a.batch, G = cell.gates();
  const size_t BH = static_cast<size_t>(B) * H, GH = static_cast<size_t>(G) * H;
  const int j0 = slice_begin(blockIdx.x, gridDim.x, H), j1 = slice_begin(blockIdx.x + 1, gridDim.x, H);
  const int hs = j1 - j0;
  const int units = (H + gridDim.x - 1) / gridDim.x;  // the largest slice: what the host sized
  const size_t ldw = GH + 1;                          // padded: the transposing fill is conflict-free
  T* stage = w_s + (kSmem ? units * ldw : 0);
  const bool gru_reset_after_product = cell.kind == CellKind::Gru && cell.reset_after;
  const bool gru_reset_before_product = cell.kind == CellKind::Gru && !cell.reset_after;
  const int lane = threadIdx.x % 32;

  // The forward workspace (read only).
  const Buffers<const T> w = workspace_views(cell, a.workspace, a.steps, a.batch, a.hidden);
  const T* states = w.states;
  const T* cstates = w.cstates;
  const T* acts = w.acts;
  const T* aux = w.aux;
  T* dh_buf = a.scratch;                                                    // (2, B, H) ping-pong
  T* dc = cell.kind == CellKind::Lstm ? dh_buf + 2 * BH : nullptr;          // (B, H)
  T* drh = gru_reset_before_product ? dh_buf + 2 * BH : nullptr;                          // (B, H)
  T* dzh_all = gru_reset_after_product ? a.dzh : a.dzx;

  if (kSmem)  // this block's columns j of W_hh as (hs, G·H) rows of stride ldw; filled in W_hh's order
    for (size_t e = threadIdx.x; e < static_cast<size_t>(hs) * GH; e += kThreads) {
      const int gj = static_cast<int>(e / hs), kk = static_cast<int>(e % hs);
      w_s[kk * ldw + gj] = a.w_hh[static_cast<size_t>(gj) * H + j0 + kk];
    }
  for (int p = threadIdx.x; p < B * hs; p += kThreads) {
    const size_t o = static_cast<size_t>(p / hs) * H + j0 + p % hs;
    dh_buf[o] = a.dh_n ? a.dh_n[o] : T(0);
    if (dc) dc[o] = a.dc_n ? a.dc_n[o] : T(0);
  }
  __syncthreads();

  // dh_out[b, k] (k in this block's columns) += Σ_{gj in [lo, hi)} dz[b, gj]·W_hh[gj, k]
  // Shared-memory weights: a warp per (b, k), lanes over gj (consecutive words). Global weights: a
  // warp per (b, group of C columns), lane = column c + C·segment s, each segment taking every
  // (32/C)-th gj, so that one load instruction reads C consecutive words of 32/C rows of W_hh.
  const int C = hs >= 5 ? 8 : hs >= 3 ? 4 : hs;
  const int groups = (hs + C - 1) / C;
  auto reduce_columns = [&](const T* dz_t, int lo, int hi, T* out, bool accumulate) {
    if (kSmem) {
      for_each_row_pair(dz_t + lo, GH, hi - lo, B, hs, stage, stage_elems, [&](int b, int kk, const T* dz, bool staged) {
        const T* wk = w_s + kk * ldw + lo;
        T acc = T(0);
        for (int g = lane; g < hi - lo; g += 32) acc += (staged ? dz[g] : __ldcg(dz + g)) * wk[g];
        acc = warp_sum(acc);
        if (lane == 0) {
          const size_t o = static_cast<size_t>(b) * H + j0 + kk;
          out[o] = accumulate ? out[o] + acc : acc;
        }
      });
    } else {
      const int c = lane % C, segments = 32 / C, seg = lane / C;
      for_each_row_pair(dz_t + lo, GH, hi - lo, B, groups, stage, stage_elems, [&](int b, int q, const T* dz, bool staged) {
        const int kk = q * C + c;
        T acc = T(0);
        if (kk < hs) {  // C divides 32; lanes past the slice idle
          const T* wk = a.w_hh + static_cast<size_t>(lo) * H + j0 + kk;
          for (int g = seg; g < hi - lo; g += segments)
            acc += (staged ? dz[g] : __ldcg(dz + g)) * __ldg(wk + static_cast<size_t>(g) * H);
        }
        for (int o = 16; o >= C; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);  // sum the segments
        if (seg == 0 && kk < hs) {
          const size_t o = static_cast<size_t>(b) * H + j0 + kk;
          out[o] = accumulate ? out[o] + acc : acc;
        }
      });
    }
  };

  for (int r = 0; r < a.steps; ++r) {
    const int s = a.steps - 1 - r;
    const int t = a.reverse ? a.steps - 1 - s : s;
    const T* dh_in = dh_buf + (r & 1) * BH;
    T* dh_out = dh_buf + ((r + 1) & 1) * BH;
    const T* h_prev = states + slot_prev(t, a.reverse) * BH;
    const T* h_next = states + slot_next(t, a.reverse) * BH;
    const T* dy_t = a.dy + static_cast<size_t>(t) * B * a.ldy;
    T* dzx_t = a.dzx + static_cast<size_t>(t) * B * GH;
    T* dzh_t = dzh_all + static_cast<size_t>(t) * B * GH;

    // Phase 1: pointwise gradients of this block's units (thread per (b, unit)).
    for (int p = threadIdx.x; p < B * hs; p += kThreads) {
      const int b = p / hs, j = j0 + p % hs;
      const size_t o = static_cast<size_t>(b) * H + j;
      T* dz = dzx_t + b * GH;
      if (!is_active(a.lengths, b, t)) {  // the state was carried through: so is its gradient
        for (int g = 0; g < G; ++g) dz[g * H + j] = T(0);
        if (gru_reset_after_product) for (int g = 0; g < G; ++g) dzh_t[b * GH + g * H + j] = T(0);
        dh_out[o] = dh_in[o];
        continue;
      }
      const T dh = dy_t[static_cast<size_t>(b) * a.ldy + j] + dh_in[o];
      const T* ac = acts ? acts + (static_cast<size_t>(t) * B + b) * GH : nullptr;
      switch (cell.kind) {
        case CellKind::Lstm: {
          const LstmGates<T> g{ac[j], ac[H + j], ac[2 * H + j], ac[3 * H + j]};
          LstmGates<T> d;
          T dc_prev;
          lstm_unit_backward(dh, dc[o], g, cstates[slot_next(t, a.reverse) * BH + o],
                             cstates[slot_prev(t, a.reverse) * BH + o], &d, &dc_prev);
          dz[j] = d.i; dz[H + j] = d.f; dz[2 * H + j] = d.g; dz[3 * H + j] = d.o;
          dc[o] = dc_prev;
          dh_out[o] = T(0);
          break;
        }
        case CellKind::Gru: {
          const T rg = ac[j], u = ac[H + j], n = ac[2 * H + j];
          T du, dn, direct;
          gru_unit_backward_un(dh, u, n, h_prev[o], &du, &dn, &direct);
          dz[H + j] = du; dz[2 * H + j] = dn;
          dh_out[o] = direct;
          // n = tanh(zx_n + r ⊙ hn): dr = dn_pre ⊙ hn; the recurrent n block sees r ⊙ dn_pre
          if (gru_reset_after_product) {
            const T dr = dn * aux[static_cast<size_t>(t) * BH + o] * dsigmoid_from_output(rg);
            dz[j] = dr;
            T* dzh = dzh_t + b * GH;
            dzh[j] = dr; dzh[H + j] = du; dzh[2 * H + j] = dn * rg;
          } else {
            dz[j] = T(0);  // phase 3, once d(r ⊙ h) is known
          }
          break;
        }
        case CellKind::Rnn:
          dz[j] = rnn_unit_backward(cell.activation, dh, h_next[o]);
          dh_out[o] = T(0);
          break;
      }
    }
    grid.sync();  // every unit's dz of step t
    if (gru_reset_before_product) {
      // Phase 2: drh = d(r ⊙ h_{t-1}) = dn_pre · W_hn, this block's columns.
      reduce_columns(dzx_t, 2 * H, 3 * H, drh, false);
      __syncthreads();
      // Phase 3: the r gate, pointwise over this block's units (same partition as the columns).
      for (int p = threadIdx.x; p < B * hs; p += kThreads) {
        const int b = p / hs, j = j0 + p % hs;
        if (!is_active(a.lengths, b, t)) continue;
        const size_t o = static_cast<size_t>(b) * H + j;
        const T rg = acts[(static_cast<size_t>(t) * B + b) * GH + j];
        dzx_t[b * GH + j] = drh[o] * h_prev[o] * dsigmoid_from_output(rg);
        dh_out[o] += drh[o] * rg;
      }
      grid.sync();  // every unit's dz_r
      // Phase 4: the r and u blocks through W_hr, W_hz.
      reduce_columns(dzx_t, 0, 2 * H, dh_out, true);
    } else {
      // Phase 2: dh_{t-1}[:, columns] += dzh_t · W_hh[:, columns]
      reduce_columns(dzh_t, 0, static_cast<int>(GH), dh_out, true);
    }
    __syncthreads();  // next step's phase 1 reads this block's dh_out entries only
  }

  const T* dh_final = dh_buf + (a.steps & 1) * BH;
  for (int p = threadIdx.x; p < B * hs; p += kThreads) {
    const size_t o = static_cast<size_t>(p / hs) * H + j0 + p % hs;
    a.dh0[o] = dh_final[o];
    if (a.dc0 && dc) a.dc0[o] = dc[o];
  }
}

// ============================================================================================
// LSTM with projections (weights from global memory; h has R = cell.proj units)
// ============================================================================================
template <typename T>
__global__ void __launch_bounds__(kThreads) forward_proj_kernel(CellSpec cell, ForwardArgs<T> a) {
  cg::grid_group grid = cg::this_grid();
  const int H = a.hidden, R = cell.proj, B = a.batch, G = 4;
  const size_t BH = static_cast<size_t>(B) * H, BR = static_cast<size_t>(B) * R, GH = static_cast<size_t>(G) * H;
  const int j0 = slice_begin(blockIdx.x, gridDim.x, H), hs = slice_begin(blockIdx.x + 1, gridDim.x, H) - j0;
  const int p0 = slice_begin(blockIdx.x, gridDim.x, R), ps = slice_begin(blockIdx.x + 1, gridDim.x, R) - p0;
  const bool training = a.workspace != nullptr;
  const Buffers<T> w = forward_buffers(cell, a);
  const int lane = threadIdx.x % 32;
  auto b_hh = [&](int g, int j) { return a.b_hh ? a.b_hh[g * H + j] : T(0); };
  auto prev_slot = [&](int s, int t) { return training ? slot_prev(t, a.reverse) : (s & 1); };
  auto next_slot = [&](int s, int t) { return training ? slot_next(t, a.reverse) : ((s + 1) & 1); };

  {  // initial state: this block's units of h and hidden units of c
    const int first = prev_slot(0, a.reverse ? a.steps - 1 : 0);
    for (int p = threadIdx.x; p < B * ps; p += kThreads) {
      const size_t o = static_cast<size_t>(p / ps) * R + p0 + p % ps;
      w.states[first * BR + o] = a.h0 ? a.h0[o] : T(0);
    }
    for (int p = threadIdx.x; p < B * hs; p += kThreads) {
      const size_t o = static_cast<size_t>(p / hs) * H + j0 + p % hs;
      w.cstates[first * BH + o] = a.c0 ? a.c0[o] : T(0);
    }
  }
  grid.sync();

  for (int s = 0; s < a.steps; ++s) {
    const int t = a.reverse ? a.steps - 1 - s : s;
    const T* h_prev = w.states + prev_slot(s, t) * BR;
    T* h_next = w.states + next_slot(s, t) * BR;
    const T* c_prev = w.cstates + prev_slot(s, t) * BH;
    T* c_next = w.cstates + next_slot(s, t) * BH;
    T* m_t = w.proj + (training ? t * BH : 0);
    T* acts_t = w.acts + (training ? t * B * GH : 0);
    const T* zx_t = a.xz + static_cast<size_t>(t) * B * GH;
    T* y_t = a.y + static_cast<size_t>(t) * B * a.ldy;
    // Stage 1: gates, c_t and m_t of this block's hidden units (a warp per (b, unit), K = R).
    for_each_row_pair(h_prev, R, R, B, hs, static_cast<T*>(nullptr), 0, [&](int b, int jj, const T* hp, bool) {
      const int j = j0 + jj;
      const size_t o = static_cast<size_t>(b) * H + j;
      T* ac = acts_t + b * GH;
      if (!is_active(a.lengths, b, t)) {  // past this sequence's end: carry c, m = 0
        if (lane == 0) {
          c_next[o] = __ldcg(c_prev + o);
          m_t[o] = T(0);
          if (training) for (int g = 0; g < G; ++g) ac[g * H + j] = T(0);
        }
        return;
      }
      T acc[kMaxGates] = {T(0), T(0), T(0), T(0)};
      for (int k = lane; k < R; k += 32) {
        const T hk = __ldcg(hp + k);
#pragma unroll
        for (int g = 0; g < kMaxGates; ++g) acc[g] += hk * __ldg(a.w_hh + (static_cast<size_t>(g) * H + j) * R + k);
      }
#pragma unroll
      for (int g = 0; g < kMaxGates; ++g) acc[g] = warp_sum(acc[g]);
      if (lane != 0) return;
      const T* zx = zx_t + b * GH;
      const LstmGates<T> g = lstm_gates(zx[j] + acc[0] + b_hh(0, j), zx[H + j] + acc[1] + b_hh(1, j),
                                        zx[2 * H + j] + acc[2] + b_hh(2, j), zx[3 * H + j] + acc[3] + b_hh(3, j));
      const T c = lstm_cell_state(g, __ldcg(c_prev + o));
      c_next[o] = c;
      m_t[o] = lstm_hidden(g, c);
      ac[j] = g.i; ac[H + j] = g.f; ac[2 * H + j] = g.g; ac[3 * H + j] = g.o;
    });
    grid.sync();  // m_t of every hidden unit
    // Stage 2: h_t = m_t·W_hrᵀ for this block's units of h (a warp per (b, unit), K = H).
    for_each_row_pair(static_cast<const T*>(m_t), H, H, B, ps, static_cast<T*>(nullptr), 0,
                      [&](int b, int pp, const T* mb, bool) {
      const int p = p0 + pp;
      const size_t o = static_cast<size_t>(b) * R + p;
      T* y = y_t + static_cast<size_t>(b) * a.ldy + p;
      if (!is_active(a.lengths, b, t)) {
        if (lane == 0) { h_next[o] = __ldcg(h_prev + o); *y = T(0); }
        return;
      }
      T acc = T(0);
      for (int k = lane; k < H; k += 32) acc += __ldcg(mb + k) * __ldg(a.w_hr + static_cast<size_t>(p) * H + k);
      acc = warp_sum(acc);
      if (lane == 0) { h_next[o] = acc; *y = acc; }
    });
    grid.sync();  // h_t of every unit before the next step
  }

  const int final_slot = next_slot(a.steps - 1, a.reverse ? 0 : a.steps - 1);
  for (int p = threadIdx.x; p < B * ps; p += kThreads) {
    const size_t o = static_cast<size_t>(p / ps) * R + p0 + p % ps;
    a.h_n[o] = w.states[final_slot * BR + o];
  }
  for (int p = threadIdx.x; p < B * hs; p += kThreads) {
    const size_t o = static_cast<size_t>(p / hs) * H + j0 + p % hs;
    if (a.c_n) a.c_n[o] = w.cstates[final_slot * BH + o];
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads, 1) backward_proj_kernel(CellSpec cell, BackwardArgs<T> a) {
  cg::grid_group grid = cg::this_grid();
  const int H = a.hidden, R = cell.proj, B = a.batch, G = 4;
  const size_t BH = static_cast<size_t>(B) * H, BR = static_cast<size_t>(B) * R, GH = static_cast<size_t>(G) * H;
  const int j0 = slice_begin(blockIdx.x, gridDim.x, H), hs = slice_begin(blockIdx.x + 1, gridDim.x, H) - j0;
  const int p0 = slice_begin(blockIdx.x, gridDim.x, R), ps = slice_begin(blockIdx.x + 1, gridDim.x, R) - p0;
  const int lane = threadIdx.x % 32;
  const Buffers<const T> w = workspace_views(cell, a.workspace, a.steps, a.batch, a.hidden);
  T* dh_buf = a.scratch;     // (2, B, R) ping-pong
  T* dc = dh_buf + 2 * BR;   // (B, H)

  for (int p = threadIdx.x; p < B * ps; p += kThreads) {
    const size_t o = static_cast<size_t>(p / ps) * R + p0 + p % ps;
    dh_buf[o] = a.dh_n ? a.dh_n[o] : T(0);
  }
  for (int p = threadIdx.x; p < B * hs; p += kThreads) {
    const size_t o = static_cast<size_t>(p / hs) * H + j0 + p % hs;
    dc[o] = a.dc_n ? a.dc_n[o] : T(0);
  }
  __syncthreads();

  for (int r = 0; r < a.steps; ++r) {
    const int s = a.steps - 1 - r;
    const int t = a.reverse ? a.steps - 1 - s : s;
    const T* dh_in = dh_buf + (r & 1) * BR;
    T* dh_out = dh_buf + ((r + 1) & 1) * BR;
    T* dht_t = a.dht + static_cast<size_t>(t) * BR;
    T* dz_t = a.dzx + static_cast<size_t>(t) * B * GH;
    const T* dy_t = a.dy + static_cast<size_t>(t) * B * a.ldy;
    // Phase 1: the total gradient reaching h_t, this block's units of h (thread per (b, unit)).
    for (int q = threadIdx.x; q < B * ps; q += kThreads) {
      const int b = q / ps, p = p0 + q % ps;
      const size_t o = static_cast<size_t>(b) * R + p;
      if (!is_active(a.lengths, b, t)) {  // the state was carried through: so is its gradient
        dht_t[o] = T(0);
        dh_out[o] = dh_in[o];
      } else {
        dht_t[o] = dy_t[static_cast<size_t>(b) * a.ldy + p] + dh_in[o];
        dh_out[o] = T(0);
      }
    }
    grid.sync();  // dht_t of every unit of h
    // Phase 2: dm = dht·W_hr and the gate gradients of this block's hidden units (warp per (b, unit)).
    for_each_row_pair(static_cast<const T*>(dht_t), R, R, B, hs, static_cast<T*>(nullptr), 0,
                      [&](int b, int jj, const T* d, bool) {
      const int j = j0 + jj;
      const size_t o = static_cast<size_t>(b) * H + j;
      T* dz = dz_t + b * GH;
      if (!is_active(a.lengths, b, t)) {
        if (lane == 0) for (int g = 0; g < G; ++g) dz[g * H + j] = T(0);
        return;
      }
      T acc = T(0);
      for (int k = lane; k < R; k += 32) acc += __ldcg(d + k) * __ldg(a.w_hr + static_cast<size_t>(k) * H + j);
      acc = warp_sum(acc);
      if (lane != 0) return;
      const T* ac = w.acts + (static_cast<size_t>(t) * B + b) * GH;
      const LstmGates<T> g{ac[j], ac[H + j], ac[2 * H + j], ac[3 * H + j]};
      LstmGates<T> dg;
      T dc_prev;
      lstm_unit_backward(acc, dc[o], g, w.cstates[slot_next(t, a.reverse) * BH + o],
                         w.cstates[slot_prev(t, a.reverse) * BH + o], &dg, &dc_prev);
      dz[j] = dg.i; dz[H + j] = dg.f; dz[2 * H + j] = dg.g; dz[3 * H + j] = dg.o;
      dc[o] = dc_prev;
    });
    grid.sync();  // dz_t of every hidden unit
    // Phase 3: dh_{t-1} = dz_t·W_hh for this block's units of h (warp per (b, unit), K = G·H).
    for_each_row_pair(static_cast<const T*>(dz_t), GH, static_cast<int>(GH), B, ps, static_cast<T*>(nullptr), 0,
                      [&](int b, int pp, const T* dz, bool) {
      if (!is_active(a.lengths, b, t)) return;
      const int p = p0 + pp;
      T acc = T(0);
      for (int g = lane; g < static_cast<int>(GH); g += 32)
        acc += __ldcg(dz + g) * __ldg(a.w_hh + static_cast<size_t>(g) * R + p);
      acc = warp_sum(acc);
      if (lane == 0) dh_out[static_cast<size_t>(b) * R + p] += acc;
    });
    __syncthreads();  // the next step's phase 1 reads this block's dh_out entries only
  }

  const T* dh_final = dh_buf + (a.steps & 1) * BR;
  for (int p = threadIdx.x; p < B * ps; p += kThreads) {
    const size_t o = static_cast<size_t>(p / ps) * R + p0 + p % ps;
    a.dh0[o] = dh_final[o];
  }
  for (int p = threadIdx.x; p < B * hs; p += kThreads) {
    const size_t o = static_cast<size_t>(p / hs) * H + j0 + p % hs;
    if (a.dc0) a.dc0[o] = dc[o];
  }
}

// ---- launch planning -------------------------------------------------------------------------
struct DeviceFacts { int sms = 0; std::size_t smem_optin = 0; };

cudaError_t device_facts(DeviceFacts* f) {
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return e;
  int v = 0;
  if ((e = cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev)) != cudaSuccess) return e;
  f->sms = v;
  if ((e = cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev)) != cudaSuccess) return e;
  f->smem_optin = static_cast<std::size_t>(v);
  return cudaSuccess;
}

// Raises a kernel's dynamic shared-memory limit to the device's opt-in maximum, once per (kernel,
// device) and under a lock: every later launch stays within it, so no thread ever lowers the limit
// between another thread's check and launch (the bindings release the GIL).
cudaError_t allow_optin_shared_memory(const void* kernel, int device, std::size_t optin) {
  static std::mutex mutex;
  static std::set<std::pair<const void*, int>> done;
  const std::lock_guard<std::mutex> lock(mutex);
  if (done.count({kernel, device})) return cudaSuccess;
  cudaFuncAttributes attr{};
  cudaError_t e = cudaFuncGetAttributes(&attr, kernel);
  if (e != cudaSuccess) return e;
  const int limit = static_cast<int>(optin - std::min(optin, attr.sharedSizeBytes));
  if ((e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, limit)) != cudaSuccess) return e;
  done.insert({kernel, device});
  return cudaSuccess;
}

// Shared memory of one block: the weight slice (0 for the global-memory kernel) and a staging
// buffer of `rows` batch rows of `row_elems` elements each.
struct KernelShape {
  const void* smem_kernel;
  const void* global_kernel;
  std::size_t unit_weight_elems;  // shared memory per unit of the weight slice, padding included
  std::size_t row_elems;     // the longest vector a warp reduces against (H forward, G·H backward)
};

// Staged rows: enough for every warp of the block to have a pair (capped by the batch), fewer if
// shared memory is short (0: read the vectors from L2).
int staged_rows(int batch, int units, std::size_t row_elems, std::size_t elem, std::size_t budget) {
  int rows = std::min(batch, (kWarps + units - 1) / units);
  while (rows > 0 && rows * row_elems * elem > budget) --rows;
  return rows;
}

// One block per SM (at most one per unit); the weight slice in shared memory when it fits and the
// kernel can still have every block resident, else weights from global memory; then as many staged
// rows as the rest of shared memory allows.
cudaError_t plan_and_launch(const KernelShape& k, int hidden, int batch, std::size_t elem, int* stage_elems,
                            void** args, cudaStream_t stream) {
  int device = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) return e;
  DeviceFacts f;
  if ((e = device_facts(&f)) != cudaSuccess) return e;
  const int blocks = std::max(1, std::min(f.sms, hidden));
  const int units = (hidden + blocks - 1) / blocks;
  const std::size_t weight_bytes = units * k.unit_weight_elems * elem;
  for (const void* kernel : {k.smem_kernel, k.global_kernel})
    if ((e = allow_optin_shared_memory(kernel, device, f.smem_optin)) != cudaSuccess) return e;
  for (const bool weights_in_smem : {true, false}) {
    if (weights_in_smem && weight_bytes > f.smem_optin) continue;
    const std::size_t fixed = weights_in_smem ? weight_bytes : 0;
    const void* kernel = weights_in_smem ? k.smem_kernel : k.global_kernel;
    const int rows = staged_rows(batch, units, k.row_elems, elem, f.smem_optin - fixed);
    const std::size_t smem = fixed + rows * k.row_elems * elem;
    int per_sm = 0;  // every block must be resident for grid.sync()
    if ((e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, smem)) != cudaSuccess) return e;
    if (per_sm * f.sms < blocks) {
      if (weights_in_smem) continue;
      return cudaErrorCooperativeLaunchTooLarge;
    }
    *stage_elems = static_cast<int>(rows * k.row_elems);
    g_last_plan = LaunchPlan{blocks, units, fixed, true, rows * k.row_elems * elem};
    return cudaLaunchCooperativeKernel(kernel, dim3(blocks), dim3(kThreads), args, smem, stream);
  }
  return cudaErrorCooperativeLaunchTooLarge;
}

// The projection kernels: one block per SM (at most one per hidden unit, H > R), no shared memory,
// fewer blocks if not all would be resident (grid.sync() needs every block).
cudaError_t launch_proj(const void* kernel, int hidden, void** args, cudaStream_t stream) {
  DeviceFacts f;
  cudaError_t e = device_facts(&f);
  if (e != cudaSuccess) return e;
  int per_sm = 0;
  if ((e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0)) != cudaSuccess) return e;
  const int blocks = std::max(1, std::min({f.sms, hidden, per_sm * f.sms}));
  if (per_sm == 0) return cudaErrorCooperativeLaunchTooLarge;
  g_last_plan = LaunchPlan{blocks, (hidden + blocks - 1) / blocks, 0, true, 0};
  return cudaLaunchCooperativeKernel(kernel, dim3(blocks), dim3(kThreads), args, 0, stream);
}

}  // namespace

std::size_t forward_scratch_size(const CellSpec& cell, int batch, int hidden) {
  const std::size_t bh = static_cast<std::size_t>(batch) * hidden;
  const std::size_t br = static_cast<std::size_t>(batch) * cell.state_size(hidden);
  return 2 * br + (cell.kind == CellKind::Lstm ? 2 * bh : 0) + cell.gates() * bh +
         (cell.kind == CellKind::Gru ? bh : 0) + (cell.proj > 0 ? bh : 0);
}

std::size_t backward_scratch_size(const CellSpec& cell, int batch, int hidden) {
  const std::size_t bh = static_cast<std::size_t>(batch) * hidden;
  const std::size_t br = static_cast<std::size_t>(batch) * cell.state_size(hidden);
  const bool extra = cell.kind == CellKind::Lstm || (cell.kind == CellKind::Gru && !cell.reset_after);
  return 2 * br + (extra ? bh : 0);
}

template <typename T>
int recurrent_forward(const CellSpec& cell, const ForwardArgs<T>& a, void* stream) {
  CellSpec c = cell;
  ForwardArgs<T> args = a;
  int stage_elems = 0;
  if (cell.proj > 0) {
    void* proj_params[] = {&c, &args};
    return static_cast<int>(launch_proj(reinterpret_cast<const void*>(forward_proj_kernel<T>), a.hidden, proj_params,
                                        static_cast<cudaStream_t>(stream)));
  }
  void* params[] = {&c, &args, &stage_elems};
  const std::size_t H = a.hidden;
  const KernelShape k{reinterpret_cast<const void*>(forward_kernel<T, true>),
                      reinterpret_cast<const void*>(forward_kernel<T, false>), cell.gates() * H, H};
  return static_cast<int>(plan_and_launch(k, a.hidden, a.batch, sizeof(T), &stage_elems, params,
                                          static_cast<cudaStream_t>(stream)));
}

template <typename T>
int recurrent_backward(const CellSpec& cell, const BackwardArgs<T>& a, void* stream) {
  CellSpec c = cell;
  BackwardArgs<T> args = a;
  int stage_elems = 0;
  if (cell.proj > 0) {
    void* proj_params[] = {&c, &args};
    return static_cast<int>(launch_proj(reinterpret_cast<const void*>(backward_proj_kernel<T>), a.hidden, proj_params,
                                        static_cast<cudaStream_t>(stream)));
  }
  void* params[] = {&c, &args, &stage_elems};
  const std::size_t GH = static_cast<std::size_t>(cell.gates()) * a.hidden;
  const KernelShape k{reinterpret_cast<const void*>(backward_kernel<T, true>),
                      reinterpret_cast<const void*>(backward_kernel<T, false>), GH + 1, GH};
  return static_cast<int>(plan_and_launch(k, a.hidden, a.batch, sizeof(T), &stage_elems, params,
                                          static_cast<cudaStream_t>(stream)));
}

LaunchPlan last_launch_plan() { return g_last_plan; }

template int recurrent_forward<float>(const CellSpec&, const ForwardArgs<float>&, void*);
template int recurrent_forward<double>(const CellSpec&, const ForwardArgs<double>&, void*);
template int recurrent_backward<float>(const CellSpec&, const BackwardArgs<float>&, void*);
template int recurrent_backward<double>(const CellSpec&, const BackwardArgs<double>&, void*);

}  // namespace cuda
}  // namespace seqkernels
