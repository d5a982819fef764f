"""Single time-step recurrent cells: forward and hand-derived backward.

This module is the executable form of docs/ops.md §1.2–§1.4 (forward) and §1.8 (backward) for
one time step. Everything is written out step by step, for reading rather than speed.

Conventions (docs/ops.md §1.1, identical to PyTorch):

* ``x`` is ``(B, I)``, ``h`` and ``c`` are ``(B, H)``.
* ``w_ih`` is ``(G*H, I)``, ``w_hh`` is ``(G*H, H)``, ``b_ih`` and ``b_hh`` are ``(G*H,)`` or
  ``None`` (a layer built with ``bias=False``). ``G`` is 4 for LSTM (gate blocks i, f, g, o),
  3 for GRU (r, z, n) and 1 for the plain RNN.
* Every computation happens in the dtype of ``x``; weights, biases and states are cast to it, so a
  float32 run keeps every intermediate in float32.

Each ``*_forward`` returns the new state(s) and a ``cache`` dict holding what the matching
``*_backward`` needs. Each ``*_backward`` takes the gradient of the loss with respect to the
cell's outputs and returns the gradients with respect to its inputs, plus ``grads``, a dict with
keys ``"w_ih"``, ``"w_hh"``, ``"b_ih"``, ``"b_hh"`` (the bias entries are ``None`` when the
corresponding bias is ``None``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "sigmoid",
    "lstm_cell_forward",
    "lstm_cell_backward",
    "gru_cell_forward",
    "gru_cell_backward",
    "rnn_cell_forward",
    "rnn_cell_backward",
]

_NONLINEARITIES = ("tanh", "relu")


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def sigmoid(a: np.ndarray) -> np.ndarray:
    """The logistic sigmoid ``σ(a) = 1 / (1 + exp(-a))``, computed without overflow warnings.

    For ``a >= 0`` it uses ``1 / (1 + exp(-a))``; for ``a < 0`` the equivalent
    ``exp(a) / (1 + exp(a))``, so ``exp`` is only ever taken of a non-positive number.
    The result has the dtype of ``a``.
    """
    a = np.asarray(a)
    out = np.empty_like(a)
    pos = a >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-a[pos]))
    e = np.exp(a[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _as_float_array(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name} must be a floating-point array, got dtype {x.dtype}")
    return x


def _check_cell_args(x, h, w_ih, w_hh, b_ih, b_hh, gates: int, c=None, projected=False):
    """Validate shapes and cast everything to ``x.dtype``. Returns the cast arrays.

    ``projected`` (LSTM with projections): ``w_hh`` is ``(G*H, P)`` and ``h`` is ``(B, P)``."""
    x = _as_float_array(x, "x")
    dtype = x.dtype
    if x.ndim != 2:
        raise ValueError(f"x must have shape (B, I), got shape {x.shape}")
    B, I = x.shape
    w_ih = np.asarray(w_ih, dtype=dtype)
    w_hh = np.asarray(w_hh, dtype=dtype)
    if w_hh.ndim != 2 or w_hh.shape[0] % gates != 0 or (w_hh.shape[0] // gates != w_hh.shape[1] and not projected):
        raise ValueError(f"w_hh must have shape ({gates}*H, {'P' if projected else 'H'}), got shape {w_hh.shape}")
    H, R = w_hh.shape[0] // gates, w_hh.shape[1]
    if w_ih.shape != (gates * H, I):
        raise ValueError(f"w_ih must have shape {(gates * H, I)}, got shape {w_ih.shape}")
    h = np.asarray(h, dtype=dtype)
    if h.shape != (B, R):
        raise ValueError(f"h must have shape {(B, R)}, got shape {h.shape}")
    if c is not None:
        c = np.asarray(c, dtype=dtype)
        if c.shape != (B, H):
            raise ValueError(f"c must have shape {(B, H)}, got shape {c.shape}")
    biases = []
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None:
            b = np.asarray(b, dtype=dtype)
            if b.shape != (gates * H,):
                raise ValueError(f"{name} must have shape {(gates * H,)}, got shape {b.shape}")
        biases.append(b)
    return x, h, c, w_ih, w_hh, biases[0], biases[1]


def _affine(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """``x W^T + b`` (``b`` may be ``None``)."""
    out = x @ w.T
    if b is not None:
        out = out + b
    return out


def _param_grads(dz_ih, x, dz_hh, h, has_b_ih: bool, has_b_hh: bool) -> dict:
    """Weight and bias gradients of the two affine maps ``x W_ih^T + b_ih`` and ``h W_hh^T + b_hh``.

    ``dz_ih`` is the gradient reaching ``x W_ih^T + b_ih`` and ``dz_hh`` the one reaching
    ``h W_hh^T + b_hh`` (they differ only for the GRU's n block). Then
    ``dW_ih = dz_ih^T x``, ``dW_hh = dz_hh^T h``, ``db_ih = Σ_batch dz_ih``, ``db_hh = Σ_batch dz_hh``.
    """
    return {
        "w_ih": dz_ih.T @ x,
        "w_hh": dz_hh.T @ h,
        "b_ih": dz_ih.sum(axis=0) if has_b_ih else None,
        "b_hh": dz_hh.sum(axis=0) if has_b_hh else None,
    }


# ---------------------------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------------------------


def lstm_cell_forward(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None):
    """One LSTM step (docs/ops.md §1.2; gate blocks i, f, g, o as in PyTorch).

    ::

        z   = x W_ih^T + b_ih + h W_hh^T + b_hh                       (B, 4H)
        i = σ(z[0:H])   f = σ(z[H:2H])   g = tanh(z[2H:3H])   o = σ(z[3H:4H])
        c_new = f ⊙ c + i ⊙ g
        h_new = o ⊙ tanh(c_new)

    With projections (``w_hr`` of shape ``(P, H)``, torch's ``proj_size = P``): ``h`` is ``(B, P)``,
    ``w_hh`` is ``(4H, P)`` and ``h_new = (o ⊙ tanh(c_new)) W_hr^T``; ``c`` stays ``(B, H)``.

    Returns ``(h_new, c_new, cache)``.
    """
    projected = w_hr is not None
    x, h, c, w_ih, w_hh, b_ih, b_hh = _check_cell_args(x, h, w_ih, w_hh, b_ih, b_hh, 4, c=c, projected=projected)
    H = w_hh.shape[0] // 4
    if projected:
        w_hr = np.asarray(w_hr, dtype=x.dtype)
        if w_hr.shape != (w_hh.shape[1], H):
            raise ValueError(f"w_hr must have shape {(w_hh.shape[1], H)} (P, H), got shape {w_hr.shape}")

    z = _affine(x, w_ih, b_ih) + _affine(h, w_hh, b_hh)
    i = sigmoid(z[:, 0:H])
    f = sigmoid(z[:, H : 2 * H])
    g = np.tanh(z[:, 2 * H : 3 * H])
    o = sigmoid(z[:, 3 * H : 4 * H])

    c_new = f * c + i * g
    tanh_c = np.tanh(c_new)
    m = o * tanh_c  # the unprojected output
    h_new = m @ w_hr.T if projected else m

    cache = {
        "x": x, "h": h, "c": c, "w_ih": w_ih, "w_hh": w_hh, "w_hr": w_hr, "m": m,
        "has_b_ih": b_ih is not None, "has_b_hh": b_hh is not None,
        "i": i, "f": f, "g": g, "o": o, "tanh_c": tanh_c,
    }  # fmt: skip
    return h_new, c_new, cache


def lstm_cell_backward(dh, dc, cache):
    """Backward of :func:`lstm_cell_forward` (docs/ops.md §1.8, the LSTM step).

    ``dh`` is dL/dh_new and ``dc`` is the gradient reaching ``c_new`` from outside this step
    (from the next step, or dL/dc_n); either may be ``None`` for zero. With ``tc = tanh(c_new)``::

        do = dh ⊙ tc                     dc_tot = dc + dh ⊙ o ⊙ (1 − tc²)
        di = dc_tot ⊙ g    dg = dc_tot ⊙ i    df = dc_tot ⊙ c    dc_prev = dc_tot ⊙ f
        dz = [di·i(1−i), df·f(1−f), dg·(1−g²), do·o(1−o)]                 (B, 4H)
        dx = dz W_ih      dh_prev = dz W_hh
        dW_ih = dz^T x    dW_hh = dz^T h    db_ih = db_hh = Σ_batch dz

    With projections, ``h_new = m W_hr^T`` comes first: ``dW_hr = dh^T m``, and the lines above
    run with ``dh`` replaced by ``dm = dh W_hr``; ``grads`` then also holds ``"w_hr"``.

    Returns ``(dx, dh_prev, dc_prev, grads)``.
    """
    i, f, g, o, tanh_c = cache["i"], cache["f"], cache["g"], cache["o"], cache["tanh_c"]
    dtype = i.dtype
    w_hr = cache["w_hr"]
    dh = np.zeros((i.shape[0], cache["h"].shape[1]), dtype) if dh is None else np.asarray(dh, dtype=dtype)
    dc = np.zeros_like(i) if dc is None else np.asarray(dc, dtype=dtype)
    if w_hr is not None:  # h_new = m W_hr^T
        dw_hr = dh.T @ cache["m"]
        dh = dh @ w_hr

    # h_new = o ⊙ tanh(c_new)
    do = dh * tanh_c
    dc_tot = dc + dh * o * (1.0 - tanh_c * tanh_c)

    # c_new = f ⊙ c + i ⊙ g
    di = dc_tot * g
    dg = dc_tot * i
    df = dc_tot * cache["c"]
    dc_prev = dc_tot * f

    # through the gate nonlinearities back to the pre-activation z
    dz = np.concatenate(
        [
            di * i * (1.0 - i),
            df * f * (1.0 - f),
            dg * (1.0 - g * g),
            do * o * (1.0 - o),
        ],
        axis=1,
    )

    # z = x W_ih^T + b_ih + h W_hh^T + b_hh
    dx = dz @ cache["w_ih"]
    dh_prev = dz @ cache["w_hh"]
    grads = _param_grads(dz, cache["x"], dz, cache["h"], cache["has_b_ih"], cache["has_b_hh"])
    if w_hr is not None:
        grads["w_hr"] = dw_hr
    return dx, dh_prev, dc_prev, grads


# ---------------------------------------------------------------------------------------------
# GRU
# ---------------------------------------------------------------------------------------------


def gru_cell_forward(x, h, w_ih, w_hh, b_ih=None, b_hh=None, reset_after=True):
    """One GRU step (docs/ops.md §1.3; gate blocks r, z, n as in PyTorch).

    With ``gi = x W_ih^T + b_ih`` and ``gh = h W_hh^T + b_hh`` split into blocks ``_r, _z, _n``::

        r = σ(gi_r + gh_r)        u = σ(gi_z + gh_z)          (u is PyTorch's z, the update gate)
        reset_after=True  (PyTorch, cuDNN):  n = tanh(gi_n + r ⊙ gh_n)
        reset_after=False (Cho et al. 2014): n = tanh(gi_n + (r ⊙ h) W_hn^T + b_hn)
        h_new = (1 − u) ⊙ n + u ⊙ h

    Returns ``(h_new, cache)``.
    """
    x, h, _, w_ih, w_hh, b_ih, b_hh = _check_cell_args(x, h, w_ih, w_hh, b_ih, b_hh, 3)
    H = h.shape[1]

    gi = _affine(x, w_ih, b_ih)  # (B, 3H): x-side pre-activations of r, z, n
    r = sigmoid(gi[:, 0:H] + _affine(h, w_hh[0:H], None if b_hh is None else b_hh[0:H]))
    u = sigmoid(gi[:, H : 2 * H] + _affine(h, w_hh[H : 2 * H], None if b_hh is None else b_hh[H : 2 * H]))
    b_hn = None if b_hh is None else b_hh[2 * H : 3 * H]
    w_hn = w_hh[2 * H : 3 * H]

    if reset_after:
        hn = _affine(h, w_hn, b_hn)  # W_hn h + b_hn
        n = np.tanh(gi[:, 2 * H : 3 * H] + r * hn)
        rh = None
    else:
        rh = r * h
        hn = _affine(rh, w_hn, b_hn)  # W_hn (r ⊙ h) + b_hn
        n = np.tanh(gi[:, 2 * H : 3 * H] + hn)

    h_new = (1.0 - u) * n + u * h

    cache = {
        "x": x, "h": h, "w_ih": w_ih, "w_hh": w_hh,
        "has_b_ih": b_ih is not None, "has_b_hh": b_hh is not None,
        "reset_after": bool(reset_after),
        "r": r, "u": u, "n": n, "hn": hn, "rh": rh,
    }  # fmt: skip
    return h_new, cache


def gru_cell_backward(dh, cache):
    """Backward of :func:`gru_cell_forward`, derived by hand from its equations (docs/ops.md §1.8).

    Common part, from ``h_new = (1 − u) ⊙ n + u ⊙ h``::

        dn = dh ⊙ (1 − u)     du = dh ⊙ (h − n)     dh_prev = dh ⊙ u   (+ terms below)
        dn_pre = dn ⊙ (1 − n²)        du_pre = du ⊙ u(1 − u)

    reset_after=True (``n = tanh(gi_n + r ⊙ hn)``, ``hn = W_hn h + b_hn``)::

        dr_pre = dn_pre ⊙ hn ⊙ r(1 − r)
        dgi = [dr_pre, du_pre, dn_pre]           (gradient reaching x W_ih^T + b_ih)
        dgh = [dr_pre, du_pre, dn_pre ⊙ r]       (gradient reaching h W_hh^T + b_hh)
        dh_prev += dgh W_hh      dW_hh = dgh^T h     db_hh = Σ_batch dgh

    so the n block of ``db_hh`` is ``Σ dn_pre ⊙ r`` while that of ``db_ih`` is ``Σ dn_pre``.

    reset_after=False (``n = tanh(gi_n + (r ⊙ h) W_hn^T + b_hn)``)::

        d(rh) = dn_pre W_hn               dr_pre = d(rh) ⊙ h ⊙ r(1 − r)
        dh_prev += d(rh) ⊙ r + dr_pre W_hr + du_pre W_hz
        dW_hh = [dr_pre^T h, du_pre^T h, dn_pre^T (r ⊙ h)]     db_hh = db_ih = Σ_batch dgi

    In both cases ``dx = dgi W_ih``, ``dW_ih = dgi^T x``, ``db_ih = Σ_batch dgi``.

    ``dh`` (dL/dh_new) may be ``None`` for zero. Returns ``(dx, dh_prev, grads)``.
    """
    r, u, n, hn = cache["r"], cache["u"], cache["n"], cache["hn"]
    h, x, w_ih, w_hh = cache["h"], cache["x"], cache["w_ih"], cache["w_hh"]
    H = h.shape[1]
    dh = np.zeros_like(n) if dh is None else np.asarray(dh, dtype=n.dtype)

    # h_new = (1 − u) ⊙ n + u ⊙ h
    dn = dh * (1.0 - u)
    du = dh * (h - n)
    dh_prev = dh * u

    dn_pre = dn * (1.0 - n * n)
    du_pre = du * u * (1.0 - u)

    if cache["reset_after"]:
        # n_pre = gi_n + r ⊙ hn
        dr = dn_pre * hn
        dr_pre = dr * r * (1.0 - r)
        dgi = np.concatenate([dr_pre, du_pre, dn_pre], axis=1)
        dgh = np.concatenate([dr_pre, du_pre, dn_pre * r], axis=1)
        dh_prev = dh_prev + dgh @ w_hh
        grads = _param_grads(dgi, x, dgh, h, cache["has_b_ih"], cache["has_b_hh"])
    else:
        # n_pre = gi_n + rh W_hn^T + b_hn,  rh = r ⊙ h
        w_hr, w_hz, w_hn = w_hh[0:H], w_hh[H : 2 * H], w_hh[2 * H : 3 * H]
        drh = dn_pre @ w_hn
        dr = drh * h
        dr_pre = dr * r * (1.0 - r)
        dgi = np.concatenate([dr_pre, du_pre, dn_pre], axis=1)
        dh_prev = dh_prev + drh * r + dr_pre @ w_hr + du_pre @ w_hz
        grads = {
            "w_ih": dgi.T @ x,
            "w_hh": np.concatenate([dr_pre.T @ h, du_pre.T @ h, dn_pre.T @ cache["rh"]], axis=0),
            "b_ih": dgi.sum(axis=0) if cache["has_b_ih"] else None,
            "b_hh": dgi.sum(axis=0) if cache["has_b_hh"] else None,
        }

    dx = dgi @ w_ih
    return dx, dh_prev, grads


# ---------------------------------------------------------------------------------------------
# Plain RNN
# ---------------------------------------------------------------------------------------------


def rnn_cell_forward(x, h, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """One Elman RNN step (docs/ops.md §1.4)::

        h_new = act(x W_ih^T + b_ih + h W_hh^T + b_hh),   act ∈ {tanh, relu}

    Returns ``(h_new, cache)``.
    """
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    x, h, _, w_ih, w_hh, b_ih, b_hh = _check_cell_args(x, h, w_ih, w_hh, b_ih, b_hh, 1)

    a = _affine(x, w_ih, b_ih) + _affine(h, w_hh, b_hh)
    if nonlinearity == "tanh":
        h_new = np.tanh(a)
    else:
        h_new = np.maximum(a, 0.0)

    cache = {
        "x": x, "h": h, "w_ih": w_ih, "w_hh": w_hh,
        "has_b_ih": b_ih is not None, "has_b_hh": b_hh is not None,
        "nonlinearity": nonlinearity, "h_new": h_new,
    }  # fmt: skip
    return h_new, cache


def rnn_cell_backward(dh, cache):
    """Backward of :func:`rnn_cell_forward`::

        da = dh ⊙ (1 − h_new²)            (tanh)
        da = dh ⊙ [h_new > 0]             (relu: derivative 1 where the output is > 0, else 0)
        dx = da W_ih    dh_prev = da W_hh
        dW_ih = da^T x  dW_hh = da^T h    db_ih = db_hh = Σ_batch da

    ``dh`` may be ``None`` for zero. Returns ``(dx, dh_prev, grads)``.
    """
    h_new = cache["h_new"]
    dh = np.zeros_like(h_new) if dh is None else np.asarray(dh, dtype=h_new.dtype)
    if cache["nonlinearity"] == "tanh":
        da = dh * (1.0 - h_new * h_new)
    else:
        da = dh * (h_new > 0).astype(h_new.dtype)

    dx = da @ cache["w_ih"]
    dh_prev = da @ cache["w_hh"]
    grads = _param_grads(da, cache["x"], da, cache["h"], cache["has_b_ih"], cache["has_b_hh"])
    return dx, dh_prev, grads
