"""seqkernels.nn cells (one fused step) against the float64 single-step reference
(seqkernels.reference.cells) under the tolerance rule, finite differences, and torch.nn's cells."""

import numpy as np
import pytest

import seqkernels as sk
from seqkernels.reference import cells as ref
from tests.tolerance import assert_close_rel, assert_within_rule, numerical_grad

# name -> (cell class, constructor kwargs, reference forward, reference backward, reference kwargs)
CELLS = {
    "lstm": (sk.nn.LSTMCell, {}, ref.lstm_cell_forward, ref.lstm_cell_backward, {}),
    "gru": (sk.nn.GRUCell, {}, ref.gru_cell_forward, ref.gru_cell_backward, {"reset_after": True}),
    "gru_reset_before": (
        sk.nn.GRUCell,
        {"reset_after": False},
        ref.gru_cell_forward,
        ref.gru_cell_backward,
        {"reset_after": False},
    ),
    "rnn_tanh": (sk.nn.RNNCell, {}, ref.rnn_cell_forward, ref.rnn_cell_backward, {"nonlinearity": "tanh"}),
    "rnn_relu": (
        sk.nn.RNNCell,
        {"nonlinearity": "relu"},
        ref.rnn_cell_forward,
        ref.rnn_cell_backward,
        {"nonlinearity": "relu"},
    ),
}
NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _reference(cell, params, x, h, c, dh, dc, dtype):
    """Forward and backward of the reference at ``dtype``: (outputs, input grads, param grads)."""
    _, _, fwd, bwd, rkw = CELLS[cell]

    def cast(a):
        return None if a is None else np.asarray(a, dtype)

    w = [cast(params.get(n)) for n in NAMES]
    if cell == "lstm":
        h1, c1, cache = fwd(cast(x), cast(h), cast(c), *w)
        dx, dh0, dc0, grads = bwd(cast(dh), cast(dc), cache)
        return [h1, c1], [dx, dh0, dc0], grads
    h1, cache = fwd(cast(x), cast(h), *w, **rkw)
    dx, dh0, grads = bwd(cast(dh), cache)
    return [h1], [dx, dh0], grads


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("B,I,H", [(1, 1, 1), (3, 5, 7), (2, 4, 129)])
@pytest.mark.parametrize("bias", [True, False])
def test_cell_matches_reference_float32(cell, B, I, H, bias, rng):
    cls, kw, *_ = CELLS[cell]
    layer = cls(I, H, bias, seed=3, **kw)
    x, h, c = (rng.standard_normal(s) for s in ((B, I), (B, H), (B, H)))
    dh, dc = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    lstm = cell == "lstm"
    out = layer(x, (h, c) if lstm else h)
    dx, dstate = layer.backward((dh, dc) if lstm else dh)
    got_out = list(out) if lstm else [out]
    got_in = [dx, *dstate] if lstm else [dx, dstate]
    params = {k: v.astype(np.float64) for k, v in layer.params.items()}
    want = _reference(cell, params, x, h, c, dh, dc, np.float64)
    want32 = _reference(cell, params, x, h, c, dh, dc, np.float32)
    for name, a, b, b32 in zip(("h'", "c'"), got_out, want[0], want32[0]):
        assert a.dtype == np.float32 and a.shape == (B, H)
        assert_within_rule(name, a, b, b32)
    for name, a, b, b32 in zip(("dx", "dh", "dc"), got_in, want[1], want32[1]):
        assert_within_rule(name, a, b, b32)
    assert sorted(layer.grads) == sorted(k for k in NAMES if bias or k.startswith("weight"))
    for k, g in layer.grads.items():
        assert_within_rule(
            k,
            g,
            want[2][k.replace("weight_", "w_").replace("bias_", "b_")],
            want32[2][k.replace("weight_", "w_").replace("bias_", "b_")],
        )


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_cell_gradients_by_finite_differences(cell, rng):
    cls, kw, *_ = CELLS[cell]
    layer = cls(3, 5, dtype=np.float64, seed=4, **kw)
    lstm = cell == "lstm"
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 5)), rng.standard_normal((2, 5))
    wh, wc = rng.standard_normal((2, 5)), rng.standard_normal((2, 5))

    def loss():
        out = layer(x, (h, c) if lstm else h)
        return float((out[0] * wh).sum() + (out[1] * wc).sum()) if lstm else float((out * wh).sum())

    loss()
    dx, dstate = layer.backward((wh, wc) if lstm else wh)
    grads = dict(layer.grads)
    assert_close_rel("dx", dx, numerical_grad(loss, x), 1e-7)
    assert_close_rel("dh", dstate[0] if lstm else dstate, numerical_grad(loss, h), 1e-7)
    if lstm:
        assert_close_rel("dc", dstate[1], numerical_grad(loss, c), 1e-7)
    for k, p in layer.params.items():
        assert_close_rel(k, grads[k], numerical_grad(loss, p), 1e-7)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_unbatched_and_default_state(cell, rng):
    cls, kw, *_ = CELLS[cell]
    layer = cls(4, 6, dtype=np.float64, seed=5, **kw)
    x = rng.standard_normal(4)
    lstm = cell == "lstm"
    out = layer(x)
    batched = layer(x[None], (np.zeros((1, 6)), np.zeros((1, 6))) if lstm else np.zeros((1, 6)))
    for a, b in zip(out if lstm else [out], batched if lstm else [batched]):
        assert a.shape == (6,)
        np.testing.assert_array_equal(a, b[0])
    layer(x)
    dx, dstate = layer.backward((np.ones(6), None) if lstm else np.ones(6))
    assert dx.shape == (4,) and (dstate[0] if lstm else dstate).shape == (6,)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_cell_matches_torch_and_loads_its_state_dict(cell, rng):
    torch = pytest.importorskip("torch")
    cls, kw, *_ = CELLS[cell]
    twin = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn_tanh": torch.nn.RNNCell}[cell](5, 7).double()
    layer = cls(5, 7, dtype=np.float64, **kw).load_state_dict(twin.state_dict())
    assert list(layer.state_dict()) == list(twin.state_dict())
    x, h = rng.standard_normal((3, 5)), rng.standard_normal((3, 7))
    lstm = cell == "lstm"
    out = layer(x, (h, h) if lstm else h)
    want = twin(torch.from_numpy(x), (torch.from_numpy(h),) * 2 if lstm else torch.from_numpy(h))
    for a, b in zip(out if lstm else [out], want if lstm else [want]):
        assert_close_rel("out", a, b.detach().numpy(), 1e-12)


