"""``LSTM``, ``GRU`` and ``RNN`` as ``torch.nn.Module``s over the seqkernels kernels, drop-in for
``torch.nn.LSTM/GRU/RNN``: same constructor, attributes, parameter names, shapes and
initialisation, ``forward(input, hx=None)`` with the same inputs (tensor, batch-first, unbatched
2-D, ``PackedSequence``) and outputs, dropout between layers in training mode, and the same
exceptions for bad arguments. Semantics: docs/ops.md §1 (where it is silent, PyTorch's).

``LSTM(proj_size=P)`` is torch's LSTM with projections (``weight_hr_l{k}``; ``h`` has ``P`` units).
Not supported: dtypes other than float32/float64, devices other than CPU and CUDA (see
``_kernels._backend``; the CUDA path has never run on a GPU).
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence

from ..nn import _layer_plan
from ..reference import GATES
from ._autograd import recurrent_layer
from ._kernels import NUMPY_DTYPES, LayerSpec
from ._ops import Packs

__all__ = ["LSTM", "GRU", "RNN"]

# torch.nn's mode names → the kernels' cell names (gate counts from the one table, reference.GATES)
_CELL_OF_MODE = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn", "RNN_RELU": "rnn"}
_GATES = {mode: GATES[cell] for mode, cell in _CELL_OF_MODE.items()}


class _RecurrentBase(nn.Module):
    """Shared machinery; mirrors ``torch.nn.RNNBase`` without depending on its internals."""

    def __init__(
        self,
        mode,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        proj_size=0,
        device=None,
        dtype=None,
        *,
        reset_after=True,
    ):
        super().__init__()
        # The same checks, exception types and messages as torch.nn.RNNBase, so code that relies on them behaves alike.
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability of an element being zeroed"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                f"expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}",
                stacklevel=3,
            )
        for name, v in (("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional)):
            if not isinstance(v, bool):
                raise TypeError(f"{name} should be of type bool, got: {type(v).__name__}")
        for name, v in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"{name} should be of type int, got: {type(v).__name__}")
            if v <= 0:
                raise ValueError(f"{name} must be greater than zero")
        if not isinstance(proj_size, int) or isinstance(proj_size, bool) or proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if dtype is not None and dtype not in NUMPY_DTYPES:
            raise TypeError(f"dtype: seqkernels.torch layers support torch.float32 and torch.float64, got {dtype}")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        self._reset_after = bool(reset_after)

        gate_size = _GATES[mode] * hidden_size
        real_hidden = proj_size or hidden_size  # the units of h
        D = 2 if bidirectional else 1
        self._flat_weights_names: list[str] = []
        self._all_weights: list[list[str]] = []
        # Registered in torch's order (layer, direction, w_ih, w_hh, b_ih, b_hh, w_hr), so state_dict
        # keys match and reset_parameters() draws the same numbers as torch.nn from the same seed.
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else real_hidden * D
            for direction in range(D):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = [("weight_ih", (gate_size, layer_input)), ("weight_hh", (gate_size, real_hidden))]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size:
                    shapes.append(("weight_hr", (proj_size, hidden_size)))
                names = []
                for stem, shape in shapes:
                    setattr(self, stem + suffix, nn.Parameter(torch.empty(shape, device=device, dtype=dtype)))
                    names.append(stem + suffix)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    # ---- torch.nn.RNNBase's public surface -----------------------------------------------------
    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as torch.nn."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def flatten_parameters(self) -> None:
        """No-op: torch.nn uses it to pack weights for cuDNN; the seqkernels kernels read the
        parameters where they are."""

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    @property
    def _flat_weights(self) -> list[torch.Tensor]:
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    def _spec(self) -> LayerSpec:
        kernel_mode = _CELL_OF_MODE[self.mode]
        nonlinearity = "relu" if self.mode == "RNN_RELU" else "tanh"
        return LayerSpec(
            kernel_mode,
            self._reset_after,
            nonlinearity,
            self.hidden_size,
            self.num_directions,
            self.bias,
            self.proj_size,
        )

    # ---- argument checks -----------------------------------------------------------------------
    def _name(self) -> str:
        return "RNN" if self.mode.startswith("RNN") else self.mode

    def _check_input(self, x, packed: bool):
        dtype = self.weight_ih_l0.dtype
        if x.dtype != dtype:
            raise ValueError(
                f"input: RNN input dtype ({x.dtype}) does not match weight dtype ({dtype}). Convert "
                f"input: input.to({dtype}), or convert model: model.to({x.dtype})"
            )
        if dtype not in NUMPY_DTYPES:
            raise TypeError(
                f"seqkernels.torch.{self._name()}: parameters of dtype {dtype} are not supported "
                "(float32 and float64 only); convert the model with model.float() or model.double()"
            )
        want = 2 if packed else 3
        if x.dim() != want:
            raise RuntimeError(f"input must have {want} dimensions, got {x.dim()}")
        if x.size(-1) != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {x.size(-1)}"
            )
        if x.device != self.weight_ih_l0.device:
            raise RuntimeError(
                f"input is on {x.device} but the parameters of seqkernels.torch.{self._name()} "
                f"are on {self.weight_ih_l0.device}"
            )

    def _check_state(self, t, name, label, batch, x, size):
        """``t``: (L*D, B, size) tensor after un-batching; same dtype and device as the input."""
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a tensor, got {type(t).__name__}")
        expected = (self.num_layers * self.num_directions, batch, size)
        if tuple(t.shape) != expected:
            raise RuntimeError(f"{name}: Expected {label} size {expected}, got {list(t.shape)}")
        if t.dtype != x.dtype or t.device != x.device:
            raise RuntimeError(
                f"{name}: expected dtype {x.dtype} on {x.device} like the input, got {t.dtype} on {t.device}"
            )
        return t.contiguous()

    def _initial_state(self, hx, batched: bool, batch: int, x):
        """hx as given to forward → (h0, c0), each (L*D, B, H) or None."""
        if hx is None:
            return None, None
        lstm = self.mode == "LSTM"
        if lstm:
            if not (isinstance(hx, (tuple, list)) and len(hx) == 2 and all(isinstance(t, torch.Tensor) for t in hx)):
                raise TypeError(
                    "hx: seqkernels.torch.LSTM expects a tuple (h_0, c_0) of two tensors or None, "
                    f"got {type(hx).__name__}"
                )
            h, c = hx
        else:
            if not isinstance(hx, torch.Tensor):
                raise TypeError(f"hx: expected a tensor or None, got {type(hx).__name__}")
            h, c = hx, None
        want = 3 if batched else 2
        if h.dim() != want or (c is not None and c.dim() != want):
            kind = "batched 3-D" if batched else "unbatched 2-D"
            if lstm:
                raise RuntimeError(
                    f"hx: For {kind} input, hx and cx should also be {want}-D but got "
                    f"({h.dim()}-D, {c.dim()}-D) tensors"
                )
            raise RuntimeError(f"hx: For {kind} input, hx should also be {want}-D but got {h.dim()}-D tensor")
        if not batched:
            h, c = h.unsqueeze(1), None if c is None else c.unsqueeze(1)
        h = self._check_state(
            h,
            "hx[0]" if lstm else "hx",
            "hidden[0]" if lstm else "hidden",
            batch,
            x,
            self.proj_size or self.hidden_size,
        )
        if c is not None:
            c = self._check_state(c, "hx[1]", "hidden[1]", batch, x, self.hidden_size)
        return h, c

    # ---- forward -------------------------------------------------------------------------------
    def forward(self, input, hx=None):
        """Same inputs and outputs as ``torch.nn.LSTM/GRU/RNN.forward``."""
        packed = isinstance(input, PackedSequence)
        layout = None
        if packed:
            data, batch_sizes, sorted_indices, _ = input
            self._check_input(data, packed=True)
            layout = _PackedLayout(batch_sizes, sorted_indices, data.device)
            x = layout.pad(data)
            batched = True
        else:
            if not isinstance(input, torch.Tensor):
                raise TypeError(f"input: expected a tensor or a PackedSequence, got {type(input).__name__}")
            if input.dim() not in (2, 3):
                raise ValueError(f"{self._name()}: Expected input to be 2D or 3D, got {input.dim()}D instead")
            batched = input.dim() == 3
            x = input if batched else input.unsqueeze(0 if self.batch_first else 1)
            self._check_input(x, packed=False)
            if self.batch_first:
                x = x.transpose(0, 1)
            if x.size(0) == 0:
                raise RuntimeError("input: Expected sequence length to be larger than 0 in RNN")
            x = x.contiguous()
        _T, B = x.shape[0], x.shape[1]
        h0, c0 = self._initial_state(hx, batched, B, x)
        if B == 0:
            y, h_n, c_n = self._empty_outputs(x, h0, c0)
        else:
            y, h_n, c_n = self._run(x, h0, c0, None if layout is None else layout.lengths, layout)
        hidden = (h_n, c_n) if self.mode == "LSTM" else h_n
        if packed:
            return PackedSequence(layout.pack(y), *input[1:]), hidden
        if not batched:
            hidden = (h_n.squeeze(1), c_n.squeeze(1)) if self.mode == "LSTM" else h_n.squeeze(1)
            return y.squeeze(1), hidden
        return (y.transpose(0, 1) if self.batch_first else y), hidden

    def _run(self, x, h0, c0, lengths, layout):
        spec, D = self._spec(), self.num_directions
        P = spec.per_direction
        weights = [w.contiguous() for w in self._flat_weights]
        h_out, c_out, inp = [], [], x
        one_layer = self.num_layers == 1  # then the states are the layer's own (no slices to make)
        for k in range(self.num_layers):
            rows = slice(k * D, (k + 1) * D)
            y, h_n, c_n = recurrent_layer(
                spec,
                inp,
                h0 if h0 is None or one_layer else h0[rows],
                c0 if c0 is None or one_layer else c0[rows],
                weights[k * D * P : (k + 1) * D * P],
                lengths,
                self._layer_packs(k, x, weights[k * D * P].shape[1]),
            )
            h_out.append(h_n)
            c_out.append(c_n)
            if k < self.num_layers - 1 and self.training and self.dropout > 0:
                y = layout.dropout(y, self.dropout) if layout is not None else F.dropout(y, self.dropout, True)
            inp = y
        h_n = torch.cat(h_out) if len(h_out) > 1 else h_out[0]
        c_n = (torch.cat(c_out) if len(c_out) > 1 else c_out[0]) if spec.is_lstm else None
        return inp, h_n, c_n

    def _layer_packs(self, k, x, layer_input):
        """Layer k's CPU pack buffers for its packed weights (kept between calls; the kernels rebuild
        one only when its weights' content changed), or None off the CPU. layer_input: the columns
        of the layer's w_ih."""
        if x.device.type != "cpu" or torch.compiler.is_compiling():
            return None  # (a traced graph cannot hold this cache; the kernels then pack per call)
        packs = self.__dict__.setdefault("_sk_packs", {})
        key = (k, x.dtype)
        if key not in packs:
            packs[key] = Packs(
                _layer_plan.new_packs(
                    self._spec().cell, layer_input, self.hidden_size, NUMPY_DTYPES[x.dtype], self.num_directions
                )
            )
        return packs[key]

    def _empty_outputs(self, x, h0, c0):
        """An empty batch (the kernels need B >= 1): empty outputs that, as torch.nn's, stay on the
        gradient path of the input, the states and every parameter, so a backward gives zero
        gradients of the right shapes instead of failing."""
        T = x.shape[0]
        L, D, H, R = self.num_layers, self.num_directions, self.hidden_size, self.proj_size or self.hidden_size
        # An empty slice sums to an exact 0 whose gradient is an exact 0 in every element.
        anchor = sum(t.reshape(-1)[:0].sum() for t in (x, h0, c0, *self._flat_weights) if t is not None)
        h = x.new_zeros((L * D, 0, R)) + anchor
        c = x.new_zeros((L * D, 0, H)) + anchor if self.mode == "LSTM" else None
        return x.new_zeros((T, 0, D * R)) + anchor, h, c


