"""Recurrent-layer benchmark: seqkernels against torch.nn (CPU; with cuDNN under ``--device cuda``, never
run on a GPU yet), optionally a plain NumPy float32 loop.

    python bench/rnn.py [--quick] [--cell lstm|gru|rnn] [--shape CELL,B,H,T ...] [--repeats N]
                        [--threads N] [--openblas-env current|default|machine|both] [--contend N]
                        [--numpy] [--torch-native] [--schedule blocks|interleaved] [--device cpu|cuda]
                        [--json PATH]
    seqkernels bench rnn ...            (the same, from an installed package)

Modes: ``fwd`` is inference (``layer.eval()``, ``torch.no_grad()``); ``fwd+bwd`` is training: a
forward, then the backward of a fixed random ``dy`` (torch: ``y.backward(dy)`` with ``requires_grad``
on x and the parameters). Cells: LSTM, GRU (PyTorch's form), the Elman RNN with tanh, and LSTMP, the
LSTM with projections (``proj_size = H/4``, e.g. H=512 P=128; torch.nn.LSTM(proj_size) on the torch
side). Before timing, every variant is checked against torch (or, without torch, against the NumPy
loop, or for LSTMP the seqkernels reference, in float64): y, and for training dx and dW_hh.

``--torch-native`` (CPU) adds torch.nn with oneDNN switched off (``torch.backends.mkldnn.flags(enabled=
False)``): torch's own ATen kernels. By default torch's CPU LSTM runs through oneDNN, which for a
one-step call (decoding) costs several times torch's own kernel; this column shows both.

Every row shows GFLOP/s and the percentage of this machine's float32 FMA peak, measured at the start
on the same number of threads (``harness.measure_fma_peak``). ``--openblas-env both`` adds the rows
of the other OpenBLAS environment from a child process; ``--contend N`` times every row again while N
busy processes compete for the CPUs. Rows at B = 1 get more warm-up and repeats (their timings swing).

FLOPs counted (matrix products only; the pointwise gate math is ignored), G gates (LSTM 4, GRU 3, RNN 1):
    forward  = 2·T·B·G·H·(I+H)     input projection (I) plus recurrent product (H), every step
               (LSTMP: 2·T·B·(4·H·(I+P) + P·H), the recurrent product over P and the projection)
    fwd+bwd ≈ 3 × forward          backward: dX and dW_ih, dh and dW_hh — twice the forward's products

The recurrence alone: CPU forward rows at B >= 16 also time our layer with input size 1, where the
input projection is negligible, so what is left is the per-step recurrent micro-kernel with the gate
math in its epilogue and the steps' synchronisation; its rate counts 2·T·B·G·H·H, with projections
2·T·B·(G·H·P + P·H) ("recurrence % peak"). ``--no-recurrence`` skips it.
"""

from __future__ import annotations

import functools
import os
import sys
import time

import numpy as np

from ..reference import GATES
from . import harness as hz

CELLS = ("lstm", "gru", "rnn", "lstmp")
PROJ_DIVISOR = 4  # LSTMP rows: proj_size = H / 4
FULL_SHAPES = [(c, b, h, t) for c in CELLS[:3] for b in (1, 16, 64) for h in (256, 512) for t in (50, 100)] + [
    ("lstmp", b, 512, 50) for b in (1, 16, 64)
]
QUICK_SHAPES = [
    ("lstm", 1, 256, 100),
    ("lstm", 16, 256, 100),
    ("gru", 16, 256, 100),
    ("rnn", 16, 256, 100),
    ("lstmp", 16, 512, 50),
]
MODES = ("fwd", "fwd+bwd")
# The GPU shapes of the CUDA issue (I = H): LSTM B x H at T = 100, one large-H LSTM, GRU.
CUDA_SHAPES = (
    [("lstm", b, h, 100) for h in (512, 1024) for b in (1, 4, 16, 64, 256)]
    + [("lstm", 32, 2048, 25)]
    + [("gru", b, h, 100) for h in (512, 1024) for b in (1, 16, 128)]
)
CUDA_QUICK_SHAPES = [("lstm", 1, 512, 100), ("lstm", 64, 1024, 100), ("gru", 16, 512, 100)]
TOL = 1e-4  # float32: max |error| relative to the baseline's max magnitude


def proj_size(cell, H) -> int:
    """The projection size of a row: H / PROJ_DIVISOR for LSTMP, else 0."""
    return H // PROJ_DIVISOR if cell == "lstmp" else 0


