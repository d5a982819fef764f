"""Whole-sequence LSTM / GRU / RNN: forward and backward through time (BPTT).

The executable form of docs/ops.md §1.5–§1.8 (layers and directions, variable lengths, dropout,
backward through time), built as plain loops over layers, directions and time steps that call the
single-step cells of :mod:`seqkernels.reference.cells`. Clarity first: nothing here is batched
across time.

Conventions (all as in PyTorch, so results match ``torch.nn.LSTM/GRU/RNN`` and PackedSequence):

* ``x`` is sequence-major ``(T, B, I)``; the output ``y`` is ``(T, B, D*H)`` with
  ``y_t = [h_t^fwd, h_t^rev]``; ``h0``, ``c0``, ``h_n``, ``c_n`` are ``(L*D, B, H)`` indexed
  ``k*D + d`` (layer ``k``, direction ``d``; ``d = 1`` is the reverse direction).
* ``params`` is keyed exactly like a PyTorch state dict: ``weight_ih_l{k}``, ``weight_hh_l{k}``,
  ``bias_ih_l{k}``, ``bias_hh_l{k}``, with suffix ``_reverse`` for ``d = 1``. The bias keys are
  absent for ``bias=False``.
* LSTM with projections (torch's ``proj_size = P``, ``0 < P < H``): ``params`` also holds
  ``weight_hr_l{k}`` ``(P, H)`` and ``weight_hh_l{k}`` is ``(4H, P)``; then ``h_t = W_hr (o ⊙ tanh c_t)``
  has ``P`` entries, so ``y`` is ``(T, B, D*P)``, ``h0``/``h_n`` are ``(L*D, B, P)`` and layer ``k > 0``
  reads ``D*P`` inputs, while ``c0``/``c_n`` stay ``(L*D, B, H)``. The presence of ``weight_hr_l0``
  is what selects this.
* ``lengths[b]`` in ``1..T``: the forward direction runs ``t = 0 .. lengths[b]-1``; the reverse
  direction runs ``t = lengths[b]-1 .. 0`` starting from ``h0``. Steps ``t >= lengths[b]`` give
  ``y[t, b] = 0`` and leave the state unchanged, so ``h_n[b]`` is the state after the last valid
  step. In this code a step simply runs the cell on the rows of the batch that are still active.
* Dropout (training only) multiplies layer ``k``'s output by ``dropout_masks[k]`` (already scaled
  by ``1/(1-p)``) before it feeds layer ``k+1``; never after the last layer, never on ``h_n``.
* Everything is computed in the dtype of ``x``; parameters and initial states are cast to it.
"""

from __future__ import annotations

import numpy as np

from .cells import (
    gru_cell_backward,
    gru_cell_forward,
    lstm_cell_backward,
    lstm_cell_forward,
    rnn_cell_backward,
    rnn_cell_forward,
)

__all__ = ["forward", "backward", "init_params", "param_names", "GATES"]

#: Number of gate blocks per mode (rows of ``weight_ih`` are ``GATES[mode] * H``).
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


# ---------------------------------------------------------------------------------------------
# Parameter names and initialisation
# ---------------------------------------------------------------------------------------------


def _check_mode(mode) -> str:
    if not isinstance(mode, str) or mode not in GATES:
        raise ValueError(f"mode must be one of 'lstm', 'gru', 'rnn', got {mode!r}")
    return mode


def _suffix(layer: int, direction: int) -> str:
    return f"_l{layer}" + ("_reverse" if direction == 1 else "")


def param_names(num_layers: int = 1, bidirectional: bool = False, bias: bool = True, proj_size: int = 0) -> list[str]:
    """The state-dict keys of a PyTorch recurrent module, in PyTorch's order (``weight_hr`` last
    in each direction when ``proj_size > 0``)."""
    names = []
    for k in range(num_layers):
        for d in range(2 if bidirectional else 1):
            s = _suffix(k, d)
            names += [f"weight_ih{s}", f"weight_hh{s}"]
            if bias:
                names += [f"bias_ih{s}", f"bias_hh{s}"]
            if proj_size:
                names.append(f"weight_hr{s}")
    return names


