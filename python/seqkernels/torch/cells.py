"""``LSTMCell``, ``GRUCell`` and ``RNNCell``: drop-ins for torch.nn's cells (same constructor,
parameter names, initialisation, ``forward(input, hx=None)`` with batched ``(B, I)`` or unbatched
``(I,)`` input, the same exception types). One step is one fused kernel call: the layer kernels
over a sequence of length 1, through the same autograd as the layers (double backward included).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..reference import GATES
from ._autograd import recurrent_layer
from ._kernels import NUMPY_DTYPES, LayerSpec

__all__ = ["LSTMCell", "GRUCell", "RNNCell"]


class _CellBase(nn.Module):
    """Mirrors ``torch.nn.RNNCellBase`` without depending on its internals."""

    def __init__(self, cell, input_size, hidden_size, bias, device=None, dtype=None):
        super().__init__()
        if dtype is not None and dtype not in NUMPY_DTYPES:
            raise TypeError(f"dtype: seqkernels.torch cells support torch.float32 and torch.float64, got {dtype}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        rows = GATES[cell] * hidden_size
        kw = {"device": device, "dtype": dtype}
        # Registration order as torch.nn's, so reset_parameters() draws the same numbers from one seed.
        self.weight_ih = nn.Parameter(torch.empty((rows, input_size), **kw))
        self.weight_hh = nn.Parameter(torch.empty((rows, hidden_size), **kw))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(rows, **kw))
            self.bias_hh = nn.Parameter(torch.empty(rows, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as torch.nn."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _spec(self) -> LayerSpec:
        raise NotImplementedError

    @property
    def _has_cell_state(self) -> bool:
        return isinstance(self, LSTMCell)

    def _weights(self):
        return [self.weight_ih, self.weight_hh] + ([self.bias_ih, self.bias_hh] if self.bias else [])

    def _check(self, input, states):
        """torch.nn's checks, exception types and (close to) its messages."""
        name = type(self).__name__
        if not isinstance(input, torch.Tensor):
            raise TypeError(f"input: expected a tensor, got {type(input).__name__}")
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        for s in states:
            if s is not None and s.dim() not in (1, 2):
                raise ValueError(
                    f"{name}: Expected hx[0] to be 1D or 2D, got {s.dim()}D instead"
                    if self._has_cell_state
                    else f"{name}: Expected hidden to be 1D or 2D, got {s.dim()}D instead"
                )
        if input.size(-1) != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.size(-1)} expected {self.input_size}")
        if input.device != self.weight_ih.device:
            raise RuntimeError(
                f"input is on {input.device} but the parameters of seqkernels.torch.{name} are on "
                f"{self.weight_ih.device}"
            )

    def _step(self, input, states):
        """``states``: (h, c) for LSTMCell, (h,) otherwise, each a tensor or None."""
        self._check(input, states)
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        B, H = x.shape[0], self.hidden_size
        full = []
        for k, s in enumerate(states):
            if s is None:
                s = x.new_zeros((B, H))
            elif not batched:
                s = s.unsqueeze(0)
            if s.dim() != 2 or s.shape[0] != B:
                raise RuntimeError(f"Input batch size {B} doesn't match hidden{k} batch size {s.shape[0]}")
            if s.shape[1] != H:
                raise RuntimeError(f"hidden{k} has inconsistent hidden_size: got {s.shape[1]}, expected {H}")
            if s.dtype != x.dtype or s.device != x.device:  # (shapes are compared first, as torch.nn does)
                raise RuntimeError(
                    f"hx: expected dtype {x.dtype} on {x.device} like the input, got {s.dtype} on {s.device}"
                )
            full.append(s.contiguous())
        # Dtypes last: torch.nn reports a shape error before a dtype mismatch.
        dtype = self.weight_ih.dtype
        if dtype not in NUMPY_DTYPES:
            raise TypeError(
                f"seqkernels.torch.{type(self).__name__}: parameters of dtype {dtype} are not supported "
                "(float32 and float64 only); convert the cell with cell.float() or cell.double()"
            )
        if x.dtype != dtype:
            raise RuntimeError(f"input: expected dtype {dtype} like the parameters, got {x.dtype}")
        weights = [w.contiguous() for w in self._weights()]
        if B == 0:
            # The kernels need B >= 1; empty results stay on the gradient path, as torch.nn's do.
            anchor = sum(t.reshape(-1)[:0].sum() for t in (x, *full, *weights))
            out = [x.new_zeros((0, H)) + anchor for _ in full]
        else:
            c0 = full[1].unsqueeze(0) if self._has_cell_state else None
            _, h_n, c_n = recurrent_layer(
                self._spec(), x.unsqueeze(0).contiguous(), full[0].unsqueeze(0), c0, weights, None
            )
            out = [h_n[0]] + ([c_n[0]] if self._has_cell_state else [])
        return out if batched else [o.squeeze(0) for o in out]


class LSTMCell(_CellBase):
    """Drop-in ``torch.nn.LSTMCell``: ``(h', c') = cell(input, (h, c))``."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__("lstm", input_size, hidden_size, bias, device, dtype)

    def _spec(self):
        return LayerSpec("lstm", True, "tanh", self.hidden_size, 1, self.bias)

    def forward(self, input, hx=None):
        if hx is not None and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(f"hx: LSTMCell expects a tuple (h_0, c_0) of two tensors or None, got {type(hx).__name__}")
        h, c = self._step(input, (None, None) if hx is None else tuple(hx))
        return h, c


class GRUCell(_CellBase):
    """Drop-in ``torch.nn.GRUCell``: ``h' = cell(input, h)``. ``reset_after`` (keyword only, not in
    torch.nn) as :class:`seqkernels.torch.GRU`'s."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None, *, reset_after=True):
        super().__init__("gru", input_size, hidden_size, bias, device, dtype)
        self.reset_after = bool(reset_after)

    def _spec(self):
        return LayerSpec("gru", self.reset_after, "tanh", self.hidden_size, 1, self.bias)

    def forward(self, input, hx=None):
        return self._step(input, (hx,))[0]


class RNNCell(_CellBase):
    """Drop-in ``torch.nn.RNNCell``: ``h' = cell(input, h)``, ``nonlinearity`` 'tanh' or 'relu'."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        super().__init__("rnn", input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity

    def _spec(self):
        if self.nonlinearity not in ("tanh", "relu"):  # torch.nn checks it at call time too
            raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")
        return LayerSpec("rnn", True, self.nonlinearity, self.hidden_size, 1, self.bias)

    def forward(self, input, hx=None):
        return self._step(input, (hx,))[0]
