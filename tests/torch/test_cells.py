"""seqkernels.torch cells against torch.nn's cells: construction (parameter names, shapes, the
same initial values from one seed), outputs and every gradient, unbatched input, hx=None, empty
batch, second-order gradients, the exception types, and a decoding loop."""

import pytest

torch = pytest.importorskip("torch")

import seqkernels.torch as skt  # noqa: E402
from tests.tolerance import assert_close_rel  # noqa: E402
from tests.torch.helpers import raised_type  # noqa: E402

CELLS = {
    "lstm": (skt.LSTMCell, torch.nn.LSTMCell, {}),
    "gru": (skt.GRUCell, torch.nn.GRUCell, {}),
    "rnn_tanh": (skt.RNNCell, torch.nn.RNNCell, {"nonlinearity": "tanh"}),
    "rnn_relu": (skt.RNNCell, torch.nn.RNNCell, {"nonlinearity": "relu"}),
}


def _pair(cell, *args, dtype=torch.float32, **kwargs):
    ours_cls, torch_cls, extra = CELLS[cell]
    torch.manual_seed(0)
    ref = torch_cls(*args, **extra, **kwargs).to(dtype)
    torch.manual_seed(0)
    ours = ours_cls(*args, **extra, **kwargs).to(dtype)
    return ours, ref


def _flat(out):
    return list(out) if isinstance(out, tuple) else [out]


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("bias", [True, False])
def test_construction_like_torch(cell, bias):
    ours, ref = _pair(cell, 5, 7, bias)
    assert [(k, p.shape) for k, p in ours.named_parameters()] == [(k, p.shape) for k, p in ref.named_parameters()]
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(a, b)  # same init draws from the same seed
    assert repr(ours).split("(", 1)[1] == repr(ref).split("(", 1)[1]
    assert ours.bias_ih is None if not bias else ours.bias_ih is not None


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", ["batched", "unbatched", "no_hx"])
def test_outputs_and_gradients_equal_torch(cell, dtype, shape):
    ours, ref = _pair(cell, 5, 7, dtype=dtype)
    gen = torch.Generator().manual_seed(1)
    B = (3,) if shape != "unbatched" else ()
    x = torch.randn(*B, 5, generator=gen, dtype=dtype, requires_grad=True)
    h = torch.randn(*B, 7, generator=gen, dtype=dtype, requires_grad=True)
    c = torch.randn(*B, 7, generator=gen, dtype=dtype, requires_grad=True)
    hx = None if shape == "no_hx" else ((h, c) if cell == "lstm" else h)
    leaves = [x] + ([] if hx is None else _flat(hx))
    rel = 1e-5 if dtype == torch.float32 else 1e-12
    outs, outs_ref = _flat(ours(x, hx)), _flat(ref(x, hx))
    for a, b in zip(outs, outs_ref):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert_close_rel("out", a.detach().numpy(), b.detach().numpy(), rel)
    cot = [torch.randn(o.shape, generator=gen, dtype=dtype) for o in outs]
    g = torch.autograd.grad(outs, leaves + list(ours.parameters()), cot)
    g_ref = torch.autograd.grad(outs_ref, leaves + list(ref.parameters()), cot)
    for a, b in zip(g, g_ref):
        assert_close_rel("grad", a.numpy(), b.numpy(), rel)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_gradgradcheck(cell):
    ours, _ = _pair(cell, 2, 3, dtype=torch.float64)
    names = [k for k, _ in ours.named_parameters()]
    x = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    c = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for p in ours.parameters()]

    def f(x, h, c, *ps):
        out = torch.func.functional_call(ours, dict(zip(names, ps)), (x, (h, c) if cell == "lstm" else h))
        return out

    assert torch.autograd.gradgradcheck(f, (x, h, c, *params), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gru_cell_reset_before_matches_seqkernels_nn():
    import numpy as np

    import seqkernels as sk

    ours = skt.GRUCell(4, 5, reset_after=False, dtype=torch.float64)
    twin = sk.nn.GRUCell(4, 5, reset_after=False, dtype=np.float64).load_state_dict(ours.state_dict())
    x, h = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    assert_close_rel("h'", ours(x, h).detach().numpy(), twin(x.numpy(), h.numpy()), 1e-12)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_empty_batch_keeps_the_gradient_path(cell):
    for m in _pair(cell, 3, 4):
        x = torch.randn(0, 3, requires_grad=True)
        out = _flat(m(x))
        assert all(o.shape == (0, 4) and o.requires_grad for o in out)
        sum(o.sum() for o in out).backward()
        assert x.grad.shape == (0, 3)
        assert all(p.grad is not None and bool(p.grad.eq(0).all()) for p in m.parameters())


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("case", ["input_3d", "input_size", "hx_batch", "hx_size", "hx_3d", "dtype"])
def test_errors_like_torch(cell, case):
    ours, ref = _pair(cell, 3, 4)
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    if case == "input_3d":
        x = torch.randn(1, 2, 3)
    elif case == "input_size":
        x = torch.randn(2, 5)
    elif case == "hx_batch":
        h = torch.randn(3, 4)
    elif case == "hx_size":
        h = torch.randn(2, 5)
    elif case == "hx_3d":
        h = torch.randn(1, 2, 4)
    elif case == "dtype":
        x = x.double()
    hx = (h, h) if cell == "lstm" else h
    want = raised_type(lambda: ref(x, hx))
    assert want is not None
    with pytest.raises(want):
        ours(x, hx)


def test_decoding_loop_equals_torch():
    """A greedy decoder stepping an LSTMCell by hand, trained one step: same loss and gradients."""
    ours, ref = _pair("lstm", 6, 8)
    torch.manual_seed(2)
    emb, proj = torch.nn.Embedding(10, 6), torch.nn.Linear(8, 10)
    losses = []
    for cell in (ours, ref):
        tok, state, loss = torch.zeros(4, dtype=torch.long), None, 0.0
        for _ in range(5):
            state = cell(emb(tok), state)
            logits = proj(state[0])
            loss = loss + logits.logsumexp(1).mean()
            tok = logits.argmax(1)
        loss.backward()
        losses.append((loss.detach(), [p.grad.clone() for p in cell.parameters()]))
        cell.zero_grad()
        emb.zero_grad()
        proj.zero_grad()
    torch.testing.assert_close(losses[0][0], losses[1][0])
    for a, b in zip(losses[0][1], losses[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