class _PackedLayout:
    """Where each row of a PackedSequence's data lives in a padded ``(T, B, ·)`` tensor whose batch
    is in the caller's original order, and each sequence's length. Keeping the original order
    means hx and h_n need no permutation (the kernels take unsorted lengths)."""

    def __init__(self, batch_sizes, sorted_indices, device):
        sizes = batch_sizes.to("cpu", torch.int64)
        T, B = int(sizes.numel()), int(sizes[0])
        pos = torch.arange(B)
        active = pos.unsqueeze(0) < sizes.unsqueeze(1)  # (T, B) over sorted positions
        t, j = active.nonzero(as_tuple=True)  # row-major: exactly the packed row order
        original = pos if sorted_indices is None else sorted_indices.to("cpu", torch.int64)
        self.steps, self.batch = T, B
        self.index = (t * B + original[j]).to(device)  # packed row -> flat padded row
        lengths = torch.empty(B, dtype=torch.int32)
        lengths[original] = active.sum(0, dtype=torch.int32)
        self.lengths = lengths

    def pad(self, data):
        flat = data.new_zeros((self.steps * self.batch, data.shape[1])).index_copy(0, self.index, data)
        return flat.view(self.steps, self.batch, data.shape[1])

    def pack(self, y):
        return y.reshape(self.steps * self.batch, y.shape[2]).index_select(0, self.index)

    def dropout(self, y, p):
        # torch.nn draws the dropout mask over the packed rows; doing the same keeps the random
        # stream identical, so a seeded run gives the same masks as torch.nn.
        return self.pad(F.dropout(self.pack(y), p, True))


