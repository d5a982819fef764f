"""Convolutional text layers (Kim 2014) with explicit backward: ``Conv1d``, ``MaxPool1d``,
``MaxOverTime``, ``ReLU`` and ``TextCNN`` (several filter widths, ReLU, max over time, concatenated).

**Layout.** Time-major ``(T, B, C)`` like the recurrent layers and ``Embedding`` of ``(T, B)`` ids:
``T`` steps, ``B`` sequences, ``C`` channels (for text, the entries of the word vectors, so a filter
of width ``k`` sees ``k`` consecutive word vectors). ``batch_first=True`` takes and returns
``(B, T, C)``. torch's ``Conv1d`` takes ``(B, C, T)``; ``x.transpose(1, 2, 0)`` of a time-major
array is that. Weights are torch's: ``Conv1d.weight (out_channels, in_channels, kernel_size)``, so
``torch.nn.Conv1d`` state dicts load unchanged.

**How.** A convolution is a sum over its ``k`` taps of ``(T_out·B, C) × (C, F)`` GEMMs: in the
time-major layout the rows read by tap ``j`` are one contiguous block of the (padded) input when
``stride`` is 1, so no im2col copy is made; a larger stride gathers every ``stride``-th step first.
The backward pass runs the same ``k`` GEMMs for ``dx`` and ``dweight``. The semantics are those of
:mod:`seqkernels.reference.conv` (float64 loops), against which these layers are tested.
"""

from __future__ import annotations

import numpy as np

from ._arrays import array_module, as_array, check_float_dtype, check_positive_int, int_input
from .layers import Pointwise, _check_dy, _need_cache, _rng
from .module import Module

__all__ = ["Conv1d", "MaxOverTime", "MaxPool1d", "ReLU", "TextCNN"]


def _check_nonneg_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def _float_3d(x, name, dtype=None):
    x = as_array(x, name)
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating-point array, got dtype {x.dtype}")
    if x.ndim != 3:
        raise ValueError(f"{name}: expected 3 dimensions (T, B, C), or (B, T, C) with batch_first, got shape {x.shape}")
    return x if dtype is None else x.astype(dtype, copy=False)


def _time_major(x, batch_first):
    return x.transpose(1, 0, 2) if batch_first else x


def _out_layout(y, batch_first):
    xp = array_module(y)
    return xp.ascontiguousarray(y.transpose(1, 0, 2) if batch_first else y)


def _taps(xpad, j, stride, T_out):
    """The input rows tap ``j`` reads for all output steps: ``xpad[j + stride·t]`` for ``t < T_out``,
    as a ``(T_out·B, C)`` matrix (a view when ``stride`` is 1)."""
    rows = xpad[j : j + stride * (T_out - 1) + 1 : stride]
    return rows.reshape(T_out * xpad.shape[1], xpad.shape[2])


def _check_lengths(lengths, B, T):
    if lengths is None:
        return None
    lengths = int_input(lengths, "lengths")
    if lengths.shape != (B,) or (B and (int(lengths.min()) < 1 or int(lengths.max()) > T)):
        raise ValueError(f"lengths: expected shape ({B},) with every entry in 1..{T}, got {lengths!r}")
    return lengths


