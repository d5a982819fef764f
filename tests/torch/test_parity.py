"""Both front ends against torch.nn.LSTM/GRU/RNN with the same weights, on one set of
configurations: the torch drop-ins (seqkernels.torch, autograd) and the NumPy layers
(seqkernels.nn, loading a torch state dict unchanged, with their explicit backward). Outputs, final
states and the gradients of the input, the initial states and every parameter agree within 1e-5
relative (float32) and 1e-12 (float64, drop-ins)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import seqkernels as sk  # noqa: E402
from tests.tolerance import assert_close_rel  # noqa: E402
from tests.torch.helpers import CELLS, REL, compare, make_input, make_pair  # noqa: E402

# torch.nn.LSTM(proj_size) in float32 warns that oneDNN cannot run it (it falls back to its own loop)
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")

KINDS = ("tensor", "unbatched", "packed_sorted", "packed_unsorted")


def _random_configs(n, seed=2026):
    """Odd sizes, 1-2 layers, both directions, batch-first or not, with and without hx and bias."""
    r = np.random.default_rng(seed)
    configs = []
    for i in range(n):
        T, B = int(r.integers(1, 9)), int(r.integers(1, 6))
        kind = KINDS[i % len(KINDS)]
        if kind == "unbatched":
            B = 1
        if kind == "packed_sorted":
            lengths = sorted(r.integers(1, T + 1, B).tolist(), reverse=True)
            lengths[0] = T
        else:
            lengths = r.integers(1, T + 1, B).tolist()
            lengths[int(r.integers(B))] = T  # pad_packed_sequence's T is the longest length
        configs.append(
            dict(
                T=T,
                B=B,
                I=int(r.choice([1, 3, 7, 13])),
                H=int(r.choice([1, 5, 9, 17, 33])),
                L=int(r.integers(1, 3)),
                bidir=bool(r.integers(2)),
                batch_first=bool(r.integers(2)),
                bias=bool(r.random() < 0.75),
                with_hx=bool(r.random() < 0.6),
                kind=kind,
                lengths=lengths,
            )
        )
    return configs


CONFIGS = _random_configs(16)


# The torch drop-ins (seqkernels.torch), through autograd.


def _check(cell, cfg, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    ours, ref = make_pair(
        cell,
        cfg["I"],
        cfg["H"],
        num_layers=cfg["L"],
        bidirectional=cfg["bidir"],
        batch_first=cfg["batch_first"],
        bias=cfg["bias"],
        dtype=dtype,
    )
    x, inp = make_input(cfg["kind"], cfg["T"], cfg["B"], cfg["I"], cfg["lengths"], cfg["batch_first"], dtype, gen)
    leaves, hx = {"x": x}, None
    if cfg["with_hx"]:
        D = 2 if cfg["bidir"] else 1
        shape = (cfg["L"] * D, cfg["H"]) if cfg["kind"] == "unbatched" else (cfg["L"] * D, cfg["B"], cfg["H"])
        h0 = torch.randn(shape, generator=gen, dtype=dtype).requires_grad_()
        leaves["h0"] = h0
        if cell == "lstm":
            c0 = torch.randn(shape, generator=gen, dtype=dtype).requires_grad_()
            leaves["c0"] = c0
            hx = (h0, c0)
        else:
            hx = h0
    compare(ours, ref, inp, hx, leaves, REL[dtype], gen)


@pytest.mark.parametrize("index", range(len(CONFIGS)), ids=lambda i: f"cfg{i}-{CONFIGS[i]['kind']}")
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_random_configs_float32(cell, index):
    _check(cell, CONFIGS[index], torch.float32, seed=index)


@pytest.mark.parametrize("index", range(0, len(CONFIGS), 2), ids=lambda i: f"cfg{i}-{CONFIGS[i]['kind']}")
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_random_configs_float64(cell, index):
    _check(cell, CONFIGS[index], torch.float64, seed=100 + index)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("kind", KINDS)
def test_bidirectional_two_layers_every_input_kind(cell, kind):
    """The configuration with the most moving parts, for every input kind, with hx, in float32."""
    lengths = [7, 5, 5, 2, 1] if kind == "packed_sorted" else [2, 7, 1, 5, 5]
    cfg = dict(
        T=7,
        B=1 if kind == "unbatched" else 5,
        I=6,
        H=19,
        L=2,
        bidir=True,
        batch_first=False,
        bias=True,
        with_hx=True,
        kind=kind,
        lengths=lengths,
    )
    _check(cell, cfg, torch.float32, seed=7)
    _check(cell, {**cfg, "batch_first": True, "with_hx": False}, torch.float32, seed=8)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_larger_hidden_size(cell):
    """H above the kernels' per-thread slice sizes, so the recurrence is split across threads."""
    cfg = dict(
        T=5,
        B=3,
        I=10,
        H=131,
        L=1,
        bidir=True,
        batch_first=False,
        bias=True,
        with_hx=True,
        kind="tensor",
        lengths=[5, 5, 5],
    )
    _check(cell, cfg, torch.float32, seed=11)


