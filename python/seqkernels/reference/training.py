"""Float64 NumPy reference of the training pieces (docs/ops.md §2): the executable form that the
vectorised layers of :mod:`seqkernels.nn` are tested against.

Written for reading: explicit loops over rows and tokens where that makes the formula plain. Every
function computes in float64 and returns new arrays (inputs are never modified). Conventions are
PyTorch's where docs/ops.md is silent: ``Linear`` keeps ``weight`` as ``(out, in)``, the cross-entropy
mean runs over non-ignored targets, SGD and Adam follow the update rules printed in the
``torch.optim.SGD`` / ``torch.optim.Adam`` documentation, and gradient clipping uses
``clip_coef = max_norm / (total_norm + 1e-6)`` applied only when it is below 1.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "adam_step",
    "attention_backward",
    "attention_forward",
    "clip_grad_norm",
    "dropout_backward",
    "dropout_forward",
    "embedding_backward",
    "embedding_forward",
    "linear_backward",
    "linear_forward",
    "log_softmax",
    "sgd_step",
    "softmax_cross_entropy",
    "tanh_backward",
]


def _f64(a):
    return np.array(a, dtype=np.float64)


# ---- layers ---------------------------------------------------------------------------------


def linear_forward(x, weight, bias=None):
    """``y = x Wᵀ + b`` over the last axis of ``x`` (``(..., in)`` -> ``(..., out)``)."""
    x, w = _f64(x), _f64(weight)
    rows = x.reshape(-1, x.shape[-1])
    y = np.zeros((rows.shape[0], w.shape[0]))
    for r in range(rows.shape[0]):
        y[r] = w @ rows[r] + (0.0 if bias is None else _f64(bias))
    return y.reshape(x.shape[:-1] + (w.shape[0],))


def linear_backward(x, weight, dy, bias=True):
    """Gradients of ``linear_forward``: ``(dx, dweight, dbias)``; ``dbias`` is None without bias."""
    x, w, dy = _f64(x), _f64(weight), _f64(dy)
    rows, drows = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
    dx = np.zeros_like(rows)
    dw = np.zeros_like(w)
    db = np.zeros(w.shape[0])
    for r in range(rows.shape[0]):
        dx[r] = drows[r] @ w
        dw += np.outer(drows[r], rows[r])
        db += drows[r]
    return dx.reshape(x.shape), dw, (db if bias else None)


def embedding_forward(weight, ids):
    """Row lookup: ``out[...] = weight[ids[...]]``."""
    w = _f64(weight)
    ids = np.asarray(ids)
    out = np.zeros(ids.shape + (w.shape[1],))
    for pos in np.ndindex(ids.shape):
        out[pos] = w[ids[pos]]
    return out


def embedding_backward(num_embeddings, ids, dy, padding_idx=None):
    """Gradient of ``embedding_forward`` w.r.t. the table: every use of a row adds its ``dy``; the
    ``padding_idx`` row gets none (PyTorch)."""
    ids, dy = np.asarray(ids), _f64(dy)
    dw = np.zeros((num_embeddings, dy.shape[-1]))
    for pos in np.ndindex(ids.shape):
        if ids[pos] != padding_idx:
            dw[ids[pos]] += dy[pos]
    return dw


def dropout_forward(x, keep_mask, p):
    """Inverted dropout: kept entries (``keep_mask`` true) are scaled by ``1/(1-p)``, others zeroed."""
    return np.where(np.asarray(keep_mask, bool), _f64(x) / (1.0 - p), 0.0)


def dropout_backward(dy, keep_mask, p):
    return np.where(np.asarray(keep_mask, bool), _f64(dy) / (1.0 - p), 0.0)


def tanh_backward(y, dy):
    """Gradient through ``y = tanh(x)``, from the saved output: ``dx = dy (1 - y²)``."""
    y = _f64(y)
    return _f64(dy) * (1.0 - y * y)


def log_softmax(logits):
    """Log-softmax over the last axis, row by row, with the maximum subtracted first."""
    z = _f64(logits)
    out = np.zeros_like(z)
    for pos in np.ndindex(z.shape[:-1]):
        row = z[pos]
        m = row.max()
        out[pos] = row - m - math.log(np.exp(row - m).sum())
    return out


def softmax_cross_entropy(logits, targets, ignore_index=-100, reduction="mean"):
    """``L = -Σ log softmax(z_n)[y_n]`` over the rows whose target is not ``ignore_index``, divided by
    their count for ``reduction="mean"``. Returns ``(loss, dlogits)`` with
    ``dlogits_n = (softmax(z_n) - onehot(y_n)) / count`` (zero on ignored rows). With no counted row
    the loss and gradient are 0."""
    z = _f64(logits)
    t = np.asarray(targets)
    lp = log_softmax(z)
    loss = 0.0
    grad = np.zeros_like(z)
    count = 0
    for pos in np.ndindex(t.shape):
        y = int(t[pos])
        if y == ignore_index:
            continue
        count += 1
        loss -= lp[pos][y]
        grad[pos] = np.exp(lp[pos])
        grad[pos][y] -= 1.0
    if reduction == "mean" and count:
        loss /= count
        grad /= count
    return loss, grad


def attention_forward(query, keys, weight, lengths):
    """Luong "general" attention without input feeding, one sequence at a time.

    ``query (Tq, B, Hq)``, ``keys (Tk, B, Hk)``, ``weight (Hq, Hk)``, ``lengths (B,)``: for every
    query step ``s_j = q · W k_j`` over the valid keys ``j < lengths[b]``, ``a = softmax(s)``,
    ``context = Σ_j a_j k_j``. Returns ``(context (Tq, B, Hk), weights (B, Tq, Tk))``.
    """
    q, k, w = _f64(query), _f64(keys), _f64(weight)
    Tq, B, _ = q.shape
    Tk = k.shape[0]
    ctx = np.zeros((Tq, B, k.shape[2]))
    att = np.zeros((B, Tq, Tk))
    for b in range(B):
        n = int(lengths[b])
        for t in range(Tq):
            s = np.array([q[t, b] @ w @ k[j, b] for j in range(n)])
            a = np.exp(s - s.max())
            a /= a.sum()
            att[b, t, :n] = a
            ctx[t, b] = sum(a[j] * k[j, b] for j in range(n))
    return ctx, att


def attention_backward(query, keys, weight, lengths, dcontext):
    """Gradients of :func:`attention_forward`: ``(dquery, dkeys, dweight)``."""
    q, k, w, dc = _f64(query), _f64(keys), _f64(weight), _f64(dcontext)
    _, att = attention_forward(q, k, w, lengths)
    Tq, B, _ = q.shape
    dq, dk, dw = np.zeros_like(q), np.zeros_like(k), np.zeros_like(w)
    for b in range(B):
        n = int(lengths[b])
        for t in range(Tq):
            a = att[b, t, :n]
            da = np.array([dc[t, b] @ k[j, b] for j in range(n)])
            ds = a * (da - (a * da).sum())  # softmax backward
            for j in range(n):
                dk[j, b] += a[j] * dc[t, b]  # through the weighted sum
                dq[t, b] += ds[j] * (w @ k[j, b])  # s_j = q · W k_j
                dk[j, b] += ds[j] * (w.T @ q[t, b])
                dw += ds[j] * np.outer(q[t, b], k[j, b])
    return dq, dk, dw


# ---- optimisers and clipping ----------------------------------------------------------------


def sgd_step(param, grad, buf, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """One ``torch.optim.SGD`` update. ``buf`` is the momentum buffer (None before the first step).
    Returns ``(new_param, new_buf)``."""
    p, g = _f64(param), _f64(grad)
    if weight_decay:
        g = g + weight_decay * p
    if momentum:
        buf = g.copy() if buf is None else momentum * _f64(buf) + (1.0 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    return p - lr * g, buf


def adam_step(
    param, grad, m, v, step, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False
):
    """One ``torch.optim.Adam`` (``decoupled_weight_decay=True``: ``AdamW``) update; ``step`` counts
    from 1, ``m`` and ``v`` start at zeros. Returns ``(new_param, new_m, new_v)``::

        g  = grad + wd·p                 (L2 form; AdamW instead scales p by 1 - lr·wd)
        m  = β1 m + (1 - β1) g           v = β2 v + (1 - β2) g²
        p -= lr · (m / (1 - β1^step)) / (sqrt(v / (1 - β2^step)) + eps)
    """
    p, g = _f64(param), _f64(grad)
    b1, b2 = betas
    if weight_decay and decoupled_weight_decay:
        p = p * (1.0 - lr * weight_decay)
    elif weight_decay:
        g = g + weight_decay * p
    m = b1 * _f64(m) + (1.0 - b1) * g
    v = b2 * _f64(v) + (1.0 - b2) * g * g
    m_hat = m / (1.0 - b1**step)
    v_hat = v / (1.0 - b2**step)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def clip_grad_norm(grads, max_norm, norm_type=2.0):
    """Global-norm clipping. Returns ``(clipped_grads, total_norm)``: the norm of all gradients
    taken together (``norm_type`` p, or ``inf`` for the largest magnitude); when
    ``max_norm / (total_norm + 1e-6) < 1`` every gradient is multiplied by that factor."""
    grads = [_f64(g) for g in grads]
    if norm_type == math.inf:
        total = max((float(np.abs(g).max()) for g in grads if g.size), default=0.0)
    else:
        total = sum(float((np.abs(g) ** norm_type).sum()) for g in grads) ** (1.0 / norm_type)
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        grads = [g * coef for g in grads]
    return grads, total
