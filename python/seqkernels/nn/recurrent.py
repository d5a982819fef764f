"""Recurrent layers (LSTM, GRU, RNN) with PyTorch's constructor, parameter names and semantics,
explicit ``backward``, over the fused C++ kernels of :mod:`seqkernels._C` (after ``.to("cuda")``,
the CUDA kernels of :mod:`seqkernels._cuda` on CuPy arrays; never run on a GPU yet).

Semantics are docs/ops.md §1 and :mod:`seqkernels.reference` (the float64 twin these layers are
tested against): sequence-major ``(T, B, I)`` input (``batch_first=True`` takes ``(B, T, I)``),
``y`` of ``(T, B, D*H)``, states ``(L*D, B, H)`` indexed ``k*D + d``, ``lengths`` with
PackedSequence semantics, dropout on every layer's output but the last, in training mode only.
``LSTM(proj_size=P)`` is torch's LSTM with projections: ``h`` (and each direction's share of ``y``)
has ``P`` units, ``c`` keeps ``H``.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import reference
from .._backend import _C, require_numpy
from . import _cuda_recurrent, _layer_plan
from ._arrays import check_float_dtype, check_positive_int, to_numpy

__all__ = ["LSTM", "GRU", "RNN"]

# the parameter names of one direction, in the order _layer_plan takes them
_WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


class _Recurrent:
    """Shared machinery of LSTM, GRU and RNN. Subclasses set ``_mode``."""

    _mode = ""
    proj_size = 0  # LSTM only

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        *,
        dtype=np.float32,
        seed=None,
        num_threads=0,
    ):
        for name, v in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            check_positive_int(v, name)
        if not isinstance(dropout, numbers.Real) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        dtype = check_float_dtype(dtype)
        if not isinstance(num_threads, numbers.Integral) or num_threads < 0:
            raise ValueError(f"num_threads must be an integer >= 0 (0 = OpenMP default), got {num_threads!r}")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.dtype = dtype
        self.num_threads = int(num_threads)
        self.training = True
        self._rng = np.random.default_rng(seed)
        self.params = reference.init_params(
            self._mode,
            self.input_size,
            self.hidden_size,
            self.num_layers,
            self.bidirectional,
            self.bias,
            rng=self._rng,
            dtype=dtype,
            proj_size=self.proj_size,
        )
        self.grads: dict[str, np.ndarray] = {}
        self._cache = None
        self._packs = {}  # layer index -> packed W_hh per direction (CPU; see _layer_plan)
        self.device = "cpu"

    # ---- configuration -------------------------------------------------------------------------
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _cell(self) -> _layer_plan.Cell:
        """The cell as the kernels name it."""
        return _layer_plan.Cell(self._mode)

    def _layer_weights(self, k):
        """Layer k's weights per direction: [(w_ih, w_hh, b_ih, b_hh(, w_hr)), ...]."""
        out = []
        names = _WEIGHT_NAMES if self.proj_size else _WEIGHT_NAMES[:4]
        for d in range(self.num_directions):
            s = f"_l{k}" + ("_reverse" if d else "")
            out.append(tuple(self.params.get(n + s) for n in names))
        return out

    def _layer_packs(self, k):
        """Layer k's pack buffers (CPU only; the kernels keep them in step with the weights)."""
        if self.device == "cuda":
            return None
        if k not in self._packs:
            layer_input = self._layer_weights(k)[0][0].shape[1]  # w_ih is (G·H, input of layer k)
            self._packs[k] = _layer_plan.new_packs(
                self._cell(), layer_input, self.hidden_size, self.dtype, self.num_directions
            )
        return self._packs[k]

    # ---- device ----------------------------------------------------------------------------------
    def to(self, device):
        """Move the parameters to ``"cuda"`` (CuPy arrays; the layer then takes CuPy input and runs
        the CUDA kernels) or back to ``"cpu"`` (NumPy). Returns the layer."""
        device = str(device)
        if device.startswith("cuda"):
            from .._backend import cuda_available

            if not cuda_available():
                raise RuntimeError("to('cuda'): no CUDA device, or seqkernels was built without CUDA")
            try:
                import cupy
            except ImportError:
                raise RuntimeError("to('cuda'): the GPU layers need CuPy (pip install cupy-cuda13x)") from None

            self.params = {k: cupy.asarray(v) for k, v in self.params.items()}
            self.device = "cuda"
        elif device == "cpu":
            self.params = {k: to_numpy(v) for k, v in self.params.items()}
            self.device = "cpu"
        else:
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        self.grads, self._cache, self._packs = {}, None, {}
        return self

    def cuda(self):
        return self.to("cuda")

    def cpu(self):
        return self.to("cpu")

    def _xp(self):
        if self.device == "cuda":
            import cupy

            return cupy
        return np

    def _kernels(self):
        """The module with ``forward``/``backward`` for this device: _C (NumPy) or the CUDA path."""
        return _cuda_recurrent if self.device == "cuda" else _C

    def train(self, mode: bool = True):
        """Training mode: forward saves what backward needs and applies dropout."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Inference mode: no saved activations, no dropout."""
        return self.train(False)

    def __repr__(self):
        extra = "" if self.num_layers == 1 else f", num_layers={self.num_layers}"
        extra += "" if self.bias else ", bias=False"
        extra += ", batch_first=True" if self.batch_first else ""
        extra += f", dropout={self.dropout}" if self.dropout else ""
        extra += ", bidirectional=True" if self.bidirectional else ""
        extra += f", proj_size={self.proj_size}" if self.proj_size else ""
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}{extra}{self._repr_extra()})"

    def _repr_extra(self):
        return ""

    # ---- parameters ----------------------------------------------------------------------------
    def named_parameters(self):
        return list(self.params.items())

    def parameters(self):
        return list(self.params.values())

    def state_dict(self) -> dict:
        """Copies of the parameters keyed like ``torch.nn.LSTM/GRU/RNN.state_dict()``."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state_dict, strict: bool = True):
        """Load parameters from NumPy arrays or torch tensors (a ``torch.nn`` state dict loads
        unchanged). With ``strict``, the keys must match exactly."""
        expected = reference.param_names(self.num_layers, self.bidirectional, self.bias, self.proj_size)
        keys = set(state_dict)
        missing = [k for k in expected if k not in keys]
        unexpected = sorted(keys - set(expected))
        if strict and (missing or unexpected):
            raise ValueError(f"state_dict does not match {self!r}: missing {missing}, unexpected {unexpected}")
        new = dict(self.params)
        for k in expected:
            if k not in keys:
                continue
            v = to_numpy(state_dict[k])
            if v.shape != self.params[k].shape:
                raise ValueError(f"state_dict[{k!r}]: expected shape {self.params[k].shape}, got {v.shape}")
            if v.dtype.kind != "f":
                raise TypeError(f"state_dict[{k!r}]: expected a floating-point array, got {v.dtype}")
            v = np.ascontiguousarray(v, dtype=self.dtype).copy()
            new[k] = self._xp().asarray(v)
        self.params = new
        return self

    # ---- input checking ------------------------------------------------------------------------
    def _array(self, x, name):
        """x as an array of this layer's device: NumPy on the CPU, CuPy on the GPU."""
        if self.device != "cuda":
            return require_numpy(x, name)
        import cupy

        if isinstance(x, cupy.ndarray):
            return x
        if hasattr(x, "__cuda_array_interface__"):
            return cupy.asarray(x)  # e.g. a torch CUDA tensor: a view, no copy
        raise TypeError(
            f"{name}: the layer is on cuda, got {type(x).__name__}; pass a CuPy array "
            "(cupy.asarray(x)) or move the layer with layer.cpu()"
        )

    def _float_array(self, x, name, shape=None, what=""):
        x = self._array(x, name)
        xp = self._xp()
        if x.dtype.kind != "f":
            raise TypeError(f"{name}: expected a floating-point array, got dtype {x.dtype}")
        if shape is not None and x.shape != tuple(shape):
            raise ValueError(f"{name}: expected shape {tuple(shape)}{what}, got {x.shape}")
        x = xp.ascontiguousarray(x, dtype=self.dtype)
        if not bool(xp.isfinite(x).all()):
            raise ValueError(f"{name}: contains NaN or Inf")
        return x

    def _state_shape(self, batch, cell_state=False):
        """(L*D, B, R) for h (R = proj_size or hidden_size), (L*D, B, H) for the LSTM's c."""
        size = self.hidden_size if cell_state else (self.proj_size or self.hidden_size)
        return (self.num_layers * self.num_directions, batch, size)

    def _split_state(self, hx, batch, name):
        """hx → (h, c) arrays of shape (L*D, B, R) and (L*D, B, H), or None."""
        shape = self._state_shape(batch)
        what = " (num_layers*num_directions, batch, hidden_size)"
        if hx is None:
            return None, None
        if self._mode == "lstm":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"{name}: an LSTM takes a tuple (h, c) of two arrays or None")
            h, c = hx
            h_what = " (num_layers*num_directions, batch, proj_size)" if self.proj_size else what
            h = None if h is None else self._float_array(h, f"{name}[0]", shape, h_what)
            c = None if c is None else self._float_array(c, f"{name}[1]", self._state_shape(batch, True), what)
            return h, c
        return self._float_array(hx, name, shape, what), None

    def _lengths(self, lengths, steps, batch):
        if lengths is None:
            return None
        lengths = to_numpy(lengths)
        if lengths.shape != (batch,):
            raise ValueError(f"lengths: expected shape ({batch},) (one length per sequence), got {lengths.shape}")
        if lengths.dtype.kind not in "iu":
            raise TypeError(f"lengths: expected integers, got dtype {lengths.dtype}")
        if lengths.size and (lengths.min() < 1 or lengths.max() > steps):
            raise ValueError(
                f"lengths: every entry must be in 1..{steps} (the sequence length T), "
                f"got min {lengths.min()} and max {lengths.max()}"
            )
        return self._xp().asarray(np.ascontiguousarray(lengths, dtype=np.int32))

    # ---- forward / backward --------------------------------------------------------------------
    def __call__(self, x, hx=None, lengths=None):
        return self.forward(x, hx, lengths)

    def forward(self, x, hx=None, lengths=None):
        """Run the layer.

        x: ``(T, B, I)`` (``(B, T, I)`` with ``batch_first``), float; cast to the layer's dtype.
        hx: initial state ``(L*D, B, H)``; for LSTM a tuple ``(h0, c0)``. None means zeros.
        lengths: ``(B,)`` ints in ``1..T`` or None: PackedSequence semantics (docs/ops.md §1.6).
        Returns ``(y, h_n)`` and, for LSTM, ``(y, (h_n, c_n))``; y is ``(T, B, D*H)`` (or batch-first).
        """
        x = self._array(x, "x")
        if x.ndim != 3:
            layout = "(B, T, I)" if self.batch_first else "(T, B, I)"
            raise ValueError(f"x: expected 3 dimensions {layout}, got shape {x.shape}")
        if x.shape[2] != self.input_size:
            raise ValueError(f"x: expected input size {self.input_size} in the last dimension, got shape {x.shape}")
        x = self._float_array(x, "x")
        xp, kernels = self._xp(), self._kernels()
        if self.batch_first:
            x = xp.ascontiguousarray(x.transpose(1, 0, 2))
        steps, batch, _ = x.shape
        if steps < 1 or batch < 1:
            raise ValueError(f"x: the sequence length and batch size must be >= 1, got shape {x.shape}")
        h0, c0 = self._split_state(hx, batch, "hx")
        lengths = self._lengths(lengths, steps, batch)

        cell = self._cell()
        L, D = self.num_layers, self.num_directions
        h_n = xp.empty(self._state_shape(batch), dtype=self.dtype)
        c_n = xp.empty(self._state_shape(batch, True), dtype=self.dtype) if cell.has_cell_state else None
        cache = {"inputs": [], "workspaces": [], "masks": [], "lengths": lengths, "batch": batch, "steps": steps}
        alloc = self._alloc
        inp = x
        for k in range(L):
            part = slice(k * D, (k + 1) * D)
            y, _, _, workspaces = _layer_plan.forward(
                kernels,
                cell,
                inp,
                self._layer_weights(k),
                h0=None if h0 is None else h0[part],
                c0=None if c0 is None else c0[part],
                lengths=lengths,
                training=self.training,
                alloc=alloc,
                h_n=h_n[part],
                c_n=None if c_n is None else c_n[part],
                packs=self._layer_packs(k),
                num_threads=self.num_threads,
            )
            cache["workspaces"].extend(workspaces or [None] * D)
            cache["inputs"].append(inp)
            if k < L - 1 and self.training and self.dropout > 0:
                keep = 1.0 - self.dropout
                # drawn on the host from the layer's generator: the same masks on either device
                mask = xp.asarray((self._rng.random(y.shape) < keep).astype(self.dtype) / self.dtype.type(keep))
                cache["masks"].append(mask)
                inp = y * mask
            else:
                cache["masks"].append(None)
                inp = y
        self._cache = cache if self.training else None
        out = xp.ascontiguousarray(inp.transpose(1, 0, 2)) if self.batch_first else inp
        return out, ((h_n, c_n) if cell.has_cell_state else h_n)

    def _alloc(self, shape):
        if self._xp() is np:  # host: large buffers from the block pool (_layer_plan.host_empty)
            return _layer_plan.host_empty(shape, self.dtype)
        return self._xp().empty(shape, dtype=self.dtype)

    def _zeros(self, shape):
        return self._xp().zeros(shape, dtype=self.dtype)

    def backward(self, dy, dhx=None):
        """Backward through time after a training-mode forward.

        dy: gradient of the loss w.r.t. y (same shape as y). dhx: gradient w.r.t. h_n (for LSTM a
        tuple (dh_n, dc_n)), or None for zeros. Returns ``(dx, dhx0)`` — dhx0 being the gradient
        w.r.t. the initial state, a tuple for LSTM — and sets ``self.grads`` (keyed like the
        parameters; each backward overwrites it).
        """
        cache = self._cache
        if cache is None:
            raise ValueError(
                "backward() needs a forward pass in training mode first "
                "(call layer.train() and run forward; each forward allows one backward)"
            )
        steps, batch = cache["steps"], cache["batch"]
        cell = self._cell()
        L, D, R = self.num_layers, self.num_directions, self.proj_size or self.hidden_size
        y_shape = (batch, steps, D * R) if self.batch_first else (steps, batch, D * R)
        dy = self._float_array(dy, "dy", y_shape, " (the shape of y)")
        xp, kernels = self._xp(), self._kernels()
        if self.batch_first:
            dy = xp.ascontiguousarray(dy.transpose(1, 0, 2))
        dh_n, dc_n = self._split_state(dhx, batch, "dhx")
        dh0 = xp.empty(self._state_shape(batch), dtype=self.dtype)
        dc0 = xp.empty(self._state_shape(batch, True), dtype=self.dtype) if cell.has_cell_state else None
        grads = {}
        for k in reversed(range(L)):
            part = slice(k * D, (k + 1) * D)
            dx, _, _, layer_grads = _layer_plan.backward(
                kernels,
                cell,
                cache["inputs"][k],
                self._layer_weights(k),
                cache["workspaces"][part],
                dy,
                dh_n=None if dh_n is None else dh_n[part],
                dc_n=None if dc_n is None else dc_n[part],
                lengths=cache["lengths"],
                alloc=self._alloc,
                dh0=dh0[part],
                dc0=None if dc0 is None else dc0[part],
                packs=self._layer_packs(k),
                num_threads=self.num_threads,
            )
            for d, g in enumerate(layer_grads):
                s = f"_l{k}" + ("_reverse" if d else "")
                for name, v in zip(_WEIGHT_NAMES, g):
                    if v is not None:
                        grads[name + s] = v
            if k > 0:
                mask = cache["masks"][k - 1]
                dy = dx * mask if mask is not None else dx
        self._cache = None
        self.grads = {name: grads[name] for name in self.params}
        dx_out = xp.ascontiguousarray(dx.transpose(1, 0, 2)) if self.batch_first else dx
        return dx_out, ((dh0, dc0) if cell.has_cell_state else dh0)


