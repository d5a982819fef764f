"""Single-step cells (LSTMCell, GRUCell, RNNCell) with ``torch.nn``'s constructor and parameter
names (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``) and an explicit ``backward``, for
decoding loops and code that steps by hand.

One step is the fused kernels' layer run over a sequence of length 1 (input projection, recurrent
projection and the gates' update in one call; backward likewise), so a cell computes exactly what
one time step of :class:`~seqkernels.nn.LSTM` (etc.) computes. Semantics: docs/ops.md §1.2–§1.4 and
their float64 twins in :mod:`seqkernels.reference.cells`.
"""

from __future__ import annotations

import numpy as np

from .recurrent import GRU, LSTM, RNN

__all__ = ["LSTMCell", "GRUCell", "RNNCell"]

_SUFFIX = "_l0"  # the one-layer layer's parameter names are the cell's plus this


class _Cell:
    """Shared machinery: a one-layer, one-direction layer run for one step. Subclasses set
    ``_layer_cls``."""

    _layer_cls = None

    def __init__(
        self, input_size, hidden_size, bias=True, *, dtype=np.float32, seed=None, num_threads=0, **cell_kwargs
    ):
        self._layer = self._layer_cls(
            input_size, hidden_size, 1, bias, dtype=dtype, seed=seed, num_threads=num_threads, **cell_kwargs
        )
        self.grads: dict[str, np.ndarray] = {}
        self._unbatched = False

    # ---- configuration (the layer's) --------------------------------------------------------------
    input_size = property(lambda self: self._layer.input_size)
    hidden_size = property(lambda self: self._layer.hidden_size)
    bias = property(lambda self: self._layer.bias)
    dtype = property(lambda self: self._layer.dtype)
    device = property(lambda self: self._layer.device)
    training = property(lambda self: self._layer.training)

    @property
    def _has_cell_state(self) -> bool:
        return self._layer._mode == "lstm"

    def __repr__(self):
        extra = "" if self.bias else ", bias=False"
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}{extra}{self._layer._repr_extra()})"

    def train(self, mode: bool = True):
        self._layer.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def to(self, device):
        self._layer.to(device)
        self.grads = {}
        return self

    def cuda(self):
        return self.to("cuda")

    def cpu(self):
        return self.to("cpu")

    # ---- parameters: the layer's arrays under the cell's names ------------------------------------
    @property
    def params(self) -> dict:
        return {k.removesuffix(_SUFFIX): v for k, v in self._layer.params.items()}

    def named_parameters(self):
        return list(self.params.items())

    def parameters(self):
        return list(self.params.values())

    def state_dict(self) -> dict:
        """Copies of the parameters keyed like ``torch.nn.LSTMCell/GRUCell/RNNCell.state_dict()``."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state_dict, strict: bool = True):
        """Load from NumPy arrays or torch tensors (a ``torch.nn`` cell's state dict loads unchanged)."""
        self._layer.load_state_dict({k + _SUFFIX: v for k, v in state_dict.items()}, strict=strict)
        return self

    # ---- forward / backward ------------------------------------------------------------------------
    def __call__(self, x, hx=None):
        return self.forward(x, hx)

    def forward(self, x, hx=None):
        """One step. ``x``: ``(B, I)`` or unbatched ``(I,)``; ``hx``: ``(B, H)`` (``(H,)`` unbatched),
        for LSTMCell a tuple ``(h, c)``; None means zeros. Returns ``h'`` (LSTMCell: ``(h', c')``)."""
        x = self._layer._array(x, "x")
        if x.ndim not in (1, 2):
            raise ValueError(f"x: expected (batch, input_size) or unbatched (input_size,), got shape {x.shape}")
        self._unbatched = x.ndim == 1
        batch = 1 if self._unbatched else x.shape[0]
        if self._has_cell_state and hx is not None:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError("hx: an LSTMCell takes a tuple (h, c) of two arrays or None")
            states = tuple(self._lift(s, name, batch) for s, name in zip(hx, ("hx[0]", "hx[1]")))
        else:
            states = None if hx is None else self._lift(hx, "hx", batch)
        _, h_n = self._layer.forward(x.reshape(1, batch, -1), states)
        return tuple(self._drop(s) for s in h_n) if self._has_cell_state else self._drop(h_n)

    def _lift(self, a, name, batch):
        """A state or its gradient, ``(B, H)`` (``(H,)`` unbatched), as the layer's ``(1, B, H)``."""
        if a is None:
            return None
        a = self._layer._array(a, name)
        shape = (self.hidden_size,) if self._unbatched else (batch, self.hidden_size)
        if a.shape != shape:
            raise ValueError(f"{name}: expected shape {shape} (batch, hidden_size) like x, got {a.shape}")
        return a.reshape(1, batch, self.hidden_size)

    def _drop(self, a):
        """(1, B, H) state → (B, H), or (H,) for an unbatched step."""
        return a[0, 0] if self._unbatched else a[0]

    def backward(self, dhx):
        """Backward of the last training-mode step. ``dhx``: gradient w.r.t. ``h'`` (LSTMCell: a tuple
        ``(dh, dc)``, either may be None). Returns ``(dx, dhx0)``, the gradients w.r.t. ``x`` and the
        initial state (LSTMCell: a tuple), and sets ``self.grads`` (keyed like the parameters)."""
        if self._layer._cache is None:
            raise ValueError("backward() needs a training-mode forward step first (each step allows one backward)")
        dh, dc = tuple(dhx) if self._has_cell_state else (dhx, None)
        batch = self._layer._cache["batch"]
        dh, dc = self._lift(dh, "dhx[0]" if self._has_cell_state else "dhx", batch), self._lift(dc, "dhx[1]", batch)
        if dh is None:
            dh = self._layer._zeros((1, batch, self.hidden_size))
        # For one step the output y is h' itself: dh' enters as dy, and dh_n stays None.
        dx, dhx0 = self._layer.backward(dh, (None, dc) if self._has_cell_state else None)
        self.grads = {k.removesuffix(_SUFFIX): v for k, v in self._layer.grads.items()}
        dx = self._drop(dx)
        return dx, (tuple(self._drop(s) for s in dhx0) if self._has_cell_state else self._drop(dhx0))


class LSTMCell(_Cell):
    """One LSTM step (gates i, f, g, o): ``(h', c') = cell(x, (h, c))``."""

    _layer_cls = LSTM


class GRUCell(_Cell):
    """One GRU step (gates r, z, n). ``reset_after`` as :class:`~seqkernels.nn.GRU`'s."""

    _layer_cls = GRU

    def __init__(self, input_size, hidden_size, bias=True, *, reset_after=True, **kwargs):
        super().__init__(input_size, hidden_size, bias, reset_after=reset_after, **kwargs)


class RNNCell(_Cell):
    """One Elman step, ``nonlinearity`` 'tanh' or 'relu' (torch.nn.RNNCell's third positional
    argument is ``bias``, its fourth ``nonlinearity``)."""

    _layer_cls = RNN

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", **kwargs):
        super().__init__(input_size, hidden_size, bias, nonlinearity=nonlinearity, **kwargs)
