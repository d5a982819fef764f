"""One recurrent layer, every direction, through the kernels: the plan shared by
:mod:`seqkernels.nn` (NumPy / CuPy arrays) and :mod:`seqkernels.torch` (tensors).

The caller supplies the kernels module (``seqkernels._C`` or the CUDA path, both with keyword-only
``forward``/``backward``), ``alloc(shape)`` for new outputs in its own array type, and ``view(a)``
turning one of its arrays into what the kernels take (identity for NumPy/CuPy, a zero-copy view for
torch tensors). Weights come per direction as ``(w_ih, w_hh, b_ih, b_hh)`` (biases may be None), and
with ``(…, w_hr)`` for an LSTM with projections (``Cell.proj_size = P > 0``): then ``h`` and each
direction's share of ``y`` have ``R = P`` units while ``c`` keeps ``H``.

Packed weights (CPU): ``packs`` holds one NumPy buffer per direction, kept by the layer between
calls. The kernels check each buffer against the current ``w_hh`` by a content hash and rebuild it
only when the weights changed, so a layer packs once per weight change and never uses a stale pack.
"""

from __future__ import annotations

import functools
import math
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from .._backend import _C, follow_torch_threads
from ..reference import GATES


class Cell(NamedTuple):
    """A cell as the kernels name it."""

    mode: str  # "lstm", "gru" or "rnn"
    reset_after: bool = True  # GRU only
    nonlinearity: str = "tanh"  # RNN only
    proj_size: int = 0  # LSTM only: 0 = no projection

    @property
    def kernel_args(self) -> MappingProxyType:
        """The cell's keyword arguments of ``forward``/``backward`` (built once per cell)."""
        return _kernel_args(self)

    @property
    def layout_args(self) -> tuple:
        """(mode, reset_after, nonlinearity) for _C.workspace_size / pack_size (proj_size apart)."""
        return self.mode, self.reset_after, self.nonlinearity

    @property
    def has_cell_state(self) -> bool:
        return self.mode == "lstm"


@functools.cache
def _kernel_args(cell: Cell) -> MappingProxyType:
    args = {"mode": cell.mode, "reset_after": cell.reset_after, "nonlinearity": cell.nonlinearity}
    if cell.proj_size:
        args["proj_size"] = cell.proj_size
    return MappingProxyType(args)


def _views(view, *arrays):
    """``view`` of each array (None stays None). States ``(D, B, ·)`` are viewed whole once and their
    directions indexed in the kernels' array type: cheaper than a view of each direction's slice
    of a torch tensor, which matters for one-step calls (decoding)."""
    return [None if a is None else view(a) for a in arrays]


def new_packs(cell: Cell, input_size: int, hidden: int, dtype, directions: int) -> list:
    """One empty pack buffer per direction of a layer with this input size (filled by the first call
    that uses it)."""
    size = _C.pack_size(*cell.layout_args, input_size, hidden, np.dtype(dtype).name, proj_size=cell.proj_size)
    return [np.zeros(size, dtype=dtype) for _ in range(directions)]


# Host buffers of at least this many bytes (workspaces, outputs, gradients: made on every call) come
# from the kernels' block pool. glibc hands large freed blocks back to the system, so without it a
# call faulted fresh pages in for each of them (a one-step GRU training call at H = 1024 through
# seqkernels.torch: 3,267 page faults and 9.5 ms, against 205 and 4.2 ms from the pool). Smaller
# buffers are not worth the extra calls.
POOLED_MIN_BYTES = 1 << 18


def pooled_empty(shape, dtype) -> np.ndarray:
    """An uninitialised host array from the kernels' block pool. Its memory goes back to the pool when
    the array, and anything keeping it alive (``torch.from_numpy``), is freed."""
    return _C.pooled_empty([int(n) for n in shape], np.dtype(dtype))


def pooled_size(shape, itemsize: int) -> bool:
    """Whether a host buffer of this shape and element size comes from the pool (POOLED_MIN_BYTES)."""
    return math.prod(shape) * itemsize >= POOLED_MIN_BYTES


def host_empty(shape, dtype) -> np.ndarray:
    """An uninitialised host array: :func:`pooled_empty` when :func:`pooled_size`, else ``np.empty``."""
    dtype = np.dtype(dtype)
    return pooled_empty(shape, dtype) if pooled_size(shape, dtype.itemsize) else np.empty(shape, dtype)


def workspace_size(cell: Cell, steps: int, batch: int, hidden: int) -> int:
    """Elements of one direction's training workspace."""
    return _C.workspace_size(*cell.layout_args, steps, batch, hidden, proj_size=cell.proj_size)


def _sizes(cell: Cell, weights):
    """(H, R): hidden units, and units of h (R = P with projections, else H), from w_hh (G·H, R)."""
    rows, R = weights[0][1].shape  # (a torch tensor's shape too: no view needed)
    return rows // GATES[cell.mode], R


def _proj_weight(weights_d, view):
    """w_hr of one direction's weights, or None."""
    return view(weights_d[4]) if len(weights_d) > 4 and weights_d[4] is not None else None