class Conv1d(Module):
    """1-D convolution over time, as ``torch.nn.Conv1d`` (groups 1) in the layout of the module
    docstring: ``forward(x (T, B, in_channels)) -> (T_out, B, out_channels)`` with
    ``T_out = floor((T + 2·padding − dilation·(kernel_size − 1) − 1) / stride) + 1`` and zero padding
    on both ends. ``weight (out_channels, in_channels, kernel_size)`` and ``bias (out_channels,)``
    are initialised ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, ``fan_in = in_channels·kernel_size``
    (torch's default)."""

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        bias=True,
        *,
        batch_first=False,
        dtype=np.float32,
        seed=None,
    ):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.kernel_size = check_positive_int(kernel_size, "kernel_size")
        self.stride = check_positive_int(stride, "stride")
        self.padding = _check_nonneg_int(padding, "padding")
        self.dilation = check_positive_int(dilation, "dilation")
        self.batch_first = bool(batch_first)
        self.dtype = check_float_dtype(dtype)
        bound = 1.0 / np.sqrt(self.in_channels * self.kernel_size)
        rng = _rng(seed)
        shape = (self.out_channels, self.in_channels, self.kernel_size)
        self.params["weight"] = rng.uniform(-bound, bound, shape).astype(self.dtype)
        if bias:
            self.params["bias"] = rng.uniform(-bound, bound, self.out_channels).astype(self.dtype)
        self._cache = None

    def output_length(self, T):
        """Output steps for ``T`` input steps (< 1 means the input is too short)."""
        return (T + 2 * self.padding - self.dilation * (self.kernel_size - 1) - 1) // self.stride + 1

    def forward(self, x):
        x = _time_major(_float_3d(x, "x", self.dtype), self.batch_first)
        T, B, C = x.shape
        if C != self.in_channels:
            raise ValueError(
                f"x: expected {self.in_channels} channels (in_channels) in the last dimension, got shape {x.shape}"
            )
        T_out = self.output_length(T)
        if T_out < 1:
            span = self.dilation * (self.kernel_size - 1) + 1
            raise ValueError(
                f"x: {T} time steps (+ 2 x padding {self.padding}) are fewer than the kernel's span "
                f"{span}; pad the sequences to at least {span - 2 * self.padding} steps"
            )
        xp = array_module(x)
        if self.padding:
            xpad = xp.zeros((T + 2 * self.padding, B, C), dtype=self.dtype)
            xpad[self.padding : self.padding + T] = x
        else:
            xpad = xp.ascontiguousarray(x)
        w = xp.ascontiguousarray(self.params["weight"].transpose(2, 1, 0))  # (k, C, F): one (C, F) per tap
        y = xp.zeros((T_out * B, self.out_channels), dtype=self.dtype)
        for j in range(self.kernel_size):
            y += _taps(xpad, j * self.dilation, self.stride, T_out) @ w[j]
        if "bias" in self.params:
            y += self.params["bias"]
        self._cache = (xpad, w, T) if self.training else None
        return _out_layout(y.reshape(T_out, B, self.out_channels), self.batch_first)

    def backward(self, dy):
        """Returns dx (in the input's layout); sets ``grads['weight']`` (and ``grads['bias']``)."""
        xpad, w, T = _need_cache(self)
        B = xpad.shape[1]
        T_out = self.output_length(T)
        out_shape = (B, T_out, self.out_channels) if self.batch_first else (T_out, B, self.out_channels)
        dy = _time_major(_check_dy(dy, out_shape, self.dtype), self.batch_first)
        xp = array_module(dy)
        drows = xp.ascontiguousarray(dy).reshape(T_out * B, self.out_channels)
        dxpad = xp.zeros_like(xpad)
        dw = xp.empty_like(w)
        s = self.stride
        for j in range(self.kernel_size):
            start = j * self.dilation
            dw[j] = _taps(xpad, start, s, T_out).T @ drows
            dxpad[start : start + s * (T_out - 1) + 1 : s] += (drows @ w[j].T).reshape(T_out, B, self.in_channels)
        self.grads = {"weight": xp.ascontiguousarray(dw.transpose(2, 1, 0))}
        if "bias" in self.params:
            self.grads["bias"] = drows.sum(axis=0)
        return _out_layout(dxpad[self.padding : self.padding + T], self.batch_first)

    def __repr__(self):
        return (
            f"Conv1d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"bias={'bias' in self.params}, batch_first={self.batch_first})"
        )


class ReLU(Pointwise):
    """Element-wise ``max(x, 0)``; the gradient at 0 is 0, as in torch."""

    def _apply(self, xp, x):
        return xp.maximum(x, 0)

    def _slope(self, y):
        return y > 0