def init_params(
    mode,
    input_size,
    hidden_size,
    num_layers=1,
    bidirectional=False,
    bias=True,
    rng=None,
    dtype=np.float64,
    proj_size=0,
):
    """Random parameters keyed like PyTorch's state dict, drawn as PyTorch does: every entry
    i.i.d. ``U(-1/sqrt(H), 1/sqrt(H))``.

    ``rng`` is a ``numpy.random.Generator``, a seed, or ``None`` (fresh entropy). Layer ``k > 0``
    has input size ``D*H`` (``D*P`` with ``proj_size = P > 0``, LSTM only, ``P < H``).
    """
    mode = _check_mode(mode)
    for name, v in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    G, H = GATES[mode], int(hidden_size)
    P = _check_proj_size(mode, proj_size, H)
    R = P or H  # the size of h
    D = 2 if bidirectional else 1
    bound = 1.0 / np.sqrt(H)
    params = {}
    for k in range(num_layers):
        in_k = int(input_size) if k == 0 else D * R
        for d in range(D):
            s = _suffix(k, d)
            shapes = {f"weight_ih{s}": (G * H, in_k), f"weight_hh{s}": (G * H, R)}
            if bias:
                shapes[f"bias_ih{s}"] = (G * H,)
                shapes[f"bias_hh{s}"] = (G * H,)
            if P:
                shapes[f"weight_hr{s}"] = (P, H)
            for name, shape in shapes.items():
                params[name] = rng.uniform(-bound, bound, size=shape).astype(dtype)
    return params


# ---------------------------------------------------------------------------------------------
# Argument checking
# ---------------------------------------------------------------------------------------------


def _check_proj_size(mode, proj_size, H) -> int:
    if int(proj_size) != proj_size or proj_size < 0:
        raise ValueError(f"proj_size must be a non-negative integer, got {proj_size!r}")
    if proj_size and mode != "lstm":
        raise ValueError(f"proj_size applies to mode 'lstm' only, got proj_size={proj_size} with mode {mode!r}")
    if proj_size >= H:
        raise ValueError(f"proj_size must be smaller than hidden_size, got proj_size={proj_size}, hidden_size={H}")
    return int(proj_size)


def _check_params(mode, params, input_size, num_layers, D, dtype):
    """Validate ``params`` and return ``(H, P, has_bias, cast_params)`` (``P = 0``: no projection)."""
    if not isinstance(params, dict):
        raise ValueError("params must be a dict keyed like a PyTorch state dict")
    G = GATES[mode]
    if "weight_hh_l0" not in params:
        raise ValueError("params is missing 'weight_hh_l0'")
    w = np.asarray(params["weight_hh_l0"])
    if "weight_hr_l0" in params:  # LSTM with projections: weight_hh is (4H, P)
        hr = np.asarray(params["weight_hr_l0"])
        if w.ndim != 2 or hr.ndim != 2 or w.shape[0] != G * hr.shape[1] or w.shape[1] != hr.shape[0]:
            raise ValueError(
                f"params['weight_hh_l0'] {w.shape} and params['weight_hr_l0'] {hr.shape} must have "
                f"shapes ({G}*H, P) and (P, H)"
            )
        H, P = hr.shape[1], _check_proj_size(mode, hr.shape[0], hr.shape[1])
    else:
        if w.ndim != 2 or w.shape[0] != G * w.shape[1]:
            raise ValueError(f"params['weight_hh_l0'] must have shape ({G}*H, H) for mode {mode!r}, got {w.shape}")
        H, P = w.shape[1], 0
    R = P or H
    has_bias = "bias_ih_l0" in params
    expected = param_names(num_layers, D == 2, has_bias, P)
    missing = [n for n in expected if n not in params]
    if missing:
        raise ValueError(f"params is missing {missing} (all or none of the bias keys must be given)")
    extra = sorted(set(params) - set(expected))
    if extra:
        raise ValueError(f"params has unexpected keys {extra} for num_layers={num_layers}, bidirectional={D == 2}")
    out = {}
    for k in range(num_layers):
        in_k = input_size if k == 0 else D * R
        for d in range(D):
            s = _suffix(k, d)
            shapes = {f"weight_ih{s}": (G * H, in_k), f"weight_hh{s}": (G * H, R)}
            if has_bias:
                shapes[f"bias_ih{s}"] = (G * H,)
                shapes[f"bias_hh{s}"] = (G * H,)
            if P:
                shapes[f"weight_hr{s}"] = (P, H)
            for name, shape in shapes.items():
                v = np.asarray(params[name])
                if v.shape != shape:
                    raise ValueError(f"params[{name!r}] must have shape {shape}, got {v.shape}")
                out[name] = v.astype(dtype, copy=False)
    return H, P, has_bias, out