class LSTM(_RecurrentBase):
    """Drop-in ``torch.nn.LSTM`` (gates i, f, g, o) over the seqkernels kernels, ``proj_size``
    included (``h_t = W_hr (o ⊙ tanh c_t)``, parameters ``weight_hr_l{k}``)."""

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        proj_size=0,
        device=None,
        dtype=None,
    ):
        super().__init__(
            "LSTM",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device,
            dtype,
        )


class GRU(_RecurrentBase):
    """Drop-in ``torch.nn.GRU`` (gates r, z, n) over the seqkernels kernels.

    ``reset_after`` (keyword only, not in torch.nn) selects the candidate's form: True (default) is
    PyTorch's and cuDNN's ``tanh(W_in x + b_in + r * (W_hn h + b_hn))``; False is Cho et al. 2014's
    ``tanh(W_in x + b_in + W_hn (r * h) + b_hn)`` (Keras ``reset_after=False``), same parameters.
    """

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        device=None,
        dtype=None,
        *,
        reset_after=True,
        proj_size=None,
    ):
        if proj_size is not None:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__(
            "GRU",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            device,
            dtype,
            reset_after=reset_after,
        )
        self.reset_after = bool(reset_after)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.reset_after else ", reset_after=False")


class RNN(_RecurrentBase):
    """Drop-in ``torch.nn.RNN`` (Elman, ``nonlinearity`` 'tanh' or 'relu') over the seqkernels
    kernels. As in torch.nn, ``nonlinearity`` is the fourth positional argument."""

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        nonlinearity="tanh",
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        device=None,
        dtype=None,
        *,
        proj_size=None,
    ):
        if proj_size is not None:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__(
            "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            device,
            dtype,
        )

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.nonlinearity == "tanh" else ", nonlinearity='relu'")
