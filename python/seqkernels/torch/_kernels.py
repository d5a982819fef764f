"""The one place where :mod:`seqkernels.torch` reaches the compiled kernels.

Everything here takes and returns torch tensors for one layer (both directions): ``x`` is
``(T, B, I)``, ``h0``/``c0`` are ``(D, B, H)`` or None, ``weights`` is the flat list
``[w_ih, w_hh(, b_ih, b_hh)]`` per direction in torch's order. :func:`layer_forward` and
:func:`layer_backward` pick the implementation from the tensors' device (:func:`_backend`): CPU
tensors go to ``seqkernels._C`` through zero-copy NumPy views; CUDA tensors go to the CUDA kernels
(``seqkernels.nn._cuda_recurrent``) through zero-copy CuPy views (``__cuda_array_interface__``),
queued on torch's current stream. CuPy is needed for the CUDA path.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from .._backend import _C


class LayerSpec(NamedTuple):
    """What the kernels need to know about a layer besides its tensors."""

    mode: str            # "lstm", "gru" or "rnn" (the kernels' names)
    reset_after: bool    # GRU only
    nonlinearity: str    # RNN only: "tanh" or "relu"
    hidden_size: int
    num_directions: int
    bias: bool

    @property
    def per_direction(self) -> int:
        """Weight tensors per direction in the flat list."""
        return 4 if self.bias else 2

    @property
    def is_lstm(self) -> bool:
        return self.mode == "lstm"


def _view(t: torch.Tensor) -> np.ndarray:
    """Zero-copy NumPy view of a contiguous CPU tensor (detached: the kernels never need autograd)."""
    return t.detach().numpy()


def _opt(t):
    return None if t is None else _view(t)


# ---- CPU: seqkernels._C ------------------------------------------------------------------------
def _cpu_forward(spec: LayerSpec, x, h0, c0, weights, lengths, training: bool):
    T, B, _ = x.shape
    D, H, P = spec.num_directions, spec.hidden_size, spec.per_direction
    y = x.new_empty((T, B, D * H))
    h_n = x.new_empty((D, B, H))
    c_n = x.new_empty((D, B, H)) if spec.is_lstm else None
    ws_size = _C.workspace_size(spec.mode, spec.reset_after, spec.nonlinearity, T, B, H) if training else 0
    workspaces = [x.new_empty(ws_size) for _ in range(D)] if training else None
    xv, yv, hv, cv, h0v, c0v = _view(x), y.numpy(), h_n.numpy(), _opt(c_n), _opt(h0), _opt(c0)
    for d in range(D):
        w = [_view(t) for t in weights[d * P:(d + 1) * P]]
        _C.forward(spec.mode, spec.reset_after, spec.nonlinearity, xv, w[0], w[1],
                   w[2] if spec.bias else None, w[3] if spec.bias else None,
                   None if h0v is None else h0v[d], None if c0v is None else c0v[d], lengths, bool(d), yv, d,
                   hv[d], None if cv is None else cv[d], workspaces[d].numpy() if training else None, 0)
    return y, h_n, c_n, workspaces


def _cpu_backward(spec: LayerSpec, x, weights, lengths, workspaces, dy, dh_n, dc_n):
    T, B, _ = x.shape
    D, H, P = spec.num_directions, spec.hidden_size, spec.per_direction
    dx = torch.zeros_like(x)  # the kernel adds each direction's share into dx
    dh0 = x.new_empty((D, B, H))
    dc0 = x.new_empty((D, B, H)) if spec.is_lstm else None
    dweights = [torch.empty_like(w) for w in weights]
    xv, dyv, dhv, dcv = _view(x), _view(dy), _opt(dh_n), _opt(dc_n)
    dxv, dh0v, dc0v = dx.numpy(), dh0.numpy(), _opt(dc0)
    for d in range(D):
        w = [_view(t) for t in weights[d * P:(d + 1) * P]]
        g = [t.numpy() for t in dweights[d * P:(d + 1) * P]]
        _C.backward(spec.mode, spec.reset_after, spec.nonlinearity, xv, w[0], w[1], lengths, bool(d), dyv, d,
                    None if dhv is None else dhv[d], None if dcv is None else dcv[d], _view(workspaces[d]),
                    dxv, dh0v[d], None if dc0v is None else dc0v[d], g[0], g[1],
                    g[2] if spec.bias else None, g[3] if spec.bias else None, 0)
    return dx, dh0, dc0, dweights


# ---- CUDA: seqkernels._cuda through __cuda_array_interface__ --------------------------------------
def _cupy_views(*tensors):
    """Zero-copy CuPy views of CUDA tensors (None stays None)."""
    import cupy

    return [None if t is None else cupy.asarray(t.detach()) for t in tensors]


def _torch_stream():
    """CuPy's handle on torch's current stream, so our kernels queue behind torch's work."""
    import cupy

    return cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream)


