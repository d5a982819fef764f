"""One recurrent layer written in plain differentiable torch ops: the twin of the fused kernels
that autograd can differentiate again. The fused backward is ``once``-differentiable (it writes
gradients, it builds no graph); when a graph of the gradient is asked for
(``torch.autograd.grad(..., create_graph=True)``: gradient penalties, Hessian-vector products,
meta-learning), :mod:`._autograd` recomputes the layer here and differentiates this instead.

Slow by design (one small matmul per step and direction); it runs only for double backward.
Written over :func:`cell_step`, one step of one direction, so a cell with more weights per
direction (an LSTM projection) extends it in one place.
"""

from __future__ import annotations

import torch

from ._kernels import LayerSpec


def _linear(x, w, b):
    return torch.nn.functional.linear(x, w, b)


def cell_step(spec: LayerSpec, gi, h, c, w_hh, b_hh, w_hr=None):
    """One step of one direction. ``gi``: the input side ``x_t W_ih^T + b_ih`` ``(B, G·H)``; ``h``:
    ``(B, R)``, ``c``: ``(B, H)`` (``c`` None except for LSTM; ``R = P`` with projections ``w_hr``,
    else ``H``). Returns ``(h_new, c_new or None)``."""
    H = spec.hidden_size
    if spec.mode == "lstm":
        z = gi + _linear(h, w_hh, b_hh)
        i, f, g, o = z.split(H, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        return (h_new if w_hr is None else _linear(h_new, w_hr, None)), c_new
    if spec.mode == "gru":
        gi_r, gi_z, gi_n = gi.split(H, dim=1)
        w_r, w_z, w_n = w_hh.split(H, dim=0)
        b_r, b_z, b_n = (None, None, None) if b_hh is None else b_hh.split(H)
        r = torch.sigmoid(gi_r + _linear(h, w_r, b_r))
        u = torch.sigmoid(gi_z + _linear(h, w_z, b_z))
        if spec.reset_after:
            n = torch.tanh(gi_n + r * _linear(h, w_n, b_n))
        else:
            n = torch.tanh(gi_n + _linear(r * h, w_n, b_n))
        return n + u * (h - n), None
    a = gi + _linear(h, w_hh, b_hh)
    return (torch.tanh(a) if spec.nonlinearity == "tanh" else torch.relu(a)), None


def _direction(spec: LayerSpec, x, h0, c0, w, active, reverse: bool):
    """One direction over ``x (T, B, I)``. ``active``: ``(T, B, 1)`` bool, True while ``t < length``
    (None: every step active). Padded steps keep the state and output zeros, as the kernels do;
    the reverse direction then starts at each row's last valid step. ``w``: ``(w_ih, w_hh, b_ih, b_hh[,
    w_hr])``. Returns ``(out (T, B, R), h, c)``."""
    w_ih, w_hh, b_ih, b_hh, *w_hr = w
    w_hr = w_hr[0] if w_hr else None
    gi_all = _linear(x, w_ih, b_ih)  # the input projection of every step at once
    h, c = h0, c0
    outs = [None] * x.shape[0]
    for t in range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0]):
        h_new, c_new = cell_step(spec, gi_all[t], h, c, w_hh, b_hh, w_hr)
        if active is None:
            h, c, outs[t] = h_new, c_new, h_new
        else:
            keep = active[t]
            h = torch.where(keep, h_new, h)
            c = None if c is None else torch.where(keep, c_new, c)
            outs[t] = torch.where(keep, h_new, torch.zeros_like(h_new))
    return torch.stack(outs), h, c


def layer(spec: LayerSpec, x, h0, c0, weights, lengths):
    """Same contract as ``_kernels.layer_forward`` without workspaces: ``(y, h_n, c_n or None)``,
    differentiable in every input. ``lengths``: ``(B,)`` integer tensor (or NumPy array) or None."""
    T, B, _ = x.shape
    H, R, D, P = spec.hidden_size, spec.state_size, spec.num_directions, spec.per_direction
    active = None
    if lengths is not None:
        steps = torch.arange(T, device=x.device).unsqueeze(1)
        active = (steps < torch.as_tensor(lengths, device=x.device).unsqueeze(0)).unsqueeze(2)
    ys, hs, cs = [], [], []
    for d in range(D):
        w = tuple(weights[d * P : (d + 1) * P])
        if not spec.bias:
            w = (*w[:2], None, None, *w[2:])
        h = x.new_zeros((B, R)) if h0 is None else h0[d]
        c = None if not spec.is_lstm else (x.new_zeros((B, H)) if c0 is None else c0[d])
        out, h, c = _direction(spec, x, h, c, w, active, reverse=bool(d))
        ys.append(out)
        hs.append(h)
        cs.append(c)
    y = torch.cat(ys, dim=2) if D > 1 else ys[0]
    return y, torch.stack(hs), (torch.stack(cs) if spec.is_lstm else None)