def _check_state(v, name, shape, dtype):
    if v is None:
        return np.zeros(shape, dtype=dtype)
    v = np.asarray(v)
    if v.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {v.shape}")
    return v.astype(dtype, copy=False)


def _check_lengths(lengths, T, B):
    if lengths is None:
        return np.full(B, T, dtype=np.int64)
    lengths = np.asarray(lengths)
    if lengths.shape != (B,):
        raise ValueError(f"lengths must have shape ({B},), got {lengths.shape}")
    if lengths.dtype.kind not in "iu":
        if lengths.dtype.kind == "f" and np.all(lengths == np.round(lengths)):
            lengths = lengths.astype(np.int64)
        else:
            raise ValueError(f"lengths must be integers, got dtype {lengths.dtype}")
    if B and (lengths.min() < 1 or lengths.max() > T):
        raise ValueError(f"lengths must each be in 1..{T} (T), got {lengths.tolist()}")
    return lengths.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# One direction of one layer
# ---------------------------------------------------------------------------------------------


def _step_rows(s: int, direction: int, lengths: np.ndarray):
    """Rows active at step ``s`` of a direction, and the time index each of them reads.

    Forward direction: row ``b`` reads ``t = s``; reverse: ``t = lengths[b] - 1 - s``.
    A row is active while ``s < lengths[b]``.
    """
    rows = np.nonzero(s < lengths)[0]
    t = np.full(rows.shape, s, dtype=np.int64) if direction == 0 else lengths[rows] - 1 - s
    return rows, t


def _run_direction(mode, inp, w, h0, c0, lengths, direction, nonlinearity, reset_after):
    """Run one direction of one layer over the whole sequence.

    ``inp`` is ``(T, B, I_k)``; returns ``(out (T, B, R), h_last, c_last, steps)`` where
    ``steps`` is a list of ``(rows, t, cell_cache)``, one per step that had an active row
    (``R`` = the size of ``h``: ``P`` with projections, else ``H``).
    """
    T, B, _ = inp.shape
    R = h0.shape[1]
    out = np.zeros((T, B, R), dtype=inp.dtype)
    h = h0.copy()
    c = None if c0 is None else c0.copy()
    steps = []
    for s in range(T):
        rows, t = _step_rows(s, direction, lengths)
        if rows.size == 0:
            break  # lengths only shrink the active set as s grows
        x_s = inp[t, rows]  # (n_active, I_k)
        weights = (w["ih"], w["hh"], w["b_ih"], w["b_hh"])
        if mode == "lstm":
            h_new, c_new, cache = lstm_cell_forward(x_s, h[rows], c[rows], *weights, w_hr=w.get("hr"))
            c[rows] = c_new
        elif mode == "gru":
            h_new, cache = gru_cell_forward(x_s, h[rows], *weights, reset_after=reset_after)
        else:
            h_new, cache = rnn_cell_forward(x_s, h[rows], *weights, nonlinearity=nonlinearity)
        h[rows] = h_new
        out[t, rows] = h_new
        steps.append((rows, t, cache))
    return out, h, c, steps


