"""seqkernels.nn recurrent layers (fused C++ kernels) against the float64 reference, PyTorch and
finite differences. Registry-driven: every cell variant in CELLS gets every check."""

import numpy as np
import pytest

import seqkernels as sk
from seqkernels import reference as ref
from tests.tolerance import EPS32, assert_close_rel, assert_within_rule, numerical_grad

# name -> (layer class, reference mode, constructor kwargs, reference kwargs)
CELLS = {
    "lstm": (sk.nn.LSTM, "lstm", {}, {}),
    "gru": (sk.nn.GRU, "gru", {}, {"reset_after": True}),
    "gru_reset_before": (sk.nn.GRU, "gru", {"reset_after": False}, {"reset_after": False}),
    "rnn_tanh": (sk.nn.RNN, "rnn", {}, {"nonlinearity": "tanh"}),
    "rnn_relu": (sk.nn.RNN, "rnn", {"nonlinearity": "relu"}, {"nonlinearity": "relu"}),
}

# (T, B, I, H, layers, bidirectional, variable lengths, initial state)
CONFIGS = {
    "tiny_h1": (3, 2, 2, 1, 1, False, False, True),
    "odd_h7": (5, 3, 4, 7, 1, False, True, True),
    "t1_b1": (1, 1, 5, 7, 1, True, False, False),
    "t1_b1_h70": (1, 1, 21, 70, 2, True, False, True),  # one step, one row: products from the weights' rows
    "t1_b6_h70": (1, 6, 5, 70, 2, True, True, True),  # one step, several rows: the pack's tiles
    "h129_two_threads": (6, 3, 9, 129, 1, False, True, True),
    "bidir_2layers": (5, 3, 4, 7, 2, True, True, True),
    "bidir_2layers_h65": (4, 4, 5, 65, 2, True, True, False),
    "b13_odd": (4, 13, 11, 37, 1, True, True, True),  # row blocks of 5, 4, 4 with the input fused in
}


def make_case(cell, config, dtype, rng, **extra):
    cls, mode, kw, rkw = CELLS[cell]
    T, B, I, H, L, bidir, var_len, with_state = CONFIGS[config]
    layer = cls(I, H, num_layers=L, bidirectional=bidir, dtype=dtype, seed=int(rng.integers(1 << 30)), **kw, **extra)
    D = 2 if bidir else 1
    x = rng.standard_normal((T, B, I))
    lengths = random_lengths(T, B, rng) if var_len else None
    h0 = 0.5 * rng.standard_normal((L * D, B, H)) if with_state else None
    c0 = 0.5 * rng.standard_normal((L * D, B, H)) if with_state and mode == "lstm" else None
    return layer, mode, rkw, x, lengths, h0, c0


def random_lengths(T, B, rng):
    """Lengths in 1..T with the longest T and, for B > 2, a length-1 sequence last."""
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T
    if B > 2:
        lengths[-1] = 1
    return lengths


def hx_of(mode, h, c):
    if mode == "lstm":
        return None if h is None and c is None else (h, c)
    return h


def run_layer(layer, mode, x, lengths, h0, c0, dy, dh, dc):
    dt = layer.dtype
    cast = lambda a: None if a is None else a.astype(dt)  # noqa: E731
    y, hn = layer(x.astype(dt), hx_of(mode, cast(h0), cast(c0)), lengths)
    dx, dhx = layer.backward(dy.astype(dt), hx_of(mode, cast(dh), cast(dc)))
    hn, cn = hn if mode == "lstm" else (hn, None)
    dh0, dc0 = dhx if mode == "lstm" else (dhx, None)
    return dict(y=y, h_n=hn, c_n=cn, dx=dx, dh0=dh0, dc0=dc0, **{"grad_" + k: v for k, v in layer.grads.items()})


