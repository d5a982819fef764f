"""Float64 NumPy reference of the text-CNN pieces (Kim 2014): 1-D convolution over time, max
pooling, max over time, ReLU. The vectorised layers of :mod:`seqkernels.nn.conv` are tested
against these loops.

Layout, as in the recurrent layers: time-major ``x (T, B, C)`` — ``T`` steps, ``B`` sequences,
``C`` channels (for text, the word vector's entries). ``weight (F, C, k)`` is ``torch.nn.Conv1d``'s
``(out_channels, in_channels, kernel_size)``. Semantics are torch's: zero padding of ``padding``
steps on both ends, output length ``floor((T + 2·padding − dilation·(k − 1) − 1) / stride) + 1``,
max pooling pads with −inf and sends each output's gradient to the first maximum of its window.
Every function computes in the dtype of ``x`` (float64 normally; run in float32 it gives the rounding
yardstick of the tolerance rule) and returns new arrays.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "conv1d_backward",
    "conv1d_forward",
    "conv_output_length",
    "max_over_time_backward",
    "max_over_time_forward",
    "max_pool1d_backward",
    "max_pool1d_forward",
    "relu_backward",
    "text_cnn_backward",
    "text_cnn_forward",
]


def _arr(a, like=None):
    """A copy of ``a`` in float32 when ``like`` (or ``a`` itself) is float32, else in float64."""
    dtype = np.asarray(a if like is None else like).dtype
    return np.array(a, dtype=np.float32 if dtype == np.float32 else np.float64)


def conv_output_length(T, kernel_size, stride=1, padding=0, dilation=1):
    """Number of output steps of a convolution or pooling over ``T`` input steps."""
    return (T + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def _source(t, j, stride, padding, dilation):
    """Input step read by output step ``t`` through tap ``j`` (negative or ``>= T`` means padding)."""
    return t * stride + j * dilation - padding


def conv1d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """``y[t, b, f] = bias[f] + Σ_j Σ_c weight[f, c, j] · x[t·stride + j·dilation − padding, b, c]``,
    with ``x`` zero outside ``0..T-1``. Returns ``(T_out, B, F)``."""
    x = _arr(x)
    w = _arr(weight, x)
    bias = None if bias is None else _arr(bias, x)
    T, B, _ = x.shape
    F, _, k = w.shape
    T_out = conv_output_length(T, k, stride, padding, dilation)
    y = np.zeros((T_out, B, F), dtype=x.dtype)
    for b in range(B):
        for t in range(T_out):
            for f in range(F):
                acc = x.dtype.type(0) if bias is None else bias[f]
                for j in range(k):
                    src = _source(t, j, stride, padding, dilation)
                    if 0 <= src < T:
                        acc += w[f, :, j] @ x[src, b]
                y[t, b, f] = acc
    return y


def conv1d_backward(x, weight, dy, stride=1, padding=0, dilation=1, bias=True):
    """Gradients of :func:`conv1d_forward`: ``(dx, dweight, dbias)``; ``dbias`` is None without bias."""
    x = _arr(x)
    w, dy = _arr(weight, x), _arr(dy, x)
    T, B, _ = x.shape
    F, _, k = w.shape
    dx, dw, db = np.zeros_like(x), np.zeros_like(w), np.zeros(F, dtype=x.dtype)
    for b in range(B):
        for t in range(dy.shape[0]):
            for f in range(F):
                g = dy[t, b, f]
                db[f] += g
                for j in range(k):
                    src = _source(t, j, stride, padding, dilation)
                    if 0 <= src < T:
                        dw[f, :, j] += g * x[src, b]
                        dx[src, b] += g * w[f, :, j]
    return dx, dw, (db if bias else None)


def _pool_windows(T, kernel_size, stride, padding):
    """``[(t, [input steps of window t]), ...]`` with padding steps left out."""
    T_out = conv_output_length(T, kernel_size, stride, padding)
    return [
        (t, [s for s in range(t * stride - padding, t * stride - padding + kernel_size) if 0 <= s < T])
        for t in range(T_out)
    ]


def max_pool1d_forward(x, kernel_size, stride=None, padding=0):
    """``y[t, b, c] = max`` of ``x[s, b, c]`` over window ``t`` (``stride`` defaults to
    ``kernel_size``; padding is −inf, so it never wins). Returns ``(T_out, B, C)``."""
    x = _arr(x)
    stride = kernel_size if stride is None else stride
    windows = _pool_windows(x.shape[0], kernel_size, stride, padding)
    y = np.zeros((len(windows),) + x.shape[1:], dtype=x.dtype)
    for t, steps in windows:
        for pos in np.ndindex(x.shape[1:]):
            y[(t,) + pos] = max(x[(s,) + pos] for s in steps)
    return y


def max_pool1d_backward(x, dy, kernel_size, stride=None, padding=0):
    """Gradient of :func:`max_pool1d_forward`: each output's ``dy`` goes to the first input step
    that holds its window's maximum (overlapping windows add up)."""
    x = _arr(x)
    dy = _arr(dy, x)
    stride = kernel_size if stride is None else stride
    dx = np.zeros_like(x)
    for t, steps in _pool_windows(x.shape[0], kernel_size, stride, padding):
        for pos in np.ndindex(x.shape[1:]):
            vals = [x[(s,) + pos] for s in steps]
            dx[(steps[int(np.argmax(vals))],) + pos] += dy[(t,) + pos]
    return dx