def gates(cell) -> int:
    return GATES["lstm" if cell == "lstmp" else cell]


def flops(cell, B, H, T, I, mode) -> float:
    P = proj_size(cell, H)
    fwd = 2.0 * T * B * (gates(cell) * H * (I + (P or H)) + P * H)
    return fwd if mode == "fwd" else 3.0 * fwd


# ---- the plain NumPy loop ----------------------------------------------------------------------
# One input-projection matmul for all steps, then per step h @ W_hh.T and the gate math; BPTT by
# hand with the weight and input gradients as single matmuls over all T·B rows. PyTorch's equations
# and gate order (LSTM i, f, g, o; GRU r, z, n with the reset applied after the recurrent product).
# Generic in dtype: in float64 it is the baseline when torch is missing.
def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def np_lstm_forward(p, x):
    T, B, _ = x.shape
    w_ih, w_hh = p["weight_ih_l0"], p["weight_hh_l0"]
    H = w_hh.shape[1]
    xp = (x.reshape(T * B, -1) @ w_ih.T + (p["bias_ih_l0"] + p["bias_hh_l0"])).reshape(T, B, 4 * H)
    acts, cs = np.empty_like(xp), np.zeros((T + 1, B, H), x.dtype)
    y, tcs = np.empty((T, B, H), x.dtype), np.empty((T, B, H), x.dtype)
    h = np.zeros((B, H), x.dtype)
    for t in range(T):
        a = xp[t] + h @ w_hh.T
        acts[t, :, : 2 * H] = _sigmoid(a[:, : 2 * H])
        acts[t, :, 2 * H : 3 * H] = np.tanh(a[:, 2 * H : 3 * H])
        acts[t, :, 3 * H :] = _sigmoid(a[:, 3 * H :])
        i, f, g, o = np.split(acts[t], 4, axis=1)
        cs[t + 1] = f * cs[t] + i * g
        tcs[t] = np.tanh(cs[t + 1])
        h = y[t] = o * tcs[t]
    return y, (acts, cs, tcs)


def np_lstm_backward(p, x, y, cache, dy):
    acts, cs, tcs = cache
    T, B, H = y.shape
    w_hh = p["weight_hh_l0"]
    da = np.empty_like(acts)
    dh, dc = np.zeros((B, H), x.dtype), np.zeros((B, H), x.dtype)
    for t in reversed(range(T)):
        i, f, g, o = np.split(acts[t], 4, axis=1)
        dh = dh + dy[t]
        dc = dc + dh * o * (1 - tcs[t] * tcs[t])
        da[t, :, :H] = dc * g * i * (1 - i)
        da[t, :, H : 2 * H] = dc * cs[t] * f * (1 - f)
        da[t, :, 2 * H : 3 * H] = dc * i * (1 - g * g)
        da[t, :, 3 * H :] = dh * tcs[t] * o * (1 - o)
        dc = dc * f
        dh = da[t] @ w_hh
    return _np_param_grads(p, x, y, da, da)


def np_gru_forward(p, x):
    T, B, _ = x.shape
    w_ih, w_hh, b_hh = p["weight_ih_l0"], p["weight_hh_l0"], p["bias_hh_l0"]
    H = w_hh.shape[1]
    xp = (x.reshape(T * B, -1) @ w_ih.T + p["bias_ih_l0"]).reshape(T, B, 3 * H)
    rzs, ns, hns = np.empty((T, B, 2 * H), x.dtype), np.empty((T, B, H), x.dtype), np.empty((T, B, H), x.dtype)
    y = np.empty((T, B, H), x.dtype)
    h = np.zeros((B, H), x.dtype)
    for t in range(T):
        hp = h @ w_hh.T + b_hh
        rzs[t] = _sigmoid(xp[t, :, : 2 * H] + hp[:, : 2 * H])
        hns[t] = hp[:, 2 * H :]
        ns[t] = np.tanh(xp[t, :, 2 * H :] + rzs[t, :, :H] * hns[t])
        h = y[t] = ns[t] + rzs[t, :, H:] * (h - ns[t])  # (1 - z)·n + z·h
    return y, (rzs, ns, hns)