def run_reference(layer, mode, rkw, x, lengths, h0, c0, dy, dh, dc, dtype, masks=None):
    dt = np.dtype(dtype)
    params = {k: v.astype(dt) for k, v in layer.params.items()}
    cast = lambda a: None if a is None else a.astype(dt)  # noqa: E731
    y, hn, cn, cache = ref.forward(
        mode,
        x.astype(dt),
        params,
        num_layers=layer.num_layers,
        bidirectional=layer.bidirectional,
        h0=cast(h0),
        c0=cast(c0),
        lengths=lengths,
        dropout_masks=masks,
        **rkw,
    )
    dx, dh0, dc0, grads = ref.backward(cache, dy.astype(dt), cast(dh), cast(dc) if mode == "lstm" else None)
    return dict(y=y, h_n=hn, c_n=cn, dx=dx, dh0=dh0, dc0=dc0, **{"grad_" + k: v for k, v in grads.items()})


def random_grads(layer, mode, x, rng):
    T, B, _ = x.shape
    D, L, H = layer.num_directions, layer.num_layers, layer.hidden_size
    dy = rng.standard_normal((T, B, D * H))
    dh = rng.standard_normal((L * D, B, H))
    dc = rng.standard_normal((L * D, B, H)) if mode == "lstm" else None
    return dy, dh, dc


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_float64_kernel_equals_reference(cell, config, rng, cpu_capability):
    assert_float64_equals_reference(cell, config, rng)


def assert_float64_equals_reference(cell, config, rng, **extra):
    """Every output and gradient of the float64 kernels within 1e-12 of the reference."""
    layer, mode, rkw, x, lengths, h0, c0 = make_case(cell, config, np.float64, rng, **extra)
    dy, dh, dc = random_grads(layer, mode, x, rng)
    got = run_layer(layer, mode, x, lengths, h0, c0, dy, dh, dc)
    want = run_reference(layer, mode, rkw, x, lengths, h0, c0, dy, dh, dc, np.float64)
    assert set(got) == set(want)
    for k in want:
        if want[k] is None:
            assert got[k] is None, k
            continue
        assert_close_rel(k, got[k], want[k], 1e-12)


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_float32_kernel_within_tolerance_rule(cell, config, rng, cpu_capability):
    layer, mode, rkw, x, lengths, h0, c0 = make_case(cell, config, np.float32, rng)
    dy, dh, dc = random_grads(layer, mode, x, rng)
    # The float64 reference and the float32 reference see the same float32-representable inputs.
    x, dy, dh = x.astype(np.float32), dy.astype(np.float32), dh.astype(np.float32)
    h0 = None if h0 is None else h0.astype(np.float32)
    c0 = None if c0 is None else c0.astype(np.float32)
    dc = None if dc is None else dc.astype(np.float32)
    got = run_layer(layer, mode, x, lengths, h0, c0, dy, dh, dc)
    ref64 = run_reference(layer, mode, rkw, x, lengths, h0, c0, dy, dh, dc, np.float64)
    ref32 = run_reference(layer, mode, rkw, x, lengths, h0, c0, dy, dh, dc, np.float32)
    for k in ref64:
        if ref64[k] is not None:
            assert got[k].dtype == np.float32, k
            assert_within_rule(k, got[k], ref64[k], ref32[k])


