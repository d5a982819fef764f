"""Softmax cross-entropy with its gradient (docs/ops.md §2), and log-softmax.

Reference: :func:`seqkernels.reference.training.softmax_cross_entropy` (float64, row by row).
"""

from __future__ import annotations

import numbers

from ._arrays import array_module, as_array, int_input

__all__ = ["log_softmax", "softmax_cross_entropy"]


def log_softmax(logits, axis=-1):
    """``z - logsumexp(z)`` along ``axis``, with the maximum subtracted first (no overflow)."""
    z = as_array(logits, "logits")
    if z.dtype.kind != "f":
        raise TypeError(f"logits: expected a floating-point array, got dtype {z.dtype}")
    xp = array_module(z)
    z = z - z.max(axis=axis, keepdims=True)
    return z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True))


def softmax_cross_entropy(logits, targets, ignore_index=-100, reduction="mean"):
    """Cross-entropy of ``softmax(logits)`` against integer targets, and its gradient.

    logits: ``(..., V)`` float array (computed in its own dtype). targets: integer array of shape
    ``logits.shape[:-1]``, each in ``[0, V)`` or equal to ``ignore_index`` (padding).
    reduction: ``"mean"`` divides by the number of non-ignored targets (``torch.nn.functional.
    cross_entropy``'s convention), ``"sum"`` does not.

    Returns ``(loss, dlogits)``: ``loss`` a Python float, ``dlogits`` the gradient of that loss
    with respect to ``logits`` (same shape and dtype; zero on ignored positions). Unlike torch,
    which returns NaN, a batch with no counted target gives loss 0.0 and a zero gradient, so a
    padding-only batch cannot poison training.
    """
    z = as_array(logits, "logits")
    if z.dtype.kind != "f":
        raise TypeError(f"logits: expected a floating-point array, got dtype {z.dtype}")
    if z.ndim < 1 or z.shape[-1] < 1:
        raise ValueError(f"logits: expected shape (..., V) with V >= 1, got {z.shape}")
    t = int_input(targets, "targets")
    if t.shape != z.shape[:-1]:
        raise ValueError(f"targets: expected shape {z.shape[:-1]} (logits.shape[:-1]), got {t.shape}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index: expected an int, got {type(ignore_index).__name__}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction: must be 'mean' or 'sum', got {reduction!r}")
    xp = array_module(z, t)
    V = z.shape[-1]
    zf = z.reshape(-1, V)
    tf = t.reshape(-1)
    keep = tf != ignore_index
    if bool(((tf < 0) | (tf >= V))[keep].any()):
        bad = tf[keep][((tf < 0) | (tf >= V))[keep]][0]
        raise ValueError(f"targets: {int(bad)} is outside [0, {V}) and is not ignore_index ({ignore_index})")
    count = int(keep.sum())
    safe_t = xp.where(keep, tf, 0)
    lp = log_softmax(zf)
    rows = xp.arange(zf.shape[0])
    picked = lp[rows, safe_t]
    loss = -float(picked[keep].astype("float64").sum())  # accumulate in float64
    grad = xp.exp(lp)
    grad[rows, safe_t] -= 1
    grad *= keep[:, None]
    if reduction == "mean" and count:
        loss /= count
        grad /= count
    return loss, grad.reshape(z.shape)