def np_gru_backward(p, x, y, cache, dy):
    rzs, ns, hns = cache
    T, B, H = y.shape
    w_hh = p["weight_hh_l0"]
    dxp, dhp = np.empty((T, B, 3 * H), x.dtype), np.empty((T, B, 3 * H), x.dtype)
    dh = np.zeros((B, H), x.dtype)
    for t in reversed(range(T)):
        r, z, n = rzs[t, :, :H], rzs[t, :, H:], ns[t]
        h_prev = y[t - 1] if t else np.zeros_like(dh)
        dh = dh + dy[t]
        dan = dh * (1 - z) * (1 - n * n)
        dxp[t, :, :H] = dan * hns[t] * r * (1 - r)
        dxp[t, :, H : 2 * H] = dh * (h_prev - n) * z * (1 - z)
        dxp[t, :, 2 * H :] = dan
        dhp[t, :, : 2 * H] = dxp[t, :, : 2 * H]
        dhp[t, :, 2 * H :] = dan * r
        dh = dh * z + dhp[t] @ w_hh
    return _np_param_grads(p, x, y, dxp, dhp)


def _np_param_grads(p, x, y, dxp, dhp):
    """dx and the weight/bias gradients from the pre-activation gradients of all steps at once."""
    T, B, H = y.shape
    dxp, dhp = dxp.reshape(T * B, -1), dhp.reshape(T * B, -1)
    h_prev = np.concatenate([np.zeros((1, B, H), y.dtype), y[:-1]]).reshape(T * B, H)
    grads = {
        "weight_ih_l0": dxp.T @ x.reshape(T * B, -1),
        "weight_hh_l0": dhp.T @ h_prev,
        "bias_ih_l0": dxp.sum(0),
        "bias_hh_l0": dhp.sum(0),
    }
    return (dxp @ p["weight_ih_l0"]).reshape(x.shape), grads


def np_rnn_forward(p, x):
    T, B, _ = x.shape
    w_hh = p["weight_hh_l0"]
    xp = (x.reshape(T * B, -1) @ p["weight_ih_l0"].T + (p["bias_ih_l0"] + p["bias_hh_l0"])).reshape(T, B, -1)
    y = np.empty_like(xp)
    h = np.zeros_like(xp[0])
    for t in range(T):
        h = y[t] = np.tanh(xp[t] + h @ w_hh.T)
    return y, None


def np_rnn_backward(p, x, y, cache, dy):
    T, B, H = y.shape
    w_hh = p["weight_hh_l0"]
    da = np.empty_like(y)
    dh = np.zeros((B, H), x.dtype)
    for t in reversed(range(T)):
        da[t] = (dh + dy[t]) * (1 - y[t] * y[t])
        dh = da[t] @ w_hh
    return _np_param_grads(p, x, y, da, da)


NUMPY_CELLS = {
    "lstm": (np_lstm_forward, np_lstm_backward),
    "gru": (np_gru_forward, np_gru_backward),
    "rnn": (np_rnn_forward, np_rnn_backward),
}
# The layer classes of each library: seqkernels.nn.<name>, torch.nn.<name>; RNN is the tanh form.
LAYER_CLASS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN", "lstmp": "LSTM"}


def layer_sizes(cell, params) -> tuple:
    """(hidden_size, {"proj_size": P} or {}) of the layer that ``params`` belong to."""
    H = params["weight_hh_l0"].shape[0] // gates(cell)
    return H, ({"proj_size": params["weight_hr_l0"].shape[0]} if "weight_hr_l0" in params else {})


def reference_baseline(cell, params, x, dy, train):
    """The float64 seqkernels reference (the baseline for LSTMP rows when torch is missing)."""
    from .. import reference

    p = {k: v.astype(np.float64) for k, v in params.items()}
    y, _, _, cache = reference.forward("lstm" if cell == "lstmp" else cell, x.astype(np.float64), p)
    if not train:
        return {"y": y}
    dx, _, _, grads = reference.backward(cache, dy.astype(np.float64))
    return {"y": y, "dx": dx, "dW_hh": grads["weight_hh_l0"]}


