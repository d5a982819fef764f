"""Tests of the NumPy reference (seqkernels.reference): finite differences, PyTorch, dtypes, errors.

Finite differences: central differences in float64 with eps = 1e-6. Their truncation error is
~eps²·|f'''| ≈ 1e-12 and their rounding error ~u·|loss|/eps ≈ 1e-10·|loss| (u = 1.1e-16), so with
losses of order 10 the numerical gradient is good to ~1e-9. A wrong derivative term gives errors of
order 1e-2 or more. The tolerance 1e-6 · max(1, max|gradient|) sits safely between the two.
"""

from __future__ import annotations

import numpy as np
import pytest

from seqkernels.reference import (
    GATES,
    backward,
    forward,
    gru_cell_backward,
    gru_cell_forward,
    init_params,
    lstm_cell_backward,
    lstm_cell_forward,
    param_names,
    rnn_cell_backward,
    rnn_cell_forward,
)
from tests.tolerance import numerical_grad

EPS = 1e-6
FD_RTOL = 1e-6

# (id, mode, keyword arguments of forward)
VARIANTS = [
    ("lstm", "lstm", {}),
    ("gru", "gru", {"reset_after": True}),
    ("gru_reset_before", "gru", {"reset_after": False}),
    ("rnn_tanh", "rnn", {"nonlinearity": "tanh"}),
    ("rnn_relu", "rnn", {"nonlinearity": "relu"}),
]
TORCH_VARIANTS = [v for v in VARIANTS if v[0] != "gru_reset_before"]  # no torch equivalent


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def assert_fd_close(name: str, analytic: np.ndarray, numeric: np.ndarray):
    assert analytic.shape == numeric.shape, name
    scale = max(1.0, float(np.max(np.abs(numeric))))
    err = float(np.max(np.abs(analytic - numeric)))
    assert err <= FD_RTOL * scale, f"{name}: max abs error {err:.3e} vs tolerance {FD_RTOL * scale:.3e}"


def make_problem(
    mode, seed, T, B, I, H, L, bidirectional, *, lengths=None, nonzero_state=True, dropout=False, bias=True, proj_size=0
):
    """Random float64 problem: inputs, params, states and the weights of a linear loss."""
    rng = np.random.default_rng(seed)
    D = 2 if bidirectional else 1
    R = proj_size or H  # the size of h
    params = init_params(mode, I, H, L, bidirectional, bias=bias, rng=rng, proj_size=proj_size)
    # scale the weights up a little so that the nonlinearities are exercised beyond their linear part
    params = {k: 1.5 * v for k, v in params.items()}
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((L * D, B, R)) * 0.5 if nonzero_state else None
    c0 = rng.standard_normal((L * D, B, H)) * 0.5 if (nonzero_state and mode == "lstm") else None
    masks = None
    if dropout and L > 1:
        p = 0.3
        masks = [(rng.random((T, B, D * R)) >= p) / (1 - p) for _ in range(L - 1)]
    dy = rng.standard_normal((T, B, D * R))
    dhn = rng.standard_normal((L * D, B, R))
    dcn = rng.standard_normal((L * D, B, H)) if mode == "lstm" else None
    return {
        "x": x, "params": params, "h0": h0, "c0": c0, "lengths": lengths, "masks": masks,
        "dy": dy, "dhn": dhn, "dcn": dcn, "L": L, "bidirectional": bidirectional,
    }  # fmt: skip


def run_forward(mode, kw, pb, x=None, params=None, h0=None, c0=None):
    return forward(
        mode,
        pb["x"] if x is None else x,
        pb["params"] if params is None else params,
        num_layers=pb["L"],
        bidirectional=pb["bidirectional"],
        h0=pb["h0"] if h0 is None else h0,
        c0=pb["c0"] if c0 is None else c0,
        lengths=pb["lengths"],
        dropout_masks=pb["masks"],
        **kw,
    )


def linear_loss(mode, pb, y, hn, cn):
    loss = np.sum(pb["dy"] * y) + np.sum(pb["dhn"] * hn)
    if mode == "lstm":
        loss += np.sum(pb["dcn"] * cn)
    return float(loss)


# ---------------------------------------------------------------------------------------------
# finite differences: whole sequences
# ---------------------------------------------------------------------------------------------