def _backward_direction(mode, steps, dout, dh_last, dc_last, in_shape, dtype):
    """BPTT through one direction of one layer.

    ``dout`` is dL/d(out) ``(T, B, H)``; ``dh_last``/``dc_last`` the gradients reaching the final
    state. Runs the steps in reverse order; at each step the total gradient reaching the new state
    of an active row is the carried gradient plus ``dout`` at the time it wrote. Inactive rows are
    untouched, so their carried gradient passes through unchanged and ``dout`` at padded steps is
    never read. Returns ``(dinp, dh0, dc0, grads)`` with ``grads`` keyed ``w_ih, w_hh, b_ih, b_hh``.
    """
    dinp = np.zeros(in_shape, dtype=dtype)
    dh = dh_last.copy()
    dc = None if dc_last is None else dc_last.copy()
    grads = None
    for rows, t, cache in reversed(steps):
        dh_step = dh[rows] + dout[t, rows]
        if mode == "lstm":
            dx, dh_prev, dc_prev, g = lstm_cell_backward(dh_step, dc[rows], cache)
            dc[rows] = dc_prev
        elif mode == "gru":
            dx, dh_prev, g = gru_cell_backward(dh_step, cache)
        else:
            dx, dh_prev, g = rnn_cell_backward(dh_step, cache)
        dh[rows] = dh_prev
        dinp[t, rows] += dx
        if grads is None:
            grads = dict(g)
        else:
            grads = {key: None if v is None else grads[key] + v for key, v in g.items()}
    return dinp, dh, dc, grads


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def forward(
    mode,
    x,
    params,
    *,
    num_layers=1,
    bidirectional=False,
    h0=None,
    c0=None,
    lengths=None,
    nonlinearity="tanh",
    reset_after=True,
    dropout_masks=None,
):
    """Run a (multi-layer, optionally bidirectional) LSTM / GRU / RNN over a sequence.

    docs/ops.md §1. Arguments:

    * ``mode``: ``"lstm"``, ``"gru"`` or ``"rnn"``.
    * ``x``: ``(T, B, I)`` floating array; its dtype is the compute dtype.
    * ``params``: dict keyed like PyTorch's state dict (see the module docstring).
    * ``h0``, ``c0``: ``(L*D, B, H)`` or ``None`` for zeros; ``c0`` only for LSTM. With projections
      (``weight_hr_l*`` in ``params``) ``h0`` is ``(L*D, B, P)``.
    * ``lengths``: ``None`` (all ``T``) or an int array ``(B,)`` with entries in ``1..T``.
    * ``nonlinearity``: ``"tanh"`` or ``"relu"`` (RNN only).
    * ``reset_after``: GRU variant (``True`` = PyTorch / cuDNN).
    * ``dropout_masks``: ``None`` or ``num_layers - 1`` arrays ``(T, B, D*H)``, already scaled.

    Returns ``(y, h_n, c_n, cache)``: ``y`` ``(T, B, D*H)`` (zero at padded steps; ``D*P`` with
    projections), ``h_n`` ``(L*D, B, H)`` (``P``), ``c_n`` ``(L*D, B, H)`` for LSTM and ``None``
    otherwise, and ``cache`` for :func:`backward`.
    """
    mode = _check_mode(mode)
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"x must be a floating-point array, got dtype {x.dtype}")
    if x.ndim != 3:
        raise ValueError(f"x must have shape (T, B, I), got shape {x.shape}")
    T, B, I = x.shape
    if T < 1 or B < 1:
        raise ValueError(f"x must have at least one time step and one sequence (T, B >= 1), got shape {x.shape}")
    if int(num_layers) != num_layers or num_layers < 1:
        raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
    num_layers = int(num_layers)
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    if mode != "rnn" and nonlinearity != "tanh":
        raise ValueError(f"nonlinearity applies to mode 'rnn' only, got {nonlinearity!r} with mode {mode!r}")
    dtype = x.dtype
    D = 2 if bidirectional else 1
    L = num_layers

    H, P, has_bias, p = _check_params(mode, params, I, L, D, dtype)
    R = P or H  # the size of h and of each direction's output
    h0 = _check_state(h0, "h0", (L * D, B, R), dtype)
    if mode == "lstm":
        c0 = _check_state(c0, "c0", (L * D, B, H), dtype)
    elif c0 is not None:
        raise ValueError(f"c0 is only used by mode 'lstm', got it with mode {mode!r}")
    lengths = _check_lengths(lengths, T, B)
    if dropout_masks is not None:
        if len(dropout_masks) != L - 1:
            raise ValueError(f"dropout_masks must hold num_layers - 1 = {L - 1} arrays, got {len(dropout_masks)}")
        masks = []
        for k, m in enumerate(dropout_masks):
            m = np.asarray(m)
            if m.shape != (T, B, D * R):
                raise ValueError(f"dropout_masks[{k}] must have shape {(T, B, D * R)}, got {m.shape}")
            masks.append(m.astype(dtype, copy=False))
        dropout_masks = masks

    h_n = np.zeros((L * D, B, R), dtype=dtype)
    c_n = np.zeros((L * D, B, H), dtype=dtype) if mode == "lstm" else None
    layer_inputs = []  # the input each layer saw, (T, B, I_k)
    layer_steps = []  # layer_steps[k][d] = steps of _run_direction
    inp = x
    for k in range(L):
        layer_inputs.append(inp)
        outs, steps_k = [], []
        for d in range(D):
            s = _suffix(k, d)
            w = {
                "ih": p[f"weight_ih{s}"],
                "hh": p[f"weight_hh{s}"],
                "b_ih": p.get(f"bias_ih{s}"),
                "b_hh": p.get(f"bias_hh{s}"),
                "hr": p.get(f"weight_hr{s}"),
            }
            idx = k * D + d
            out, h_last, c_last, steps = _run_direction(
                mode, inp, w, h0[idx], None if c0 is None else c0[idx], lengths, d, nonlinearity, reset_after
            )
            outs.append(out)
            steps_k.append(steps)
            h_n[idx] = h_last
            if mode == "lstm":
                c_n[idx] = c_last
        layer_steps.append(steps_k)
        y = np.concatenate(outs, axis=2)  # (T, B, D*H): [fwd, rev]
        if k < L - 1 and dropout_masks is not None:
            inp = y * dropout_masks[k]
        else:
            inp = y

    cache = {
        "mode": mode, "dtype": dtype, "T": T, "B": B, "H": H, "P": P, "L": L, "D": D,
        "has_bias": has_bias, "layer_inputs": layer_inputs, "layer_steps": layer_steps,
        "dropout_masks": dropout_masks,
    }  # fmt: skip
    return y, h_n, c_n, cache