# ---- variants: each returns fn() -> {"y": ..., ["dx": ..., "dW_hh": ...]} as NumPy arrays -------
def make_ours(cell, params, x, dy, train, threads, device="cpu"):
    import seqkernels as sk

    T, B, I = x.shape
    H, proj = layer_sizes(cell, params)
    layer = getattr(sk.nn, LAYER_CLASS[cell])(I, H, num_threads=threads, **proj)
    layer.load_state_dict(params)
    if device == "cuda":
        import cupy

        layer.to("cuda")
        x, dy = cupy.asarray(x), cupy.asarray(dy)
    if not train:
        layer.eval()
        return lambda: {"y": layer(x)[0]}
    layer.train()

    def fn():
        y, _ = layer(x)
        dx, _ = layer.backward(dy)
        return {"y": y, "dx": dx, "dW_hh": layer.grads["weight_hh_l0"]}

    return fn


def make_torch(cell, params, x, dy, train, threads, device="cpu", tf32=False, onednn=True):
    """torch.nn on ``device``; on CUDA that is cuDNN, with TF32 allowed only when ``tf32``. On the CPU
    with ``onednn=False``, torch's own kernels (oneDNN switched off around each call)."""
    import contextlib

    import torch

    if device == "cpu":
        torch.set_num_threads(threads)
    T, B, I = x.shape
    H, proj = layer_sizes(cell, params)
    if proj:  # torch.nn.LSTM(proj_size) warns that oneDNN cannot run it, then uses its own loop
        import warnings

        warnings.filterwarnings("ignore", "LSTM with projections is not supported with oneDNN")
    m = getattr(torch.nn, LAYER_CLASS[cell])(I, H, **proj).to(device)
    m.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    xt, dyt = torch.from_numpy(x).to(device), torch.from_numpy(dy).to(device)
    if onednn:
        backend = contextlib.nullcontext
    else:
        import warnings

        # (setting the flags also sets oneDNN's TF32 switch, which warns on builds without Intel GPUs)
        warnings.filterwarnings("ignore", "TF32 acceleration on top of oneDNN")

        def backend():
            return torch.backends.mkldnn.flags(enabled=False)

    if not train:
        m.eval()

        def fwd():
            with torch.no_grad(), torch.backends.cudnn.flags(allow_tf32=tf32), backend():
                return {"y": m(xt)[0]}

        return fwd
    m.train()
    xt = xt.clone().requires_grad_(True)

    def fn():
        xt.grad = None
        m.zero_grad(set_to_none=True)
        with torch.backends.cudnn.flags(allow_tf32=tf32), backend():
            y, _ = m(xt)
            y.backward(dyt)
        return {"y": y.detach(), "dx": xt.grad, "dW_hh": m.weight_hh_l0.grad}

    return fn


def make_numpy(cell, params, x, dy, train, threads, dtype=np.float32):
    fwd, bwd = NUMPY_CELLS[cell]
    p = {k: v.astype(dtype) for k, v in params.items()}
    x, dy = x.astype(dtype), dy.astype(dtype)
    if not train:
        return lambda: {"y": fwd(p, x)[0]}

    def fn():
        y, cache = fwd(p, x)
        dx, grads = bwd(p, x, y, cache, dy)
        return {"y": y, "dx": dx, "dW_hh": grads["weight_hh_l0"]}

    return fn


# ---- CUDA variants: CuPy arrays into our layer, CUDA tensors into torch.nn (cuDNN) ---------------
def make_ours_cuda(cell, params, x, dy, train, threads):
    return make_ours(cell, params, x, dy, train, threads, device="cuda")


def _make_torch_cuda(tf32):
    return functools.partial(make_torch, device="cuda", tf32=tf32)


def variants(device, numpy_loop=True, torch_native=False):
    """``{name: factory}`` for a device. On the CPU: our layer, torch.nn when installed (with
    ``torch_native`` also torch.nn without oneDNN, "torch_native"), and the NumPy loop when
    ``numpy_loop``. On CUDA: our layer on CuPy arrays, and torch.nn (cuDNN) in fp32 with TF32 off
    ("torch") and on ("torch_tf32"); timed with CUDA events."""
    if device == "cuda":
        import seqkernels

        try:
            import torch
        except ImportError:
            raise SystemExit("--device cuda compares against torch.nn with cuDNN: install torch with CUDA") from None
        if not (seqkernels.cuda_available() and torch.cuda.is_available()):
            raise SystemExit("--device cuda: needs a GPU, CuPy, torch with CUDA and seqkernels built with CUDA")
        return {"ours": make_ours_cuda, "torch": _make_torch_cuda(False), "torch_tf32": _make_torch_cuda(True)}
    out = {"ours": make_ours}
    try:
        import torch  # noqa: F401

        out["torch"] = make_torch
        if torch_native:
            out["torch_native"] = functools.partial(make_torch, onednn=False)
    except ImportError:
        pass
    if numpy_loop:
        out["numpy"] = make_numpy
    return out


