"""The one place where :mod:`seqkernels.torch` reaches the compiled kernels.

Everything here takes and returns torch tensors for one layer (both directions): ``x`` is
``(T, B, I)``, ``h0``/``c0`` are ``(D, B, H)`` or None, ``weights`` is the flat list
``[w_ih, w_hh(, b_ih, b_hh)]`` per direction in torch's order. :func:`layer_forward` and
:func:`layer_backward` pick the implementation from the tensors' device (:func:`_backend`): CPU
tensors go to ``seqkernels._C`` through zero-copy NumPy views; CUDA tensors go to the CUDA kernels
(``seqkernels.nn._cuda_recurrent``) through zero-copy CuPy views (``__cuda_array_interface__``),
queued on torch's current stream of the tensors' device, with that device current for torch and
CuPy (:func:`_on_device`). CuPy is needed for the CUDA path.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch

from .._backend import _C  # noqa: F401  (the CPU kernels)
from ..nn import _layer_plan

# The dtypes the CPU kernels take, by their NumPy names.
NUMPY_DTYPES = {torch.float32: "float32", torch.float64: "float64"}


class LayerSpec(NamedTuple):
    """What the kernels need to know about a layer besides its tensors."""

    mode: str  # "lstm", "gru" or "rnn" (the kernels' names)
    reset_after: bool  # GRU only
    nonlinearity: str  # RNN only: "tanh" or "relu"
    hidden_size: int
    num_directions: int
    bias: bool
    proj_size: int = 0  # LSTM with projections: h has proj_size units

    @property
    def per_direction(self) -> int:
        """Weight tensors per direction in the flat list (w_ih, w_hh[, b_ih, b_hh][, w_hr])."""
        return (4 if self.bias else 2) + (1 if self.proj_size else 0)

    @property
    def state_size(self) -> int:
        """Units of h (and of each direction's share of y)."""
        return self.proj_size or self.hidden_size

    @property
    def is_lstm(self) -> bool:
        return self.mode == "lstm"

    @property
    def cell(self) -> _layer_plan.Cell:
        return _layer_plan.Cell(self.mode, self.reset_after, self.nonlinearity, self.proj_size)


def _numpy_view(t):
    """Zero-copy NumPy view of a contiguous CPU tensor (detached where it requires grad: the kernels
    never need autograd, and ``detach`` costs a tensor each call)."""
    if t is None:
        return None
    return t.detach().numpy() if t.requires_grad else t.numpy()


def _cupy_view(t):
    """Zero-copy CuPy view of a CUDA tensor, through ``__cuda_array_interface__``."""
    import cupy

    return None if t is None else cupy.asarray(t.detach())


def _layer_weights(spec: LayerSpec, weights):
    """torch's flat list → [(w_ih, w_hh, b_ih, b_hh(, w_hr))] per direction."""
    P = spec.per_direction
    out = []
    for d in range(spec.num_directions):
        w = tuple(weights[d * P : (d + 1) * P])
        out.append(w if spec.bias else (*w[:2], None, None, *w[2:]))
    return out


def _alloc_like(x):
    """``alloc(shape)`` for new tensors of x's dtype and device: on the host, from the block pool
    when large (as _layer_plan.host_empty), else ``x.new_empty``."""
    dtype = NUMPY_DTYPES.get(x.dtype)
    if x.device.type != "cpu" or dtype is None:
        return x.new_empty
    itemsize = x.element_size()

    def alloc(shape):
        if _layer_plan.pooled_size(shape, itemsize):
            return torch.from_numpy(_layer_plan.pooled_empty(shape, dtype))
        return x.new_empty(shape)

    return alloc


def _forward_with(kernels, view, spec: LayerSpec, x, h0, c0, weights, lengths, training: bool, packs=None):
    """One layer, all directions, through ``kernels.forward`` (``_C`` or the CUDA path) on ``view``s.
    The workspaces are the rows of one ``(D, size)`` tensor, so a custom op can return them."""
    workspaces = None
    alloc = _alloc_like(x)
    if training:
        T, B, _ = x.shape
        size = _layer_plan.workspace_size(spec.cell, T, B, spec.hidden_size)
        workspaces = alloc((spec.num_directions, size))
    y, h_n, c_n, _ = _layer_plan.forward(
        kernels,
        spec.cell,
        x,
        _layer_weights(spec, weights),
        h0=h0,
        c0=c0,
        lengths=lengths,
        training=training,
        alloc=alloc,
        view=view,
        workspaces=workspaces,
        packs=packs,
    )
    return y, h_n, c_n, workspaces


def _backward_with(kernels, view, spec: LayerSpec, x, weights, lengths, workspaces, dy, dh_n, dc_n, packs=None):
    dx, dh0, dc0, grads = _layer_plan.backward(
        kernels,
        spec.cell,
        x,
        _layer_weights(spec, weights),
        workspaces,
        dy,
        dh_n=dh_n,
        dc_n=dc_n,
        lengths=lengths,
        alloc=_alloc_like(x),
        view=view,
        packs=packs,
    )
    dweights = [g for per_direction in grads for g in per_direction if g is not None]
    return dx, dh0, dc0, dweights


# ---- CPU: seqkernels._C through zero-copy NumPy views ---------------------------------------------
def _cpu_forward(spec, x, h0, c0, weights, lengths, training, packs=None):
    return _forward_with(_C, _numpy_view, spec, x, h0, c0, weights, lengths, training, packs)


def _cpu_backward(spec, x, weights, lengths, workspaces, dy, dh_n, dc_n, packs=None):
    return _backward_with(_C, _numpy_view, spec, x, weights, lengths, workspaces, dy, dh_n, dc_n, packs)


# ---- CUDA: seqkernels._cuda through CuPy views, on torch's current stream --------------------------
@contextlib.contextmanager
def _on_device(device: torch.device):
    """Runs the block with ``device`` current for torch and CuPy and CuPy's current stream set to
    torch's current stream *of that device*, so that a layer on ``cuda:1`` launches on GPU 1, queued
    behind torch's work there, whatever device is current outside; restores all three afterwards."""
    import cupy

    index = device.index if device.index is not None else torch.cuda.current_device()
    with torch.cuda.device(index), cupy.cuda.Device(index):
        stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(index).cuda_stream, index)
        with stream:
            yield