def backward(cache, dy, dh_n=None, dc_n=None):
    """Backward through time of :func:`forward` (docs/ops.md §1.8).

    * ``dy``: dL/dy ``(T, B, D*H)``; entries at padded steps (``t >= lengths[b]``) are ignored
      because ``y`` is the constant 0 there.
    * ``dh_n``, ``dc_n``: dL/dh_n, dL/dc_n ``(L*D, B, H)`` or ``None`` for zeros (``dc_n`` LSTM only);
      with projections ``dy`` is ``(T, B, D*P)`` and ``dh_n`` ``(L*D, B, P)``.

    Layers are processed last to first. Layer ``k``'s output gradient is ``dy`` for the last
    layer, otherwise ``dinput_{k+1} ⊙ dropout_masks[k]``. Within a layer each direction runs BPTT
    independently and their input gradients add up.

    Returns ``(dx, dh0, dc0, grads)``: ``dx`` ``(T, B, I)``, ``dh0`` ``(L*D, B, H)``, ``dc0`` the
    same for LSTM and ``None`` otherwise, and ``grads`` keyed like ``params``.
    """
    mode, dtype = cache["mode"], cache["dtype"]
    T, B, H, P, L, D = cache["T"], cache["B"], cache["H"], cache["P"], cache["L"], cache["D"]
    R = P or H
    dy = np.asarray(dy)
    if dy.shape != (T, B, D * R):
        raise ValueError(f"dy must have shape {(T, B, D * R)}, got shape {dy.shape}")
    dy = dy.astype(dtype, copy=False)
    dh_n = _check_state(dh_n, "dh_n", (L * D, B, R), dtype)
    if mode == "lstm":
        dc_n = _check_state(dc_n, "dc_n", (L * D, B, H), dtype)
    elif dc_n is not None:
        raise ValueError(f"dc_n is only used by mode 'lstm', got it with mode {mode!r}")

    dh0 = np.zeros((L * D, B, R), dtype=dtype)
    dc0 = np.zeros((L * D, B, H), dtype=dtype) if mode == "lstm" else None
    grads = {}
    dout = dy  # gradient reaching the output of the current layer
    for k in reversed(range(L)):
        inp = cache["layer_inputs"][k]
        dinp = np.zeros(inp.shape, dtype=dtype)
        for d in range(D):
            idx = k * D + d
            di, dh_first, dc_first, g = _backward_direction(
                mode,
                cache["layer_steps"][k][d],
                dout[:, :, d * R : (d + 1) * R],
                dh_n[idx],
                None if dc_n is None else dc_n[idx],
                inp.shape,
                dtype,
            )
            dinp += di
            dh0[idx] = dh_first
            if mode == "lstm":
                dc0[idx] = dc_first
            s = _suffix(k, d)
            grads[f"weight_ih{s}"] = g["w_ih"]
            grads[f"weight_hh{s}"] = g["w_hh"]
            if cache["has_bias"]:
                grads[f"bias_ih{s}"] = g["b_ih"]
                grads[f"bias_hh{s}"] = g["b_hh"]
            if P:
                grads[f"weight_hr{s}"] = g["w_hr"]
        if k > 0:
            masks = cache["dropout_masks"]
            dout = dinp * masks[k - 1] if masks is not None else dinp
        else:
            dx = dinp
    # order the dict like a PyTorch state dict
    grads = {name: grads[name] for name in param_names(L, D == 2, cache["has_bias"], P)}
    return dx, dh0, dc0, grads