# ---- the run -----------------------------------------------------------------------------------
def timing_plan(B: int, repeats: int, quick: bool = False) -> dict:
    """Warm-up, repeats and minimum time per variant: more at B = 1, whose runs are short and swing."""
    if B == 1:
        return {"warmup": 5, "repeats": 3 * repeats, "min_time": 0.5 if quick else 1.5}
    return {"warmup": 1, "repeats": repeats, "min_time": 0.2 if quick else 0.3}


def _time(fns, plan, schedule, timer, sync):
    if schedule == "interleaved":
        return hz.time_interleaved(
            fns, repeats=plan["repeats"], warmup=plan["warmup"], min_time=plan["min_time"], timer=timer, sync=sync
        )
    return hz.time_blocks(
        fns, repeats=plan["repeats"], warmup=plan["warmup"], rounds=2, min_time=plan["min_time"], timer=timer, sync=sync
    )


def time_recurrence(cell, params, x, threads, plan, schedule="blocks", timer=hz.perf_counter_timer, peak_gflops=None):
    """Our CPU forward with input size 1: the recurrence without a meaningful input projection (the
    micro-kernel, its gate-math epilogue and the steps' synchronisation). Returns row fields."""
    T, B, _ = x.shape
    H = params["weight_hh_l0"].shape[0] // gates(cell)  # (G·H, P) with projections, so not shape[1]
    narrow = dict(params, weight_ih_l0=np.ascontiguousarray(params["weight_ih_l0"][:, :1]))
    fn = make_ours(cell, narrow, np.ascontiguousarray(x[:, :, :1]), None, False, threads)
    ms = _time({"recurrence": fn}, plan, schedule, timer, None)["recurrence"]["median_ms"]
    gflops = flops(cell, B, H, T, 0, "fwd") / (ms * 1e6)  # input size 0: the recurrent products only
    return {
        "recurrence_ms": ms,
        "recurrence_gflops": gflops,
        "recurrence_pct_peak": hz.pct_of_peak(gflops, peak_gflops),
    }