# B = 1: the input's product is a GEMM before the recurrence; B = 13: it is fused into the step
@pytest.mark.parametrize("config", ["t1_b1", "b13_odd"])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_float64_without_bias_equals_reference(cell, config, rng):
    assert_float64_equals_reference(cell, config, rng, bias=False)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_gradients_by_finite_differences(cell, rng, cpu_capability):
    """Central differences of the float64 kernels themselves (not only of the reference)."""
    layer, mode, rkw, x, lengths, h0, c0 = make_case(cell, "bidir_2layers", np.float64, rng)
    if mode == "lstm":
        c0 = 0.5 * rng.standard_normal(h0.shape)
    dy, dh, dc = random_grads(layer, mode, x, rng)

    def loss():
        y, hn = layer.eval()(x, hx_of(mode, h0, c0), lengths)
        layer.train()
        hn, cn = hn if mode == "lstm" else (hn, None)
        return float(np.sum(y * dy) + np.sum(hn * dh) + (np.sum(cn * dc) if cn is not None else 0.0))

    got = run_layer(layer, mode, x, lengths, h0, c0, dy, dh, dc)
    targets = [("dx", x), ("dh0", h0)] + ([("dc0", c0)] if mode == "lstm" else [])
    targets += [("grad_" + k, v) for k, v in layer.params.items()]
    for name, arr in targets:
        picks = rng.choice(arr.size, size=min(arr.size, 12), replace=False)
        for i, fd in zip(picks, numerical_grad(loss, arr, 1e-6, picks)):
            an = got[name].reshape(-1)[i]
            assert abs(fd - an) <= 1e-6 * max(1.0, abs(fd)), f"{name}[{i}]: finite difference {fd} vs kernel {an}"


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_dropout_matches_reference_with_same_masks(cell, rng):
    cls, mode, kw, rkw = CELLS[cell]
    layer = cls(4, 9, num_layers=3, bidirectional=True, dropout=0.4, dtype=np.float64, seed=3, **kw)
    x = rng.standard_normal((5, 3, 4))
    lengths = np.array([5, 2, 3])
    dy, dh, dc = random_grads(layer, mode, x, rng)
    got = run_layer(layer, mode, x, lengths, None, None, dy, dh, dc)
    layer2 = cls(4, 9, num_layers=3, bidirectional=True, dropout=0.4, dtype=np.float64, seed=3, **kw)
    layer2(x, None, lengths)
    masks = [m for m in layer2._cache["masks"] if m is not None]
    assert len(masks) == 2 and 0 < np.mean(masks[0] == 0) < 1
    want = run_reference(layer, mode, rkw, x, lengths, None, None, dy, dh, dc, np.float64, masks=masks)
    for k in want:
        if want[k] is not None:
            assert_close_rel(k, got[k], want[k], 1e-12)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_eval_forward_equals_train_forward(cell, rng):
    layer, mode, rkw, x, lengths, h0, c0 = make_case(cell, "bidir_2layers_h65", np.float32, rng)
    hx = hx_of(mode, None if h0 is None else h0.astype(np.float32), None if c0 is None else c0.astype(np.float32))
    y_train, h_train = layer.train()(x, hx, lengths)
    y_eval, h_eval = layer.eval()(x, hx, lengths)
    np.testing.assert_array_equal(y_train, y_eval)
    states = zip(h_train, h_eval) if mode == "lstm" else [(h_train, h_eval)]
    for a, b in states:
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="training mode"):
        layer.backward(np.zeros_like(y_eval))


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_whole_sequence_equals_repeated_single_steps(cell, rng):
    cls, mode, kw, _ = CELLS[cell]
    layer = cls(6, 70, num_layers=2, dtype=np.float64, seed=1, **kw).eval()
    x = rng.standard_normal((7, 3, 6))
    y, state = layer(x)
    hx = None
    for t in range(7):
        y_t, hx = layer(x[t : t + 1], hx)
        np.testing.assert_allclose(y_t[0], y[t], rtol=1e-12, atol=1e-14)
    for a, b in zip(state if mode == "lstm" else [state], hx if mode == "lstm" else [hx]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", ["lstm", "gru_reset_before"])
def test_thread_counts_agree(cell, rng):
    cls, mode, kw, _ = CELLS[cell]
    x = rng.standard_normal((6, 4, 33)).astype(np.float32)
    dy = rng.standard_normal((6, 4, 2 * 100)).astype(np.float32)
    out = []
    for threads in (1, 2, 3):
        layer = cls(33, 100, bidirectional=True, seed=7, num_threads=threads, **kw)
        y, _ = layer(x, None, np.array([6, 1, 3, 5]))
        dx, _ = layer.backward(dy)
        out.append((y, dx, layer.grads["weight_hh_l0"]))
    for y, dx, gw in out[1:]:
        assert_close_rel("y", y, out[0][0], 10 * EPS32)
        assert_close_rel("dx", dx, out[0][1], 100 * EPS32)
        assert_close_rel("dW_hh", gw, out[0][2], 100 * EPS32)


def test_batch_first_matches_sequence_major(rng):
    x = rng.standard_normal((5, 3, 4)).astype(np.float32)
    a = sk.nn.LSTM(4, 8, seed=2)
    b = sk.nn.LSTM(4, 8, batch_first=True, seed=2)
    ya, (ha, ca) = a(x, None, [5, 2, 4])
    yb, (hb, cb) = b(x.transpose(1, 0, 2), None, [5, 2, 4])
    np.testing.assert_array_equal(yb, ya.transpose(1, 0, 2))
    np.testing.assert_array_equal(hb, ha)
    dy = rng.standard_normal(ya.shape).astype(np.float32)
    dxa, _ = a.backward(dy)
    dxb, _ = b.backward(dy.transpose(1, 0, 2))
    np.testing.assert_array_equal(dxb, dxa.transpose(1, 0, 2))


@pytest.mark.parametrize("vector", [False, True], ids=["scalar", "vector"])
@pytest.mark.parametrize("fn, max_ulp", [("exp", 2.0), ("tanh", 2.0), ("sigmoid", 3.0)])
def test_float32_activations_accuracy(fn, max_ulp, vector, cpu_capability):
    # vector=True: the forms of the LSTM rows' explicit vector code (their own under AVX-512); the
    # length is no multiple of a vector width, so the masked last vector is checked too
    x = np.concatenate([np.linspace(-100, 100, 200_001), np.linspace(-1, 1, 100_001), [0.0, -0.0, 1e-30, -1e-30]])
    x = x.astype(np.float32)
    if fn == "exp":
        x = x[(x > -87) & (x < 88)]
    got = sk._C.cell_math(fn, x, vector=vector).astype(np.float64)
    xd = x.astype(np.float64)
    want = {"exp": np.exp, "tanh": np.tanh, "sigmoid": lambda v: 1 / (1 + np.exp(-v))}[fn](xd)
    ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    ulp = np.maximum(ulp, np.finfo(np.float32).tiny)  # sigmoid far left: absolute, not relative
    err = np.abs(got - want) / ulp
    assert err.max() <= max_ulp, f"{fn}: {err.max():.2f} ulp at x={x[np.argmax(err)]}"


@pytest.mark.parametrize("vector", [False, True], ids=["scalar", "vector"])
def test_float32_activations_special_values(vector, cpu_capability):
    x = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 88.7, -88.7, 9.5, -9.5, 0.0], np.float32)
    x = np.tile(x, 5)[:47]  # whole vectors and a partial one
    with np.errstate(over="ignore"):
        want_sigmoid = 1 / (1 + np.exp(-x.astype(np.float64)))
    for fn, want in [("tanh", np.tanh(x.astype(np.float64))), ("sigmoid", want_sigmoid)]:
        got = sk._C.cell_math(fn, x, vector=vector).astype(np.float64)
        assert np.array_equal(np.isnan(got), np.isnan(x)), f"{fn}: NaN in, NaN out"
        finite = ~np.isnan(x)
        assert np.abs(got[finite] - want[finite]).max() <= 1e-7, f"{fn}: {got[finite]} vs {want[finite]}"


