"""One recurrent layer, every direction, through the kernels: the plan shared by
:mod:`seqkernels.nn` (NumPy / CuPy arrays) and :mod:`seqkernels.torch` (tensors).

The caller supplies the kernels module (``seqkernels._C`` or the CUDA path, both with keyword-only
``forward``/``backward``), ``alloc(shape)`` for new outputs in its own array type, and ``view(a)``
turning one of its arrays into what the kernels take (identity for NumPy/CuPy, a zero-copy view for
torch tensors). Weights come per direction as ``(w_ih, w_hh, b_ih, b_hh)`` (biases may be None).

Packed weights (CPU): ``packs`` holds one NumPy buffer per direction, kept by the layer between
calls. The kernels check each buffer against the current ``w_hh`` by a content hash and rebuild it
only when the weights changed, so a layer packs once per weight change and never uses a stale pack.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._backend import _C


class Cell(NamedTuple):
    """A cell as the kernels name it."""

    mode: str                   # "lstm", "gru" or "rnn"
    reset_after: bool = True    # GRU only
    nonlinearity: str = "tanh"  # RNN only

    @property
    def kernel_args(self) -> dict:
        return {"mode": self.mode, "reset_after": self.reset_after, "nonlinearity": self.nonlinearity}

    @property
    def has_cell_state(self) -> bool:
        return self.mode == "lstm"


def new_packs(cell: Cell, hidden: int, dtype, directions: int) -> list:
    """One empty pack buffer per direction (filled by the first call that uses it)."""
    size = _C.pack_size(cell.mode, cell.reset_after, cell.nonlinearity, hidden, np.dtype(dtype).name)
    return [np.zeros(size, dtype=dtype) for _ in range(directions)]


def workspace_size(cell: Cell, steps: int, batch: int, hidden: int) -> int:
    """Elements of one direction's training workspace."""
    return _C.workspace_size(cell.mode, cell.reset_after, cell.nonlinearity, steps, batch, hidden)


def forward(kernels, cell: Cell, x, weights, *, h0, c0, lengths, training, alloc, view=lambda a: a, y=None, h_n=None,
            c_n=None, workspaces=None, packs=None, num_threads=0):
    """Run one layer over ``x (T, B, I)``, all directions. ``h0``/``c0``: ``(D, B, H)`` or None.
    Outputs may be given (``y (T, B, D·H)``, ``h_n``/``c_n (D, B, H)``, ``workspaces`` indexable by
    direction, each of :func:`workspace_size`) or are allocated.
    Returns ``(y, h_n, c_n, workspaces)`` (workspaces None unless ``training``)."""
    T, B, _ = x.shape
    D = len(weights)
    H = view(weights[0][1]).shape[1]
    y = alloc((T, B, D * H)) if y is None else y
    h_n = alloc((D, B, H)) if h_n is None else h_n
    if cell.has_cell_state and c_n is None:
        c_n = alloc((D, B, H))
    if not training:
        workspaces = None
    elif workspaces is None:
        workspaces = [alloc((workspace_size(cell, T, B, H),)) for _ in range(D)]
    xv, yv = view(x), view(y)
    for d in range(D):
        w_ih, w_hh, b_ih, b_hh = (None if w is None else view(w) for w in weights[d])
        kernels.forward(**cell.kernel_args, x=xv, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh,
                        h0=None if h0 is None else view(h0[d]), c0=None if c0 is None else view(c0[d]),
                        lengths=lengths, reverse=bool(d), y=yv, direction=d, h_n=view(h_n[d]),
                        c_n=None if c_n is None else view(c_n[d]),
                        workspace=None if workspaces is None else view(workspaces[d]),
                        pack=None if packs is None else packs[d], num_threads=num_threads)
    return y, h_n, (c_n if cell.has_cell_state else None), workspaces


def backward(kernels, cell: Cell, x, weights, workspaces, dy, *, dh_n, dc_n, lengths, alloc, zeros, view=lambda a: a,
             dh0=None, dc0=None, packs=None, num_threads=0):
    """Backward through time of one layer after a training :func:`forward`. ``dy``: ``(T, B, D·H)``;
    ``dh_n``/``dc_n``: ``(D, B, H)`` or None. ``zeros(shape)`` makes the zeroed ``dx`` (each direction
    adds its share). Returns ``(dx, dh0, dc0, grads)`` with ``grads[d] = (dw_ih, dw_hh, db_ih, db_hh)``
    in each weight's shape (biases None when absent)."""
    T, B, I = x.shape
    D = len(weights)
    H = view(weights[0][1]).shape[1]
    dx = zeros((T, B, I))
    dh0 = alloc((D, B, H)) if dh0 is None else dh0
    if cell.has_cell_state and dc0 is None:
        dc0 = alloc((D, B, H))
    xv, dyv, dxv = view(x), view(dy), view(dx)
    grads = []
    for d in range(D):
        g = tuple(None if w is None else alloc(tuple(view(w).shape)) for w in weights[d])
        w_ih, w_hh, _, _ = (None if w is None else view(w) for w in weights[d])
        kernels.backward(**cell.kernel_args, x=xv, w_ih=w_ih, w_hh=w_hh, lengths=lengths, reverse=bool(d), dy=dyv,
                         direction=d, dh_n=None if dh_n is None else view(dh_n[d]),
                         dc_n=None if dc_n is None else view(dc_n[d]), workspace=view(workspaces[d]), dx=dxv,
                         dh0=view(dh0[d]), dc0=None if dc0 is None or not cell.has_cell_state else view(dc0[d]),
                         dw_ih=view(g[0]), dw_hh=view(g[1]), db_ih=None if g[2] is None else view(g[2]),
                         db_hh=None if g[3] is None else view(g[3]), pack=None if packs is None else packs[d],
                         num_threads=num_threads)
        grads.append(g)
    return dx, dh0, (dc0 if cell.has_cell_state else None), grads