def bench_shape(
    cell,
    B,
    H,
    T,
    mode,
    factories,
    threads,
    repeats,
    seed=0,
    timer=hz.perf_counter_timer,
    sync=None,
    *,
    plan=None,
    schedule="blocks",
    contention=None,
    peak_gflops=None,
    recurrence=False,
):
    """One row: validate every variant, then time them (quietly, and again under ``contention``
    when it has processes). ``plan``: :func:`timing_plan`'s dict (default: its plan for B).
    ``recurrence``: also time the recurrence alone (:func:`time_recurrence`; CPU forward rows)."""
    I = H
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(H)  # torch.nn's default initialisation range
    G, P = gates(cell), proj_size(cell, H)
    R = P or H  # the units of h
    shapes = {"weight_ih_l0": (G * H, I), "weight_hh_l0": (G * H, R), "bias_ih_l0": G * H, "bias_hh_l0": G * H}
    if P:
        shapes["weight_hr_l0"] = (P, H)
    params = {k: rng.uniform(-bound, bound, shape).astype(np.float32) for k, shape in shapes.items()}
    x = rng.standard_normal((T, B, I), dtype=np.float32)
    dy = rng.standard_normal((T, B, R), dtype=np.float32)
    train = mode == "fwd+bwd"
    fns = {
        name: make(cell, params, x, dy, train, threads)
        for name, make in factories.items()
        if name != "numpy" or cell in NUMPY_CELLS
    }  # the NumPy loop has no projection
    if "torch" in fns:
        base_name, base = "torch", {k: hz.to_host(v) for k, v in fns["torch"]().items()}
    elif cell in NUMPY_CELLS:
        base_name, base = "numpy float64", make_numpy(cell, params, x, dy, train, threads, np.float64)()
    else:
        base_name, base = "reference float64", reference_baseline(cell, params, x, dy, train)
    errors = {}
    for name, fn in fns.items():  # validate every variant (this run is also its first warm-up)
        if name != "torch":
            out, where = fn(), f"vs {base_name}, {cell} B{B} H{H} T{T} {mode}"
            tol = 1e-2 if name == "torch_tf32" else TOL  # TF32 rounds the products to 10 mantissa bits
            errors[name] = max(hz.validate(hz.to_host(out[k]), base[k], tol, f"{name} {k} {where}") for k in base)
    plan = plan or timing_plan(B, repeats)
    m = hz.measure(lambda: _time(fns, plan, schedule, timer, sync), contention)
    stats = m["quiet"]
    ms = {n: s["median_ms"] for n, s in stats.items()}
    f = flops(cell, B, H, T, I, mode)

    def rate(n):
        return f / (ms[n] * 1e6) if n in ms else None

    row = {
        "cell": cell.upper(),
        "B": B,
        "H": H,
        "I": I,
        "T": T,
        "mode": mode,
        "proj_size": P,
        "ours_ms": ms["ours"],
        "torch_ms": ms.get("torch"),
        "numpy_ms": ms.get("numpy"),
        "torch_tf32_ms": ms.get("torch_tf32"),
        "torch_native_ms": ms.get("torch_native"),
        "x_torch_native": ms["torch_native"] / ms["ours"] if "torch_native" in ms else None,
        "x_torch_tf32": ms["torch_tf32"] / ms["ours"] if "torch_tf32" in ms else None,
        "x_torch": ms["torch"] / ms["ours"] if "torch" in ms else None,
        "x_numpy": ms["numpy"] / ms["ours"] if "numpy" in ms else None,
        "gflops": rate("ours"),
        "pct_peak": hz.pct_of_peak(rate("ours"), peak_gflops),
        "torch_gflops": rate("torch"),
        "torch_pct_peak": hz.pct_of_peak(rate("torch"), peak_gflops),
        "us_per_step": ms["ours"] * 1e3 / T,
        # disturbance on the shared machine: each side's spread, other processes' CPU
        "ours_iqr_pct": 100 * stats["ours"]["iqr_ms"] / ms["ours"],
        "torch_iqr_pct": 100 * stats["torch"]["iqr_ms"] / ms["torch"] if "torch" in stats else None,
        "iqr_pct": 100 * max(s["iqr_ms"] / s["median_ms"] for s in stats.values()),
        "others_pct": m["quiet_others_pct"],
        "flops": f,
        "validated_against": base_name,
        "max_rel_error": errors,
        "timing": {"schedule": schedule, **plan},
        "stats": stats,
    }
    row.update(hz.contended_fields(m, ms, contention))
    if recurrence and mode == "fwd":
        row.update(time_recurrence(cell, params, x, threads, plan, schedule, timer, peak_gflops))
    return row


COLUMNS = [
    ("env", "env", "s"),
    ("cell", "cell", "s"),
    ("B", "B", "d"),
    ("H", "H", "d"),
    ("T", "T", "d"),
    ("mode", "mode", "s"),
    ("ours_ms", "ours ms", ".2f"),
    ("ours_iqr_pct", "IQR %", ".0f"),
    ("torch_ms", "torch ms", ".2f"),
    ("torch_iqr_pct", "IQR %", ".0f"),
    ("x_torch", "vs torch", hz.fmt_x),
    ("numpy_ms", "numpy ms", ".2f"),
    ("x_numpy", "vs numpy", hz.fmt_x),
    ("torch_native_ms", "torch native ms", ".2f"),
    ("x_torch_native", "vs native", hz.fmt_x),
    ("torch_tf32_ms", "torch TF32 ms", ".2f"),
    ("x_torch_tf32", "vs TF32", hz.fmt_x),
    *hz.PEAK_COLUMNS,
    ("recurrence_gflops", "recurrence GFLOP/s", ".1f"),
    ("recurrence_pct_peak", "recurrence % peak", ".0f"),
    ("us_per_step", "us/step", ".1f"),
    ("others_pct", "others CPU %", ".0f"),
    *hz.LOADED_COLUMNS,
]