def test_cell_errors():
    cell = sk.nn.LSTMCell(3, 4)
    with pytest.raises(ValueError, match="x"):
        cell(np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match=r"hx\[1\]"):
        cell(np.zeros((2, 3)), (np.zeros((2, 4)), np.zeros((3, 4))))
    with pytest.raises(TypeError, match="hx"):
        cell(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="backward"):
        sk.nn.GRUCell(3, 4).backward(np.zeros((2, 4)))
    gru = sk.nn.GRUCell(3, 4)
    gru(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="dhx"):
        gru.backward(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="nonlinearity"):
        sk.nn.RNNCell(3, 4, nonlinearity="gelu")


def test_cell_trains_in_a_module(rng):
    """A cell is a child layer of Module: its parameters and gradients are collected and the
    optimisers update them."""

    class Net(sk.nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = sk.nn.GRUCell(3, 4, seed=0)

    net = Net()
    before = net.cell.params["weight_ih"].copy()
    net.cell(rng.standard_normal((2, 3)).astype(np.float32))
    net.cell.backward(np.ones((2, 4), np.float32))
    assert [k for k, _ in net.named_grads()] == [f"cell.{k}" for k in NAMES]
    sk.nn.SGD(net, lr=0.1).step()
    assert not np.array_equal(before, net.cell.params["weight_ih"])