SEQ_CONFIGS = {
    # T, B, I, H, L, bidirectional, lengths, nonzero h0/c0, dropout masks
    "single_layer": dict(
        T=4, B=3, I=5, H=3, L=1, bidirectional=False, lengths=None, nonzero_state=False, dropout=False
    ),
    "deep_bidir_lengths": dict(
        T=4, B=3, I=5, H=3, L=2, bidirectional=True, lengths=np.array([2, 4, 1]), nonzero_state=True, dropout=True
    ),
    "one_step": dict(T=1, B=3, I=5, H=3, L=1, bidirectional=True, lengths=None, nonzero_state=True, dropout=False),
}


@pytest.mark.parametrize("config", list(SEQ_CONFIGS))
@pytest.mark.parametrize("vid,mode,kw", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_sequence_finite_differences(vid, mode, kw, config):
    cfg = dict(SEQ_CONFIGS[config])
    pb = make_problem(
        mode,
        1234,
        cfg.pop("T"),
        cfg.pop("B"),
        cfg.pop("I"),
        cfg.pop("H"),
        cfg.pop("L"),
        cfg.pop("bidirectional"),
        **cfg,
    )
    # differentiate with respect to explicit (possibly zero) initial states
    L, D = pb["L"], 2 if pb["bidirectional"] else 1
    B, H = pb["x"].shape[1], pb["params"]["weight_hh_l0"].shape[1]
    if pb["h0"] is None:
        pb["h0"] = np.zeros((L * D, B, H))
    if mode == "lstm" and pb["c0"] is None:
        pb["c0"] = np.zeros((L * D, B, H))

    y, hn, cn, cache = run_forward(mode, kw, pb)
    dx, dh0, dc0, grads = backward(cache, pb["dy"], pb["dhn"], pb["dcn"])
    assert set(grads) == set(pb["params"])
    if mode != "lstm":
        assert cn is None and dc0 is None

    def loss():
        y, hn, cn, _ = run_forward(mode, kw, pb)
        return linear_loss(mode, pb, y, hn, cn)

    checks = [("x", pb["x"], dx), ("h0", pb["h0"], dh0)]
    if mode == "lstm":
        checks.append(("c0", pb["c0"], dc0))
    checks += [(name, pb["params"][name], grads[name]) for name in pb["params"]]
    for name, arr, analytic in checks:
        assert_fd_close(name, analytic, numerical_grad(loss, arr, EPS))


@pytest.mark.parametrize("vid,mode,kw", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_sequence_finite_differences_no_bias(vid, mode, kw):
    pb = make_problem(mode, 77, 3, 2, 3, 3, 1, True, bias=False, lengths=np.array([3, 1]))
    y, hn, cn, cache = run_forward(mode, kw, pb)
    dx, dh0, dc0, grads = backward(cache, pb["dy"], pb["dhn"], pb["dcn"])
    assert set(grads) == {"weight_ih_l0", "weight_hh_l0", "weight_ih_l0_reverse", "weight_hh_l0_reverse"}

    def loss():
        y, hn, cn, _ = run_forward(mode, kw, pb)
        return linear_loss(mode, pb, y, hn, cn)

    assert_fd_close("x", dx, numerical_grad(loss, pb["x"], EPS))
    for name, g in grads.items():
        assert_fd_close(name, g, numerical_grad(loss, pb["params"][name], EPS))


# ---------------------------------------------------------------------------------------------
# finite differences: single cells
# ---------------------------------------------------------------------------------------------


CELL_VARIANTS = [
    ("lstm", None),
    ("gru", {"reset_after": True}),
    ("gru", {"reset_after": False}),
    ("rnn", {"nonlinearity": "tanh"}),
    ("rnn", {"nonlinearity": "relu"}),
]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("mode,kw", CELL_VARIANTS, ids=["lstm", "gru", "gru_reset_before", "rnn_tanh", "rnn_relu"])
def test_cell_finite_differences(mode, kw, bias):
    rng = np.random.default_rng(5)
    B, I, H = 3, 5, 3
    G = GATES[mode]
    x = rng.standard_normal((B, I))
    h = rng.standard_normal((B, H))
    c = rng.standard_normal((B, H))
    w_ih = rng.standard_normal((G * H, I)) * 0.7
    w_hh = rng.standard_normal((G * H, H)) * 0.7
    b_ih = rng.standard_normal(G * H) * 0.5 if bias else None
    b_hh = rng.standard_normal(G * H) * 0.5 if bias else None
    dh_out = rng.standard_normal((B, H))
    dc_out = rng.standard_normal((B, H))

    if mode == "lstm":

        def loss():
            h_new, c_new, _ = lstm_cell_forward(x, h, c, w_ih, w_hh, b_ih, b_hh)
            return float(np.sum(dh_out * h_new) + np.sum(dc_out * c_new))

        _, _, cache = lstm_cell_forward(x, h, c, w_ih, w_hh, b_ih, b_hh)
        dx, dh, dc, grads = lstm_cell_backward(dh_out, dc_out, cache)
        checks = [("x", x, dx), ("h", h, dh), ("c", c, dc)]
    else:
        fwd, bwd = (gru_cell_forward, gru_cell_backward) if mode == "gru" else (rnn_cell_forward, rnn_cell_backward)

        def loss():
            h_new, _ = fwd(x, h, w_ih, w_hh, b_ih, b_hh, **kw)
            return float(np.sum(dh_out * h_new))

        _, cache = fwd(x, h, w_ih, w_hh, b_ih, b_hh, **kw)
        dx, dh, grads = bwd(dh_out, cache)
        checks = [("x", x, dx), ("h", h, dh)]

    checks += [("w_ih", w_ih, grads["w_ih"]), ("w_hh", w_hh, grads["w_hh"])]
    if bias:
        checks += [("b_ih", b_ih, grads["b_ih"]), ("b_hh", b_hh, grads["b_hh"])]
    else:
        assert grads["b_ih"] is None and grads["b_hh"] is None
    for name, arr, analytic in checks:
        assert_fd_close(name, analytic, numerical_grad(loss, arr, EPS))


def test_gru_reset_after_bias_gradients_differ_in_n_block():
    """docs/ops.md §1.8: with reset_after=True the n block of db_hh is Σ dn_pre ⊙ r, not Σ dn_pre."""
    rng = np.random.default_rng(0)
    B, I, H = 4, 3, 2
    args = (
        rng.standard_normal((B, I)),
        rng.standard_normal((B, H)),
        rng.standard_normal((3 * H, I)),
        rng.standard_normal((3 * H, H)),
        rng.standard_normal(3 * H),
        rng.standard_normal(3 * H),
    )
    _, cache = gru_cell_forward(*args, reset_after=True)
    _, _, g = gru_cell_backward(rng.standard_normal((B, H)), cache)
    np.testing.assert_allclose(g["b_ih"][: 2 * H], g["b_hh"][: 2 * H], rtol=1e-14)
    assert not np.allclose(g["b_ih"][2 * H :], g["b_hh"][2 * H :])
    _, cache = gru_cell_forward(*args, reset_after=False)
    _, _, g = gru_cell_backward(rng.standard_normal((B, H)), cache)
    np.testing.assert_array_equal(g["b_ih"], g["b_hh"])


# ---------------------------------------------------------------------------------------------
# variable lengths == each sequence run on its own
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vid,mode,kw", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_lengths_equal_separate_sequences(vid, mode, kw):
    lengths = np.array([3, 5, 1, 4])
    pb = make_problem(mode, 99, 5, 4, 3, 2, 2, True, lengths=lengths, dropout=True)
    y, hn, cn, cache = run_forward(mode, kw, pb)
    dx, dh0, dc0, grads = backward(cache, pb["dy"], pb["dhn"], pb["dcn"])
    total = {k: np.zeros_like(v) for k, v in grads.items()}
    for b, n in enumerate(lengths):
        sl = slice(b, b + 1)
        yb, hnb, cnb, cb = forward(
            mode,
            pb["x"][:n, sl],
            pb["params"],
            num_layers=2,
            bidirectional=True,
            h0=pb["h0"][:, sl],
            c0=None if pb["c0"] is None else pb["c0"][:, sl],
            dropout_masks=[m[:n, sl] for m in pb["masks"]],
            **kw,
        )
        np.testing.assert_allclose(y[:n, b], yb[:, 0], rtol=1e-13, atol=1e-15)
        assert np.all(y[n:, b] == 0)
        np.testing.assert_allclose(hn[:, b], hnb[:, 0], rtol=1e-13, atol=1e-15)
        dxb, dh0b, dc0b, gb = backward(
            cb, pb["dy"][:n, sl], pb["dhn"][:, sl], None if pb["dcn"] is None else pb["dcn"][:, sl]
        )
        np.testing.assert_allclose(dx[:n, b], dxb[:, 0], rtol=1e-12, atol=1e-14)
        assert np.all(dx[n:, b] == 0)
        np.testing.assert_allclose(dh0[:, b], dh0b[:, 0], rtol=1e-12, atol=1e-14)
        if mode == "lstm":
            np.testing.assert_allclose(cn[:, b], cnb[:, 0], rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(dc0[:, b], dc0b[:, 0], rtol=1e-12, atol=1e-14)
        for k in total:
            total[k] += gb[k]
    for k in total:
        np.testing.assert_allclose(grads[k], total[k], rtol=1e-11, atol=1e-13, err_msg=k)


def test_dy_at_padded_steps_is_ignored():
    lengths = np.array([2, 4, 1])
    pb = make_problem("lstm", 3, 4, 3, 2, 3, 2, True, lengths=lengths)
    _, _, _, cache = run_forward("lstm", {}, pb)
    ref = backward(cache, pb["dy"], pb["dhn"], pb["dcn"])
    dy = pb["dy"].copy()
    for b, n in enumerate(lengths):
        dy[n:, b] = 1e3
    other = backward(cache, dy, pb["dhn"], pb["dcn"])
    for a, b in zip(ref[:3], other[:3]):
        np.testing.assert_array_equal(a, b)
    for k in ref[3]:
        np.testing.assert_array_equal(ref[3][k], other[3][k])


# ---------------------------------------------------------------------------------------------
# against PyTorch (CPU, float64)
# ---------------------------------------------------------------------------------------------

TORCH_CONFIGS = {
    "single_layer": dict(T=5, B=3, I=4, H=3, L=1, bidirectional=False, lengths=None, bias=True),
    "deep_bidir_lengths": dict(T=5, B=4, I=4, H=3, L=2, bidirectional=True, lengths=[3, 5, 1, 4], bias=True),
    "no_bias": dict(T=4, B=3, I=4, H=3, L=2, bidirectional=True, lengths=None, bias=False),
}


def _torch_module(torch, mode, kw, I, H, L, bidirectional, bias):
    common = dict(num_layers=L, bidirectional=bidirectional, bias=bias)
    if mode == "lstm":
        return torch.nn.LSTM(I, H, **common)
    if mode == "gru":
        return torch.nn.GRU(I, H, **common)
    return torch.nn.RNN(I, H, nonlinearity=kw["nonlinearity"], **common)


@pytest.mark.parametrize("config", list(TORCH_CONFIGS))
@pytest.mark.parametrize("vid,mode,kw", TORCH_VARIANTS, ids=[v[0] for v in TORCH_VARIANTS])
def test_against_torch(vid, mode, kw, config):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    c = TORCH_CONFIGS[config]
    T, B, I, H, L, bi = c["T"], c["B"], c["I"], c["H"], c["L"], c["bidirectional"]
    lengths = None if c["lengths"] is None else np.array(c["lengths"])
    pb = make_problem(mode, 2024, T, B, I, H, L, bi, lengths=lengths, bias=c["bias"])

    # ours
    y, hn, cn, cache = run_forward(mode, kw, pb)
    dx, dh0, dc0, grads = backward(cache, pb["dy"], pb["dhn"], pb["dcn"])

    # torch
    module = _torch_module(torch, mode, kw, I, H, L, bi, c["bias"]).double()
    assert sorted(module.state_dict()) == sorted(pb["params"])
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in pb["params"].items()})
    xt = torch.from_numpy(pb["x"].copy()).requires_grad_()
    h0t = torch.from_numpy(pb["h0"].copy()).requires_grad_()
    c0t = torch.from_numpy(pb["c0"].copy()).requires_grad_() if mode == "lstm" else None
    state = (h0t, c0t) if mode == "lstm" else h0t
    if lengths is None:
        yt, st = module(xt, state)
    else:
        packed = pack_padded_sequence(xt, torch.as_tensor(lengths, dtype=torch.int64), enforce_sorted=False)
        out, st = module(packed, state)
        yt, _ = pad_packed_sequence(out, total_length=T)
    hnt, cnt = st if mode == "lstm" else (st, None)
    loss = (yt * torch.from_numpy(pb["dy"])).sum() + (hnt * torch.from_numpy(pb["dhn"])).sum()
    if mode == "lstm":
        loss = loss + (cnt * torch.from_numpy(pb["dcn"])).sum()
    loss.backward()

    def close(name, ours, theirs):
        theirs = theirs.detach().numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12, err_msg=name)

    close("y", y, yt)
    close("h_n", hn, hnt)
    close("dx", dx, xt.grad)
    close("dh0", dh0, h0t.grad)
    if mode == "lstm":
        close("c_n", cn, cnt)
        close("dc0", dc0, c0t.grad)
    named = dict(module.named_parameters())
    assert set(named) == set(grads)
    for name, p in named.items():
        close(name, grads[name], p.grad)