class LSTM(_Recurrent):
    """Long short-term memory layer (gates i, f, g, o), drop-in for ``torch.nn.LSTM`` weights.

    ``proj_size = P`` (``0 < P < hidden_size``) adds torch's projection ``h_t = W_hr (o ⊙ tanh c_t)``
    (parameters ``weight_hr_l{k}``); ``h``, ``h_n`` and each direction's share of ``y`` then have
    ``P`` units (docs/ops.md §1.2)."""

    _mode = "lstm"

    def __init__(self, *args, proj_size=0, **kwargs):
        if not isinstance(proj_size, numbers.Integral) or isinstance(proj_size, bool) or proj_size < 0:
            raise ValueError(f"proj_size must be an integer >= 0, got {proj_size!r}")
        hidden_size = args[1] if len(args) > 1 else kwargs.get("hidden_size")
        if proj_size and isinstance(hidden_size, numbers.Integral) and proj_size >= hidden_size:
            raise ValueError(
                f"proj_size must be smaller than hidden_size, got proj_size={proj_size}, hidden_size={hidden_size}"
            )
        self.proj_size = int(proj_size)
        super().__init__(*args, **kwargs)

    def _cell(self):
        return _layer_plan.Cell("lstm", proj_size=self.proj_size)


class GRU(_Recurrent):
    """Gated recurrent unit (gates r, z, n). ``reset_after=True`` is PyTorch's and cuDNN's form;
    ``reset_after=False`` is Cho et al. 2014's (the "full GRU", Keras ``reset_after=False``;
    docs/ops.md §1.3)."""

    _mode = "gru"

    def __init__(self, *args, reset_after=True, **kwargs):
        self.reset_after = bool(reset_after)
        super().__init__(*args, **kwargs)

    def _cell(self):
        return _layer_plan.Cell("gru", self.reset_after)

    def _repr_extra(self):
        return "" if self.reset_after else ", reset_after=False"


class RNN(_Recurrent):
    """Elman RNN, ``h_t = act(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`` with act ``tanh`` or ``relu``."""

    _mode = "rnn"

    def __init__(self, *args, nonlinearity="tanh", **kwargs):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(*args, **kwargs)

    def _cell(self):
        return _layer_plan.Cell("rnn", True, self.nonlinearity)

    def _repr_extra(self):
        return "" if self.nonlinearity == "tanh" else ", nonlinearity='relu'"