def forward(
    kernels,
    cell: Cell,
    x,
    weights,
    *,
    h0,
    c0,
    lengths,
    training,
    alloc,
    view=lambda a: a,
    y=None,
    h_n=None,
    c_n=None,
    workspaces=None,
    packs=None,
    num_threads=0,
):
    """Run one layer over ``x (T, B, I)``, all directions. ``h0``: ``(D, B, R)``, ``c0``: ``(D, B, H)``, or None.
    Outputs may be given (``y (T, B, D·R)``, ``h_n (D, B, R)``, ``c_n (D, B, H)``, ``workspaces``
    indexable by direction, each of :func:`workspace_size`) or are allocated by ``alloc``.
    Returns ``(y, h_n, c_n, workspaces)`` (workspaces None unless ``training``)."""
    follow_torch_threads()
    T, B, _ = x.shape
    D = len(weights)
    H, R = _sizes(cell, weights)
    y = alloc((T, B, D * R)) if y is None else y
    h_n = alloc((D, B, R)) if h_n is None else h_n
    if cell.has_cell_state and c_n is None:
        c_n = alloc((D, B, H))
    if not training:
        workspaces = None
    elif workspaces is None:
        workspaces = [alloc((workspace_size(cell, T, B, H),)) for _ in range(D)]
    xv, yv, h0v, c0v, h_nv, c_nv = _views(view, x, y, h0, c0, h_n, c_n)
    for d in range(D):
        w_ih, w_hh, b_ih, b_hh = _views(view, *weights[d][:4])
        proj = {"w_hr": _proj_weight(weights[d], view)} if cell.proj_size else {}
        kernels.forward(
            **cell.kernel_args,
            **proj,
            x=xv,
            w_ih=w_ih,
            w_hh=w_hh,
            b_ih=b_ih,
            b_hh=b_hh,
            h0=None if h0v is None else h0v[d],
            c0=None if c0v is None else c0v[d],
            lengths=lengths,
            reverse=bool(d),
            y=yv,
            direction=d,
            h_n=h_nv[d],
            c_n=None if c_nv is None else c_nv[d],
            workspace=None if workspaces is None else view(workspaces[d]),
            pack=None if packs is None else packs[d],
            num_threads=num_threads,
        )
    return y, h_n, (c_n if cell.has_cell_state else None), workspaces


def backward(
    kernels,
    cell: Cell,
    x,
    weights,
    workspaces,
    dy,
    *,
    dh_n,
    dc_n,
    lengths,
    alloc,
    view=lambda a: a,
    dh0=None,
    dc0=None,
    packs=None,
    num_threads=0,
):
    """Backward through time of one layer after a training :func:`forward`. ``dy``: ``(T, B, D·R)``;
    ``dh_n``: ``(D, B, R)``, ``dc_n``: ``(D, B, H)``, or None. ``dx`` is allocated uninitialised: the
    first direction writes it, the second adds its share. Returns ``(dx, dh0, dc0, grads)`` with
    ``grads[d] = (dw_ih, dw_hh, db_ih, db_hh)`` (and ``dw_hr`` with projections) in each weight's shape
    (biases None when absent)."""
    follow_torch_threads()
    T, B, I = x.shape
    D = len(weights)
    H, R = _sizes(cell, weights)
    dx = alloc((T, B, I))
    dh0 = alloc((D, B, R)) if dh0 is None else dh0
    if cell.has_cell_state and dc0 is None:
        dc0 = alloc((D, B, H))
    xv, dyv, dxv, dh_nv, dc_nv, dh0v, dc0v = _views(view, x, dy, dx, dh_n, dc_n, dh0, dc0)
    grads = []
    for d in range(D):
        g = tuple(None if w is None else alloc(tuple(w.shape)) for w in weights[d])
        w_ih, w_hh = view(weights[d][0]), view(weights[d][1])
        proj = {"w_hr": _proj_weight(weights[d], view), "dw_hr": view(g[4])} if cell.proj_size else {}
        kernels.backward(
            **cell.kernel_args,
            **proj,
            x=xv,
            w_ih=w_ih,
            w_hh=w_hh,
            lengths=lengths,
            reverse=bool(d),
            dy=dyv,
            direction=d,
            dh_n=None if dh_nv is None else dh_nv[d],
            dc_n=None if dc_nv is None else dc_nv[d],
            workspace=view(workspaces[d]),
            dx=dxv,
            dh0=dh0v[d],
            dc0=None if dc0v is None or not cell.has_cell_state else dc0v[d],
            dw_ih=view(g[0]),
            dw_hh=view(g[1]),
            db_ih=None if g[2] is None else view(g[2]),
            db_hh=None if g[3] is None else view(g[3]),
            pack=None if packs is None else packs[d],
            num_threads=num_threads,
            accumulate_dx=d > 0,
        )
        grads.append(g)
    return dx, dh0, (dc0 if cell.has_cell_state else None), grads