@pytest.mark.parametrize("vid,mode,kw", TORCH_VARIANTS, ids=[v[0] for v in TORCH_VARIANTS])
def test_cells_against_torch(vid, mode, kw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    B, I, H = 3, 4, 5
    if mode == "lstm":
        cell = torch.nn.LSTMCell(I, H)
    elif mode == "gru":
        cell = torch.nn.GRUCell(I, H)
    else:
        cell = torch.nn.RNNCell(I, H, nonlinearity=kw["nonlinearity"])
    cell = cell.double()
    sd = {k: v.detach().numpy().copy() for k, v in cell.state_dict().items()}
    x, h, c = rng.standard_normal((B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    dh_out, dc_out = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    xt, ht, ct = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, h, c))
    w = (sd["weight_ih"], sd["weight_hh"], sd["bias_ih"], sd["bias_hh"])
    if mode == "lstm":
        h_new, c_new, cache = lstm_cell_forward(x, h, c, *w)
        dx, dh, dc, g = lstm_cell_backward(dh_out, dc_out, cache)
        h_t, c_t = cell(xt, (ht, ct))
        ((h_t * torch.from_numpy(dh_out)).sum() + (c_t * torch.from_numpy(dc_out)).sum()).backward()
        np.testing.assert_allclose(c_new, c_t.detach().numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(dc, ct.grad.numpy(), rtol=1e-12, atol=1e-14)
    else:
        fwd, bwd = (gru_cell_forward, gru_cell_backward) if mode == "gru" else (rnn_cell_forward, rnn_cell_backward)
        h_new, cache = fwd(x, h, *w, **kw)
        dx, dh, g = bwd(dh_out, cache)
        h_t = cell(xt, ht)
        (h_t * torch.from_numpy(dh_out)).sum().backward()
    np.testing.assert_allclose(h_new, h_t.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dh, ht.grad.numpy(), rtol=1e-12, atol=1e-14)
    for ours, theirs in (("w_ih", "weight_ih"), ("w_hh", "weight_hh"), ("b_ih", "bias_ih"), ("b_hh", "bias_hh")):
        np.testing.assert_allclose(g[ours], getattr(cell, theirs).grad.numpy(), rtol=1e-12, atol=1e-14, err_msg=ours)


def test_init_params_matches_torch_layout():
    torch = pytest.importorskip("torch")
    for mode, cls in (("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU), ("rnn", torch.nn.RNN)):
        for bias in (True, False):
            p = init_params(mode, 5, 3, num_layers=2, bidirectional=True, bias=bias, rng=0)
            sd = cls(5, 3, num_layers=2, bidirectional=True, bias=bias).state_dict()
            assert list(p) == list(sd)
            for k in p:
                assert p[k].shape == tuple(sd[k].shape), k


# ---------------------------------------------------------------------------------------------
# init_params, dtypes
# ---------------------------------------------------------------------------------------------


def test_init_params():
    p = init_params("lstm", 5, 4, num_layers=2, bidirectional=True, rng=np.random.default_rng(0))
    assert list(p) == param_names(2, True, True)
    assert p["weight_ih_l0"].shape == (16, 5)
    assert p["weight_ih_l1"].shape == (16, 8)
    assert p["weight_hh_l1_reverse"].shape == (16, 4)
    assert p["bias_hh_l0"].shape == (16,)
    for v in p.values():
        assert v.dtype == np.float64
        assert np.all(np.abs(v) <= 0.5)  # 1/sqrt(4)
    q = init_params("lstm", 5, 4, num_layers=2, bidirectional=True, rng=0)
    r = init_params("lstm", 5, 4, num_layers=2, bidirectional=True, rng=0)
    for k in q:
        np.testing.assert_array_equal(q[k], r[k])
    p = init_params("gru", 3, 2, bias=False, dtype=np.float32, rng=1)
    assert list(p) == ["weight_ih_l0", "weight_hh_l0"]
    assert all(v.dtype == np.float32 for v in p.values())


def _float_arrays(obj):
    """Every floating ndarray reachable in a (nested) cache."""
    if isinstance(obj, np.ndarray):
        if np.issubdtype(obj.dtype, np.floating):
            yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _float_arrays(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _float_arrays(v)


@pytest.mark.parametrize("vid,mode,kw", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_float32_runs_in_float32(vid, mode, kw):
    pb = make_problem(mode, 8, 4, 3, 5, 3, 2, True, lengths=np.array([4, 2, 1]), dropout=True)
    y64, hn64, cn64, cache64 = run_forward(mode, kw, pb)
    g64 = backward(cache64, pb["dy"], pb["dhn"], pb["dcn"])
    # float32 input; params, states, masks and loss weights are left in float64 on purpose
    y32, hn32, cn32, cache32 = run_forward(mode, kw, pb, x=pb["x"].astype(np.float32))
    g32 = backward(cache32, pb["dy"], pb["dhn"], pb["dcn"])
    assert y32.dtype == hn32.dtype == np.float32
    assert all(a.dtype == np.float32 for a in _float_arrays(cache32))
    np.testing.assert_allclose(y32, y64, rtol=0, atol=1e-5)
    np.testing.assert_allclose(hn32, hn64, rtol=0, atol=1e-5)
    if mode == "lstm":
        assert cn32.dtype == np.float32
        np.testing.assert_allclose(cn32, cn64, rtol=0, atol=1e-5)
    dx32, dh032, dc032, gr32 = g32
    dx64, dh064, dc064, gr64 = g64
    for name, a32, a64 in [("dx", dx32, dx64), ("dh0", dh032, dh064)] + [(k, gr32[k], gr64[k]) for k in gr64]:
        assert a32.dtype == np.float32, name
        np.testing.assert_allclose(a32, a64, rtol=0, atol=1e-4 * max(1.0, np.abs(a64).max()), err_msg=name)
    if mode == "lstm":
        assert dc032.dtype == np.float32


# ---------------------------------------------------------------------------------------------
# bad inputs
# ---------------------------------------------------------------------------------------------


def _good(mode="lstm"):
    rng = np.random.default_rng(0)
    params = init_params(mode, 5, 3, num_layers=2, bidirectional=True, rng=rng)
    x = rng.standard_normal((4, 3, 5))
    return x, params


def _fwd(mode="lstm", x=None, params=None, **kw):
    gx, gp = _good(mode)
    kw.setdefault("num_layers", 2)
    kw.setdefault("bidirectional", True)
    return forward(mode, gx if x is None else x, gp if params is None else params, **kw)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: _fwd("LSTM"), "mode"),
        (lambda: _fwd("transformer"), "mode"),
        (lambda: _fwd(lengths=np.array([0, 4, 2])), "lengths"),
        (lambda: _fwd(lengths=np.array([5, 4, 2])), "lengths"),
        (lambda: _fwd(lengths=np.array([4, 2])), "lengths"),
        (lambda: _fwd(lengths=np.array([4.5, 2, 1])), "lengths"),
        (lambda: _fwd(x=np.zeros((3, 5))), "x"),
        (lambda: _fwd(x=np.zeros((4, 3, 5), dtype=np.int64)), "x"),
        (lambda: _fwd(x=np.zeros((4, 3, 6))), "weight_ih_l0"),
        (lambda: _fwd(h0=np.zeros((2, 3, 3))), "h0"),
        (lambda: _fwd(c0=np.zeros((4, 3, 2))), "c0"),
        (lambda: _fwd("gru", c0=np.zeros((4, 3, 3))), "c0"),
        (lambda: _fwd(num_layers=3), "params"),
        (lambda: _fwd(num_layers=0), "num_layers"),
        (lambda: _fwd(bidirectional=False), "params"),
        (lambda: _fwd(params={k: v for k, v in _good()[1].items() if k != "bias_hh_l1"}), "params"),
        (lambda: _fwd(params={**_good()[1], "weight_hh_l0": np.zeros((12, 4))}), "weight_hh_l0"),
        (lambda: _fwd(params={**_good()[1], "weight_ih_l1": np.zeros((12, 5))}), "weight_ih_l1"),
        (lambda: _fwd("gru", params=_good("lstm")[1]), "weight_hh_l0"),
        (lambda: _fwd("rnn", nonlinearity="sigmoid"), "nonlinearity"),
        (lambda: _fwd(dropout_masks=[]), "dropout_masks"),
        (lambda: _fwd(dropout_masks=[np.ones((4, 3, 3))]), "dropout_masks"),
        (lambda: backward(_fwd()[3], np.zeros((4, 3, 3))), "dy"),
        (lambda: backward(_fwd()[3], np.zeros((4, 3, 6)), dh_n=np.zeros((4, 3, 2))), "dh_n"),
        (lambda: backward(_fwd("gru")[3], np.zeros((4, 3, 6)), dc_n=np.zeros((4, 3, 3))), "dc_n"),
        (lambda: init_params("Lstm", 3, 3), "mode"),
        (lambda: init_params("gru", 3, 0), "hidden_size"),
        (
            lambda: lstm_cell_forward(
                np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((2, 4)), np.zeros((16, 2)), np.zeros((16, 4))
            ),
            "w_ih",
        ),
        (
            lambda: lstm_cell_forward(
                np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((3, 4)), np.zeros((16, 3)), np.zeros((16, 4))
            ),
            "c",
        ),
        (lambda: gru_cell_forward(np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((12, 3)), np.zeros((16, 4))), "w_hh"),
        (
            lambda: rnn_cell_forward(
                np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((4, 3)), np.zeros((4, 4)), np.zeros(3), None
            ),
            "b_ih",
        ),
        (
            lambda: rnn_cell_forward(
                np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((4, 3)), np.zeros((4, 4)), nonlinearity="gelu"
            ),
            "nonlinearity",
        ),
    ],
)
def test_bad_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------------------------
# LSTM with projections (proj_size): h_t = W_hr (o ⊙ tanh c_t)
# ---------------------------------------------------------------------------------------------

PROJ_CONFIGS = {
    # odd sizes, P < H; lengths, two layers, both directions, dropout between layers
    "single_layer": dict(
        T=4, B=3, I=5, H=5, P=3, L=1, bidirectional=False, lengths=None, nonzero_state=False, dropout=False
    ),
    "deep_bidir_lengths": dict(
        T=4, B=3, I=3, H=5, P=2, L=2, bidirectional=True, lengths=np.array([2, 4, 1]), nonzero_state=True, dropout=True
    ),
    "no_bias_p1": dict(
        T=3,
        B=2,
        I=3,
        H=3,
        P=1,
        L=1,
        bidirectional=True,
        lengths=np.array([3, 1]),
        nonzero_state=True,
        dropout=False,
        bias=False,
    ),
}


def _proj_problem(config, seed=4321):
    cfg = dict(PROJ_CONFIGS[config])
    P = cfg.pop("P")
    pb = make_problem(
        "lstm",
        seed,
        cfg.pop("T"),
        cfg.pop("B"),
        cfg.pop("I"),
        cfg.pop("H"),
        cfg.pop("L"),
        cfg.pop("bidirectional"),
        proj_size=P,
        **cfg,
    )
    return pb, P


@pytest.mark.parametrize("config", list(PROJ_CONFIGS))
def test_proj_finite_differences(config):
    pb, P = _proj_problem(config)
    L, D = pb["L"], 2 if pb["bidirectional"] else 1
    B, H = pb["x"].shape[1], pb["params"]["weight_hr_l0"].shape[1]
    if pb["h0"] is None:
        pb["h0"] = np.zeros((L * D, B, P))
        pb["c0"] = np.zeros((L * D, B, H))

    y, hn, cn, cache = run_forward("lstm", {}, pb)
    assert y.shape[2] == D * P and hn.shape == (L * D, B, P) and cn.shape == (L * D, B, H)
    dx, dh0, dc0, grads = backward(cache, pb["dy"], pb["dhn"], pb["dcn"])
    assert list(grads) == list(pb["params"])  # torch's order, weight_hr last in each direction

    def loss():
        y, hn, cn, _ = run_forward("lstm", {}, pb)
        return linear_loss("lstm", pb, y, hn, cn)

    checks = [("x", pb["x"], dx), ("h0", pb["h0"], dh0), ("c0", pb["c0"], dc0)]
    checks += [(name, pb["params"][name], grads[name]) for name in pb["params"]]
    for name, arr, analytic in checks:
        assert_fd_close(name, analytic, numerical_grad(loss, arr, EPS))


@pytest.mark.parametrize("config", list(PROJ_CONFIGS))
def test_proj_against_torch(config):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    pb, P = _proj_problem(config, seed=99)
    T, B, _ = pb["x"].shape
    L, bi = pb["L"], pb["bidirectional"]
    H, I = pb["params"]["weight_hr_l0"].shape[1], pb["x"].shape[2]
    D = 2 if bi else 1
    if pb["h0"] is None:
        pb["h0"], pb["c0"] = np.zeros((L * D, B, P)), np.zeros((L * D, B, H))
    y, hn, cn, cache = run_forward("lstm", {}, pb)
    dx, dh0, dc0, grads = backward(cache, pb["dy"], pb["dhn"], pb["dcn"])

    has_bias = "bias_ih_l0" in pb["params"]
    module = torch.nn.LSTM(I, H, num_layers=L, bidirectional=bi, bias=has_bias, proj_size=P).double()
    assert list(module.state_dict()) == list(pb["params"])
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in pb["params"].items()})
    if pb["masks"] is not None:  # torch draws its own dropout masks: compare without them
        pb["masks"] = None
        y, hn, cn, cache = run_forward("lstm", {}, pb)
        dx, dh0, dc0, grads = backward(cache, pb["dy"], pb["dhn"], pb["dcn"])
    xt = torch.from_numpy(pb["x"].copy()).requires_grad_()
    h0t = torch.from_numpy(pb["h0"].copy()).requires_grad_()
    c0t = torch.from_numpy(pb["c0"].copy()).requires_grad_()
    if pb["lengths"] is None:
        yt, (hnt, cnt) = module(xt, (h0t, c0t))
    else:
        lengths = torch.as_tensor(pb["lengths"], dtype=torch.int64)
        out, (hnt, cnt) = module(pack_padded_sequence(xt, lengths, enforce_sorted=False), (h0t, c0t))
        yt, _ = pad_packed_sequence(out, total_length=T)
    loss = (
        (yt * torch.from_numpy(pb["dy"])).sum()
        + (hnt * torch.from_numpy(pb["dhn"])).sum()
        + (cnt * torch.from_numpy(pb["dcn"])).sum()
    )
    loss.backward()

    def close(name, ours, theirs):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=name)

    for name, ours, theirs in [
        ("y", y, yt),
        ("h_n", hn, hnt),
        ("c_n", cn, cnt),
        ("dx", dx, xt.grad),
        ("dh0", dh0, h0t.grad),
        ("dc0", dc0, c0t.grad),
    ]:
        close(name, ours, theirs)
    for name, p in module.named_parameters():
        close(name, grads[name], p.grad)


def test_proj_bad_arguments():
    with pytest.raises(ValueError, match="proj_size must be smaller than hidden_size"):
        init_params("lstm", 3, 4, proj_size=4)
    with pytest.raises(ValueError, match="proj_size applies to mode 'lstm' only"):
        init_params("gru", 3, 4, proj_size=2)
    params = init_params("lstm", 3, 4, proj_size=2, rng=0)
    params["weight_hr_l0"] = params["weight_hr_l0"][:, :3]
    with pytest.raises(ValueError, match="weight_hr_l0"):
        forward("lstm", np.zeros((2, 1, 3)), params)
    params = init_params("lstm", 3, 4, proj_size=2, rng=0)
    with pytest.raises(ValueError, match="h0 must have shape"):
        forward("lstm", np.zeros((2, 1, 3)), params, h0=np.zeros((1, 1, 4)))