# The NumPy layers (seqkernels.nn), loading torch's state dict; their backward is called by hand.

NUMPY_PAIRS = {
    "lstm": (sk.nn.LSTM, torch.nn.LSTM, {}),
    "lstm_proj": (sk.nn.LSTM, torch.nn.LSTM, {"proj_size": 3}),
    "gru": (sk.nn.GRU, torch.nn.GRU, {}),
    "rnn_tanh": (sk.nn.RNN, torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (sk.nn.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
}


def _fixed(T, B, I, H, L, bidir, batch_first, lengths, bias):
    kind = "tensor" if lengths is None else "packed_unsorted"
    return dict(
        T=T,
        B=B,
        I=I,
        H=H,
        L=L,
        bidir=bidir,
        batch_first=batch_first,
        bias=bias,
        with_hx=True,
        kind=kind,
        lengths=lengths,
    )


# Hand-picked shapes, then every random configuration above that the NumPy layers take (they have
# no unbatched input; a packed input is a lengths argument).
NUMPY_CONFIGS = {
    "single": _fixed(7, 3, 5, 11, 1, False, False, None, True),
    "bidir_2layers_packed": _fixed(6, 4, 5, 37, 2, True, False, [6, 1, 4, 3], True),
    "batch_first_packed": _fixed(5, 3, 4, 9, 2, False, True, [2, 5, 3], True),
    "no_bias_h129": _fixed(4, 2, 6, 129, 1, True, False, None, False),
    **{f"cfg{i}-{c['kind']}": c for i, c in enumerate(CONFIGS) if c["kind"] != "unbatched"},
}


@pytest.mark.parametrize("config", list(NUMPY_CONFIGS))
@pytest.mark.parametrize("cell", sorted(NUMPY_PAIRS))
def test_numpy_layers_match_torch(cell, config, rng):
    ours_cls, torch_cls, kw = NUMPY_PAIRS[cell]
    cfg = NUMPY_CONFIGS[config]
    T, B, I, H, L = (cfg[k] for k in "TBIHL")
    bidir, batch_first, bias, with_hx = cfg["bidir"], cfg["batch_first"], cfg["bias"], cfg["with_hx"]
    lengths = None if cfg["kind"] == "tensor" else cfg["lengths"]
    if kw.get("proj_size", 0) >= H:  # a projection must be narrower than H (none at all when H = 1)
        kw = {"proj_size": H - 1} if H > 1 else {}
    torch.manual_seed(0)
    tm = torch_cls(I, H, num_layers=L, bidirectional=bidir, batch_first=batch_first, bias=bias, **kw)
    ours = ours_cls(I, H, num_layers=L, bidirectional=bidir, batch_first=batch_first, bias=bias, **kw)
    ours.load_state_dict(tm.state_dict())
    D = 2 if bidir else 1
    shape = (B, T, I) if batch_first else (T, B, I)
    x = rng.standard_normal(shape).astype(np.float32)
    h0 = rng.standard_normal((L * D, B, kw.get("proj_size") or H)).astype(np.float32)
    c0 = rng.standard_normal((L * D, B, H)).astype(np.float32)
    is_lstm = cell.startswith("lstm")

    xt = torch.from_numpy(x).requires_grad_()
    h0t = torch.from_numpy(h0).requires_grad_()
    c0t = torch.from_numpy(c0).requires_grad_()
    hx_t = ((h0t, c0t) if is_lstm else h0t) if with_hx else None
    if lengths is not None:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False
        )
        out, hn_t = tm(packed, hx_t)
        yt, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    else:
        yt, hn_t = tm(xt, hx_t)
    y, hn = ours(x, ((h0, c0) if is_lstm else h0) if with_hx else None, lengths)

    dy = rng.standard_normal(y.shape).astype(np.float32)
    dh = rng.standard_normal(h0.shape).astype(np.float32)
    dc = rng.standard_normal(c0.shape).astype(np.float32)
    if is_lstm:
        loss = (
            (yt * torch.from_numpy(dy)).sum()
            + (hn_t[0] * torch.from_numpy(dh)).sum()
            + (hn_t[1] * torch.from_numpy(dc)).sum()
        )
    else:
        loss = (yt * torch.from_numpy(dy)).sum() + (hn_t * torch.from_numpy(dh)).sum()
    loss.backward()
    dx, dhx = ours.backward(dy, (dh, dc) if is_lstm else dh)

    rel = 1e-5
    assert_close_rel("y", y, yt.detach().numpy(), rel)
    if is_lstm:
        assert_close_rel("h_n", hn[0], hn_t[0].detach().numpy(), rel)
        assert_close_rel("c_n", hn[1], hn_t[1].detach().numpy(), rel)
        dh0 = dhx[0]
    else:
        assert_close_rel("h_n", hn, hn_t.detach().numpy(), rel)
        dh0 = dhx
    assert_close_rel("dx", dx, xt.grad.numpy(), rel)
    if with_hx:  # else the layers start from zeros and torch has no h0 to differentiate
        assert_close_rel("dh0", dh0, h0t.grad.numpy(), rel)
        if is_lstm:
            assert_close_rel("dc0", dhx[1], c0t.grad.numpy(), rel)
    named = dict(tm.named_parameters())
    assert set(ours.grads) == set(named)
    for name, p in named.items():
        assert_close_rel(name, ours.grads[name], p.grad.numpy(), rel)


def test_numpy_layer_parameter_names_and_shapes_match_torch():
    for ours_cls, torch_cls, kw in NUMPY_PAIRS.values():
        tm = torch_cls(5, 7, num_layers=2, bidirectional=True, **kw)
        ours = ours_cls(5, 7, num_layers=2, bidirectional=True, **kw)
        assert list(ours.state_dict()) == list(tm.state_dict())
        for k, v in tm.state_dict().items():
            assert ours.state_dict()[k].shape == tuple(v.shape)


def test_numpy_layer_state_dict_round_trip(rng):
    a = sk.nn.GRU(4, 6, num_layers=2, seed=1)
    b = sk.nn.GRU(4, 6, num_layers=2, seed=2)
    b.load_state_dict(a.state_dict())
    x = rng.standard_normal((3, 2, 4)).astype(np.float32)
    np.testing.assert_array_equal(a(x)[0], b(x)[0])
    with pytest.raises(ValueError, match="missing"):
        b.load_state_dict({k: v for k, v in a.state_dict().items() if k != "weight_hh_l1"})
    with pytest.raises(ValueError, match="weight_ih_l0"):
        b.load_state_dict({**a.state_dict(), "weight_ih_l0": np.zeros((3, 3))})