def parse_args(argv):
    ap = hz.bench_parser(
        "rnn",
        __doc__.split("\n\n")[0],
        "four small shapes, fewer repeats (< 1 min on 2 cores)",
        "timed runs per variant (default 10, 5 with --quick; x3 at B = 1; CUDA 20, 10 with --quick)",
    )
    ap.add_argument("--cell", choices=CELLS, help="only this cell")
    ap.add_argument(
        "--shape",
        type=hz.shape_arg(CELLS, "B,H,T"),
        action="append",
        metavar="CELL,B,H,T",
        help="time this shape instead of the built-in list (repeatable)",
    )
    ap.add_argument("--numpy", action="store_true", help="also time the plain NumPy float32 loop")
    ap.add_argument(
        "--torch-native",
        action="store_true",
        help="CPU: also time torch.nn with oneDNN switched off (torch's own kernels)",
    )
    ap.add_argument(
        "--schedule",
        choices=["blocks", "interleaved"],
        default="blocks",
        help="blocks: each variant's runs in a block, blocks alternating (default); interleaved: "
        "one run of each variant in turn",
    )
    ap.add_argument(
        "--no-recurrence",
        action="store_true",
        help="do not time the recurrence alone (input size 1) on CPU forward rows at B >= 16",
    )
    hz.add_run_options(ap)
    return hz.parse_bench_args(ap, argv)


def main(argv=None, results_dir=None) -> int:
    args = parse_args(argv)
    peak = hz.start_run(args)
    if args.torch_native and args.device == "cuda":
        raise SystemExit("--torch-native: CPU only (on CUDA torch.nn runs cuDNN)")
    factories = variants(args.device, numpy_loop=args.numpy, torch_native=args.torch_native)
    cuda = args.device == "cuda"
    repeats = args.repeats or ((10 if args.quick else 20) if cuda else (5 if args.quick else 10))
    table = (
        (CUDA_QUICK_SHAPES if args.quick else CUDA_SHAPES) if cuda else (QUICK_SHAPES if args.quick else FULL_SHAPES)
    )
    shapes = [s for s in (args.shape or table) if args.cell in (None, s[0])]
    timer, sync = (hz.torch_cuda_event_timer, hz.cuda_sync) if cuda else (hz.perf_counter_timer, None)
    notes = (
        []
        if "torch" in factories
        else ["torch not installed: torch column skipped, variants validated against the NumPy loop in float64"]
    )
    notes.append(
        f"threads: {args.threads} for seqkernels and torch; NumPy's own OpenBLAS uses its default "
        f"(OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')})"
    )
    notes.append(
        "IQR %: interquartile range of a variant's runs in % of its median; others CPU %: the machine's "
        "CPU time used by other processes while the row was timed. Rerun rows where either is high "
        "(~20% or more)"
    )
    notes += hz.import_order_notes()
    notes += hz.contention_note(args.contend)
    info, t0 = hz.machine_info(), time.perf_counter()

    def run_here():
        rows = []
        with hz.Contention(args.contend) as load:
            for cell, B, H, T in shapes:
                for mode in MODES:
                    row = bench_shape(
                        cell,
                        B,
                        H,
                        T,
                        mode,
                        factories,
                        args.threads,
                        repeats,
                        timer=timer,
                        sync=sync,
                        plan=timing_plan(B, repeats, args.quick),
                        schedule=args.schedule,
                        contention=load,
                        peak_gflops=peak["gflops"],
                        recurrence=not (cuda or args.no_recurrence) and B >= 16,
                    )
                    row["env"] = hz.openblas_env_name(hz.openblas_env())
                    rows.append(row)
                    hz.log(
                        f"{cell} B{B} H{H} T{T} {mode}: "
                        + ", ".join(
                            f"{n} {row[n + '_ms']:.2f} ms"
                            for n in ("ours", "torch", "torch_native", "numpy")
                            if row.get(n + "_ms") is not None
                        )
                    )
        return rows

    rows, envs = hz.run_env_variants(__spec__.name, args, argv, run_here, peak)  # also under python -m
    notes += hz.env_notes(envs)
    hz.finish(
        "rnn",
        args,
        argv,
        settings={
            "threads": args.threads,
            "repeats": repeats,
            "quick": args.quick,
            "tol": TOL,
            "schedule": args.schedule,
            "contend": args.contend,
            "openblas_env": args.openblas_env,
            "torch_native": args.torch_native,
        },
        extra={
            "flops": "forward = 2*T*B*G*H*(I+H), G = 4 (LSTM), 3 (GRU), 1 (RNN); LSTMP (proj_size P = H/4) "
            "2*T*B*(4*H*(I+P) + P*H); fwd+bwd = 3 x forward",
            **hz.run_record(args, peak, info, envs),
        },
        notes=notes,
        info=info,
        t0=t0,
        rows=rows,
        columns=COLUMNS,
        results_dir=results_dir,
        headline=hz.peak_headline(peak, args.threads),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