class MaxPool1d(Module):
    """Max pooling over time, as ``torch.nn.MaxPool1d`` (no dilation, ``ceil_mode`` False):
    windows of ``kernel_size`` steps every ``stride`` steps (default ``kernel_size``), ``padding``
    steps of −inf on both ends (at most half the kernel, as torch requires). The gradient of each
    output goes to the first maximum of its window. Layout as :class:`Conv1d`; any float dtype."""

    def __init__(self, kernel_size, stride=None, padding=0, *, batch_first=False):
        super().__init__()
        self.kernel_size = check_positive_int(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else check_positive_int(stride, "stride")
        self.padding = _check_nonneg_int(padding, "padding")
        if 2 * self.padding > self.kernel_size:
            raise ValueError(f"padding must be at most half of kernel_size ({self.kernel_size}), got {padding}")
        self.batch_first = bool(batch_first)
        self._cache = None

    def forward(self, x):
        x = _time_major(_float_3d(x, "x"), self.batch_first)
        T, B, C = x.shape
        T_out = (T + 2 * self.padding - self.kernel_size) // self.stride + 1
        if T_out < 1:
            raise ValueError(
                f"x: {T} time steps (+ 2 x padding {self.padding}) are fewer than kernel_size {self.kernel_size}"
            )
        xp = array_module(x)
        p, s = self.padding, self.stride
        xpad = xp.full((T + 2 * p, B, C), -xp.inf, dtype=x.dtype)
        xpad[p : p + T] = x
        y = xpad[0 : s * (T_out - 1) + 1 : s].copy()
        winner = xp.zeros(y.shape, dtype=np.int8 if self.kernel_size < 128 else np.int32)
        for j in range(1, self.kernel_size):
            cand = xpad[j : j + s * (T_out - 1) + 1 : s]
            better = cand > y  # strictly: ties keep the earlier step
            y = xp.where(better, cand, y)
            winner[better] = j
        self._cache = (winner, T, x.dtype) if self.training else None
        return _out_layout(y, self.batch_first)

    def backward(self, dy):
        winner, T, dtype = _need_cache(self)
        T_out, B, C = winner.shape
        dy = _time_major(_check_dy(dy, (B, T_out, C) if self.batch_first else (T_out, B, C), dtype), self.batch_first)
        xp = array_module(dy)
        p, s = self.padding, self.stride
        dxpad = xp.zeros((T + 2 * p, B, C), dtype=dtype)
        for j in range(self.kernel_size):
            dxpad[j : j + s * (T_out - 1) + 1 : s] += xp.where(winner == j, dy, 0)
        return _out_layout(dxpad[p : p + T], self.batch_first)

    def __repr__(self):
        return f"MaxPool1d(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})"


def _max_over_time(x, lengths):
    """``(max over the valid steps (B, C), the step of the first maximum (B, C))`` of ``x (T, B, C)``."""
    xp = array_module(x)
    if lengths is not None:
        valid = xp.arange(x.shape[0])[:, None] < xp.asarray(lengths)[None, :]  # (T, B)
        x = xp.where(valid[:, :, None], x, -xp.inf)
    idx = x.argmax(axis=0)
    return xp.take_along_axis(x, idx[None], axis=0)[0], idx


def _max_over_time_backward(idx, dy, shape, dtype):
    xp = array_module(dy)
    dx = xp.zeros(shape, dtype=dtype)
    xp.put_along_axis(dx, idx[None], dy[None], axis=0)
    return dx


class MaxOverTime(Module):
    """Max over time (Collobert et al. 2011, Kim 2014): ``forward(x (T, B, C), lengths=None) ->
    (B, C)``, the largest value of each channel over the steps ``t < lengths[b]`` (all steps without
    ``lengths``). The gradient goes to the first step holding the maximum."""

    def __init__(self, *, batch_first=False):
        super().__init__()
        self.batch_first = bool(batch_first)
        self._cache = None

    def forward(self, x, lengths=None):
        x = _time_major(_float_3d(x, "x"), self.batch_first)
        if x.shape[0] < 1:
            raise ValueError(f"x: expected at least one time step, got shape {x.shape}")
        lengths = _check_lengths(lengths, x.shape[1], x.shape[0])
        y, idx = _max_over_time(x, lengths)
        self._cache = (idx, x.shape, x.dtype) if self.training else None
        return y

    def backward(self, dy):
        idx, shape, dtype = _need_cache(self)
        dy = _check_dy(dy, idx.shape, dtype)
        return _out_layout(_max_over_time_backward(idx, dy, shape, dtype), self.batch_first)

    def __repr__(self):
        return "MaxOverTime()"


class TextCNN(Module):
    """Kim's (2014) sentence encoder: for each width ``k`` in ``filter_sizes``, a :class:`Conv1d` of
    ``num_filters`` filters over the word vectors, ReLU, and max over time; the pooled features of
    all widths concatenated, width by width: ``forward(x (T, B, C), lengths=None) ->
    (B, len(filter_sizes)·num_filters)``.

    Sequences are handled one by one as if each stood alone: steps ``t >= lengths[b]`` are zeroed,
    and a sequence shorter than a filter is zero-padded to the filter's width (Kim pads sentences
    the same way), so a result never depends on what else is in the batch. ReLU and the max
    commute (ReLU is monotone), so the max is taken first and ReLU applied to the ``(B, F)`` result.
    Children ``conv0``, ``conv1``, ... are the convolutions in the order of ``filter_sizes``.
    """

    def __init__(self, in_channels, filter_sizes=(3, 4, 5), num_filters=100, *, dtype=np.float32, seed=None):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        if (
            isinstance(filter_sizes, (int, np.integer))
            or not isinstance(filter_sizes, (list, tuple))
            or not filter_sizes
        ):
            raise TypeError(f"filter_sizes: expected a non-empty list or tuple of widths, got {filter_sizes!r}")
        self.filter_sizes = tuple(check_positive_int(k, "filter_sizes") for k in filter_sizes)
        self.num_filters = check_positive_int(num_filters, "num_filters")
        self.dtype = check_float_dtype(dtype)
        seeds = np.random.SeedSequence(seed).generate_state(len(self.filter_sizes))
        for i, (k, s) in enumerate(zip(self.filter_sizes, seeds)):
            setattr(self, f"conv{i}", Conv1d(self.in_channels, self.num_filters, k, dtype=self.dtype, seed=int(s)))
        self._cache = None

    @property
    def convs(self):
        return [getattr(self, f"conv{i}") for i in range(len(self.filter_sizes))]

    @property
    def output_size(self):
        return len(self.filter_sizes) * self.num_filters

    def forward(self, x, lengths=None):
        x = _float_3d(x, "x", self.dtype)
        T, B, C = x.shape
        if C != self.in_channels:
            raise ValueError(
                f"x: expected {self.in_channels} channels (in_channels) in the last dimension, got shape {x.shape}"
            )
        if T < 1:
            raise ValueError(f"x: expected at least one time step, got shape {x.shape}")
        lengths = _check_lengths(lengths, B, T)
        xp = array_module(x)
        n = np.full(B, T) if lengths is None else np.asarray(lengths)
        Tpad = max(T, max(self.filter_sizes))
        xpad = xp.zeros((Tpad, B, C), dtype=self.dtype)
        xpad[:T] = x
        if lengths is not None:  # where, not a product: whatever sits past a length (even NaN) is dropped
            xpad[:T] = xp.where((xp.arange(T)[:, None] < xp.asarray(n)[None, :])[:, :, None], x, 0)
        feats, caches = [], []
        for k, conv in zip(self.filter_sizes, self.convs):
            y = conv(xpad)  # (Tpad - k + 1, B, F)
            m, idx = _max_over_time(y, np.maximum(n, k) - k + 1)
            feats.append(xp.maximum(m, 0))
            caches.append((idx, y.shape, m > 0))
        self._cache = (caches, T, n if lengths is not None else None) if self.training else None
        return xp.concatenate(feats, axis=1)

    def backward(self, dfeats):
        """Returns ``dx (T, B, C)``; sets every convolution's gradients."""
        caches, T, n = _need_cache(self)
        B = caches[0][0].shape[0]
        F = self.num_filters
        dfeats = _check_dy(dfeats, (B, self.output_size), self.dtype, "dfeats")
        dx = None
        for i, (conv, (idx, y_shape, positive)) in enumerate(zip(self.convs, caches)):
            dm = dfeats[:, i * F : (i + 1) * F] * positive
            d = conv.backward(_max_over_time_backward(idx, dm, y_shape, self.dtype))
            dx = d if dx is None else dx + d
        dx = dx[:T]
        if n is not None:
            xp = array_module(dx)
            dx = dx * (xp.arange(T)[:, None] < xp.asarray(n)[None, :])[:, :, None]
        return dx

    def __repr__(self):
        return f"TextCNN({self.in_channels}, filter_sizes={self.filter_sizes}, num_filters={self.num_filters})"