def _device_lengths(lengths):
    import cupy

    return None if lengths is None else cupy.asarray(lengths)


def _cuda_forward(spec, x, h0, c0, weights, lengths, training, packs=None):
    from ..nn import _cuda_recurrent

    with _on_device(x.device):
        return _forward_with(_cuda_recurrent, _cupy_view, spec, x, h0, c0, weights, _device_lengths(lengths), training)


def _cuda_backward(spec, x, weights, lengths, workspaces, dy, dh_n, dc_n, packs=None):
    from ..nn import _cuda_recurrent

    with _on_device(x.device):
        return _backward_with(
            _cuda_recurrent, _cupy_view, spec, x, weights, _device_lengths(lengths), workspaces, dy, dh_n, dc_n
        )


def _backend(device: torch.device):
    """(forward, backward) implementations for tensors on ``device``: the dispatch point."""
    if device.type == "cpu":
        return _cpu_forward, _cpu_backward
    if device.type == "cuda":
        return _cuda_forward, _cuda_backward
    raise RuntimeError(f"seqkernels.torch: tensors on device '{device}' are not supported (only 'cpu' and 'cuda')")


def layer_forward(spec: LayerSpec, x, h0, c0, weights, lengths, training: bool, packs=None):
    """Run one layer, all directions. ``lengths``: int32 NumPy ``(B,)`` or None. With ``training``,
    also return the workspaces for :func:`layer_backward`, one ``(D, size)`` tensor. ``packs``: the layer's CPU
    pack buffers (``_layer_plan.new_packs``) or None.
    Returns ``(y (T, B, D*H), h_n (D, B, H), c_n or None, workspaces (D, size) or None)``."""
    return _backend(x.device)[0](spec, x, h0, c0, weights, lengths, training, packs)


def layer_backward(spec: LayerSpec, x, weights, lengths, workspaces, dy, dh_n, dc_n, packs=None):
    """Backward through time of one layer after a training :func:`layer_forward`. ``dy`` is
    ``(T, B, D*H)`` contiguous; ``dh_n``/``dc_n`` ``(D, B, H)`` contiguous or None (zeros).
    Returns ``(dx, dh0, dc0 or None, [gradient of each weight])``."""
    return _backend(x.device)[1](spec, x, weights, lengths, workspaces, dy, dh_n, dc_n, packs)