def max_over_time_forward(x, lengths=None):
    """``y[b, c] = max_{t < lengths[b]} x[t, b, c]`` (all ``T`` steps when ``lengths`` is None).
    Returns ``(B, C)``."""
    x = _arr(x)
    T, B, C = x.shape
    lengths = [T] * B if lengths is None else [int(n) for n in lengths]
    y = np.zeros((B, C), dtype=x.dtype)
    for b in range(B):
        for c in range(C):
            y[b, c] = max(x[t, b, c] for t in range(lengths[b]))
    return y


def max_over_time_backward(x, dy, lengths=None):
    """Gradient of :func:`max_over_time_forward`: ``dy[b, c]`` goes to the first step holding the
    maximum; the other steps (and those past the length) get zero."""
    x = _arr(x)
    dy = _arr(dy, x)
    T, B, C = x.shape
    lengths = [T] * B if lengths is None else [int(n) for n in lengths]
    dx = np.zeros_like(x)
    for b in range(B):
        for c in range(C):
            dx[int(np.argmax(x[: lengths[b], b, c])), b, c] = dy[b, c]
    return dx


def relu_backward(x, dy):
    """Gradient through ``y = max(x, 0)``: ``dy`` where ``x > 0``, else 0 (torch's choice at 0)."""
    x = _arr(x)
    return np.where(x > 0, _arr(dy, x), x.dtype.type(0))


def _alone(x, b, n, k):
    """Sequence ``b`` on its own: its first ``n`` steps, zero-padded to at least ``k`` steps, as ``(T', 1, C)``."""
    seq = np.zeros((max(n, k), 1, x.shape[2]), dtype=x.dtype)
    seq[:n, 0] = x[:n, b]
    return seq


def text_cnn_forward(x, weights, biases, lengths=None):
    """Kim's (2014) encoder, one sequence at a time: for every filter bank ``(weight (F, C, k), bias)``,
    convolve the sequence's first ``lengths[b]`` steps (zero-padded to at least ``k`` steps), apply
    ReLU, take the max over time; concatenate the banks' ``(F,)`` results in order. Returns
    ``(B, Σ F)``."""
    x = _arr(x)
    T, B, _ = x.shape
    lengths = [T] * B if lengths is None else [int(n) for n in lengths]
    out = []
    for b in range(B):
        feats = []
        for w, bias in zip(weights, biases):
            y = conv1d_forward(_alone(x, b, lengths[b], w.shape[2]), w, bias)
            feats.append(max_over_time_forward(np.maximum(y, 0))[0])
        out.append(np.concatenate(feats))
    return np.stack(out)


def text_cnn_backward(x, weights, biases, dfeats, lengths=None):
    """Gradients of :func:`text_cnn_forward`: ``(dx, [dweight per bank], [dbias per bank])``."""
    x = _arr(x)
    dfeats = _arr(dfeats, x)
    T, B, _ = x.shape
    lengths = [T] * B if lengths is None else [int(n) for n in lengths]
    dx = np.zeros_like(x)
    dws = [np.zeros_like(_arr(w, x)) for w in weights]
    dbs = [np.zeros(w.shape[0], dtype=x.dtype) for w in weights]
    for b in range(B):
        col = 0
        for i, (w, bias) in enumerate(zip(weights, biases)):
            F, k, n = w.shape[0], w.shape[2], lengths[b]
            seq = _alone(x, b, n, k)
            y = conv1d_forward(seq, w, bias)
            dr = max_over_time_backward(np.maximum(y, 0), dfeats[b : b + 1, col : col + F])
            dseq, dw, db = conv1d_backward(seq, w, relu_backward(y, dr))
            dx[:n, b] += dseq[:n, 0]
            dws[i] += dw
            dbs[i] += db
            col += F
    return dx, dws, dbs