# ---- LSTM with projections (proj_size) ------------------------------------------------------------
# (T, B, I, H, P, layers, bidirectional, variable lengths, initial state); P < H, several chunks of
# each for every capability where the sizes allow, odd everywhere else
PROJ_CONFIGS = {
    "p1_h2": (3, 2, 2, 2, 1, 1, True, False, True),
    "odd_h7_p3": (5, 3, 4, 7, 3, 1, False, True, True),
    "t1_b1": (1, 1, 5, 7, 2, 1, True, False, False),
    "t1_b1_h70_p40": (1, 1, 21, 70, 40, 2, True, False, True),  # one step, one row: from the weights' rows
    "h129_p37": (6, 3, 9, 129, 37, 1, False, True, True),
    "bidir_2layers_h65_p33": (4, 3, 5, 65, 33, 2, True, True, False),
    "p_many_chunks_h40_p39": (3, 5, 3, 40, 39, 2, True, True, True),
}


def make_proj_case(config, dtype, rng):
    T, B, I, H, P, L, bidir, var_len, with_state = PROJ_CONFIGS[config]
    layer = sk.nn.LSTM(
        I, H, num_layers=L, bidirectional=bidir, dtype=dtype, seed=int(rng.integers(1 << 30)), proj_size=P
    )
    D = 2 if bidir else 1
    x = rng.standard_normal((T, B, I))
    lengths = random_lengths(T, B, rng) if var_len else None
    h0 = 0.5 * rng.standard_normal((L * D, B, P)) if with_state else None
    c0 = 0.5 * rng.standard_normal((L * D, B, H)) if with_state else None
    dy = rng.standard_normal((T, B, D * P))
    dh = rng.standard_normal((L * D, B, P))
    dc = rng.standard_normal((L * D, B, H))
    return layer, x, lengths, h0, c0, dy, dh, dc