def _cuda_forward(spec: LayerSpec, x, h0, c0, weights, lengths, training: bool):
    import cupy

    from ..nn import _cuda_recurrent as kernels

    T, B, _ = x.shape
    D, H, P = spec.num_directions, spec.hidden_size, spec.per_direction
    y = x.new_empty((T, B, D * H))
    h_n = x.new_empty((D, B, H))
    c_n = x.new_empty((D, B, H)) if spec.is_lstm else None
    ws_size = _C.workspace_size(spec.mode, spec.reset_after, spec.nonlinearity, T, B, H) if training else 0
    workspaces = [x.new_empty(ws_size) for _ in range(D)] if training else None
    with _torch_stream():
        xv, yv, hv, cv, h0v, c0v = _cupy_views(x, y, h_n, c_n, h0, c0)
        lv = None if lengths is None else cupy.asarray(lengths)
        for d in range(D):
            w = _cupy_views(*weights[d * P:(d + 1) * P])
            kernels.forward(spec.mode, spec.reset_after, spec.nonlinearity, xv, w[0], w[1],
                            w[2] if spec.bias else None, w[3] if spec.bias else None,
                            None if h0v is None else h0v[d], None if c0v is None else c0v[d], lv, bool(d), yv, d,
                            hv[d], None if cv is None else cv[d],
                            _cupy_views(workspaces[d])[0] if training else None)
    return y, h_n, c_n, workspaces


def _cuda_backward(spec: LayerSpec, x, weights, lengths, workspaces, dy, dh_n, dc_n):
    import cupy

    from ..nn import _cuda_recurrent as kernels

    T, B, _ = x.shape
    D, H, P = spec.num_directions, spec.hidden_size, spec.per_direction
    dx = torch.zeros_like(x)
    dh0 = x.new_empty((D, B, H))
    dc0 = x.new_empty((D, B, H)) if spec.is_lstm else None
    dweights = [torch.empty_like(w) for w in weights]
    with _torch_stream():
        xv, dyv, dhv, dcv, dxv, dh0v, dc0v = _cupy_views(x, dy, dh_n, dc_n, dx, dh0, dc0)
        lv = None if lengths is None else cupy.asarray(lengths)
        for d in range(D):
            w = _cupy_views(*weights[d * P:(d + 1) * P])
            g = _cupy_views(*dweights[d * P:(d + 1) * P])
            kernels.backward(spec.mode, spec.reset_after, spec.nonlinearity, xv, w[0], w[1], lv, bool(d), dyv, d,
                             None if dhv is None else dhv[d], None if dcv is None else dcv[d],
                             _cupy_views(workspaces[d])[0], dxv, dh0v[d], None if dc0v is None else dc0v[d],
                             g[0], g[1], g[2] if spec.bias else None, g[3] if spec.bias else None)
    return dx, dh0, dc0, dweights


def _backend(device: torch.device):
    """(forward, backward) implementations for tensors on ``device``: the dispatch point."""
    if device.type == "cpu":
        return _cpu_forward, _cpu_backward
    if device.type == "cuda":
        return _cuda_forward, _cuda_backward
    raise RuntimeError(f"seqkernels.torch: tensors on device '{device}' are not supported (CPU only for now)")


def layer_forward(spec: LayerSpec, x, h0, c0, weights, lengths, training: bool):
    """Run one layer, all directions. ``lengths``: int32 NumPy ``(B,)`` or None. With ``training``,
    also return one workspace per direction for :func:`layer_backward`.
    Returns ``(y (T, B, D*H), h_n (D, B, H), c_n or None, workspaces or None)``."""
    return _backend(x.device)[0](spec, x, h0, c0, weights, lengths, training)


def layer_backward(spec: LayerSpec, x, weights, lengths, workspaces, dy, dh_n, dc_n):
    """Backward through time of one layer after a training :func:`layer_forward`. ``dy`` is
    ``(T, B, D*H)`` contiguous; ``dh_n``/``dc_n`` ``(D, B, H)`` contiguous or None (zeros).
    Returns ``(dx, dh0, dc0 or None, [gradient of each weight])``."""
    return _backend(x.device)[1](spec, x, weights, lengths, workspaces, dy, dh_n, dc_n)