@pytest.mark.parametrize("config", sorted(PROJ_CONFIGS))
def test_proj_float64_kernel_equals_reference(config, rng, cpu_capability):
    layer, x, lengths, h0, c0, dy, dh, dc = make_proj_case(config, np.float64, rng)
    got = run_layer(layer, "lstm", x, lengths, h0, c0, dy, dh, dc)
    want = run_reference(layer, "lstm", {}, x, lengths, h0, c0, dy, dh, dc, np.float64)
    assert set(got) == set(want) and any(k.startswith("grad_weight_hr") for k in got)
    for k in want:
        assert_close_rel(k, got[k], want[k], 1e-12)


@pytest.mark.parametrize("config", sorted(PROJ_CONFIGS))
def test_proj_float32_kernel_within_tolerance_rule(config, rng, cpu_capability):
    layer, x, lengths, h0, c0, dy, dh, dc = make_proj_case(config, np.float32, rng)
    f32 = lambda a: None if a is None else a.astype(np.float32)  # noqa: E731
    x, h0, c0, dy, dh, dc = map(f32, (x, h0, c0, dy, dh, dc))
    got = run_layer(layer, "lstm", x, lengths, h0, c0, dy, dh, dc)
    ref64 = run_reference(layer, "lstm", {}, x, lengths, h0, c0, dy, dh, dc, np.float64)
    ref32 = run_reference(layer, "lstm", {}, x, lengths, h0, c0, dy, dh, dc, np.float32)
    for k in ref64:
        assert got[k].dtype == np.float32, k
        assert_within_rule(k, got[k], ref64[k], ref32[k])


def test_proj_gradients_by_finite_differences(rng):
    """Central differences of the float64 proj kernels themselves."""
    layer, x, lengths, h0, c0, dy, dh, dc = make_proj_case("bidir_2layers_h65_p33", np.float64, rng)
    h0 = 0.5 * rng.standard_normal(dh.shape)
    c0 = 0.5 * rng.standard_normal(dc.shape)

    def loss():
        y, (hn, cn) = layer.eval()(x, (h0, c0), lengths)
        layer.train()
        return float(np.sum(y * dy) + np.sum(hn * dh) + np.sum(cn * dc))

    got = run_layer(layer, "lstm", x, lengths, h0, c0, dy, dh, dc)
    targets = [("dx", x), ("dh0", h0), ("dc0", c0)] + [("grad_" + k, v) for k, v in layer.params.items()]
    for name, arr in targets:
        picks = rng.choice(arr.size, size=min(arr.size, 8), replace=False)
        for i, fd in zip(picks, numerical_grad(loss, arr, 1e-6, picks)):
            an = got[name].reshape(-1)[i]
            assert abs(fd - an) <= 1e-6 * max(1.0, abs(fd)), f"{name}[{i}]: finite difference {fd} vs kernel {an}"


def test_proj_layer_shapes_and_checks():
    layer = sk.nn.LSTM(3, 6, num_layers=2, bidirectional=True, proj_size=4)
    assert layer.params["weight_hh_l1"].shape == (24, 4) and layer.params["weight_ih_l1"].shape == (24, 8)
    assert layer.params["weight_hr_l1_reverse"].shape == (4, 6)
    assert "proj_size=4" in repr(layer)
    y, (h, c) = layer(np.zeros((2, 5, 3), np.float32))
    assert y.shape == (2, 5, 8) and h.shape == (4, 5, 4) and c.shape == (4, 5, 6)
    with pytest.raises(ValueError, match="proj_size must be smaller than hidden_size"):
        sk.nn.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="proj_size"):
        sk.nn.LSTM(3, 4, proj_size=-1)
    with pytest.raises(ValueError, match=r"hx\[0\]: expected shape \(4, 5, 4\)"):
        layer(np.zeros((2, 5, 3), np.float32), (np.zeros((4, 5, 6), np.float32), np.zeros((4, 5, 6), np.float32)))
