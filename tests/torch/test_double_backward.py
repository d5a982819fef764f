"""Second-order gradients: gradgradcheck in float64 on small odd sizes for every cell, direction,
layer count, packed lengths and dropout; gradients taken with create_graph=True carry a graph; a
gradient penalty (WGAN-GP style) gives the same parameter gradients as torch.nn; the first-order
path still runs the fused backward."""

import pytest

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

import seqkernels.torch as skt  # noqa: E402
from seqkernels.torch import _kernels  # noqa: E402
from tests.torch.helpers import CELLS, make_pair  # noqa: E402


@pytest.fixture
def one_thread():
    # gradgradcheck runs thousands of tiny forwards; a second OpenMP thread only adds wake-ups.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _as_function(module, packed, lengths, seed=None):
    """(x, h0[, c0], *params) -> every output, the parameters passed through functional_call;
    with ``seed``, dropout draws the same masks on every call."""
    lstm = module.mode == "LSTM"
    names = [k for k, _ in module.named_parameters()]

    def f(x, h0, c0, *ps):
        if seed is not None:
            torch.manual_seed(seed)
        inp = pack_padded_sequence(x, lengths, enforce_sorted=False) if packed else x
        y, hidden = torch.func.functional_call(module, dict(zip(names, ps)), (inp, (h0, c0) if lstm else h0))
        y = y.data if packed else y
        return (y, *hidden) if lstm else (y, hidden)

    return f


def _gradgradcheck(module, packed=False, seed=None, T=3, B=3):
    torch.manual_seed(0)
    L, D, H, I = module.num_layers, module.num_directions, module.hidden_size, module.input_size
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    R = getattr(module, "proj_size", 0) or H  # units of h
    h0 = torch.randn(L * D, B, R, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(L * D, B, H, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for p in module.parameters()]
    f = _as_function(module, packed, torch.tensor([T, 1, 2][:B]), seed)
    assert torch.autograd.gradgradcheck(f, (x, h0, c0, *params), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("packed", [False, True], ids=["tensor", "packed"])
def test_gradgradcheck_bidirectional(cell, packed, one_thread):
    ours_cls, _, extra = CELLS[cell]
    torch.manual_seed(1)
    _gradgradcheck(ours_cls(2, 3, bidirectional=True, **extra).double(), packed)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_gradgradcheck_two_layers_with_dropout(cell, one_thread):
    ours_cls, _, extra = CELLS[cell]
    torch.manual_seed(2)
    module = ours_cls(2, 3, num_layers=2, dropout=0.3, **extra).double().train()
    _gradgradcheck(module, packed=True, seed=7, T=2, B=2)


def test_gradgradcheck_gru_reset_before_and_no_bias(one_thread):
    torch.manual_seed(3)
    _gradgradcheck(skt.GRU(2, 3, reset_after=False, bidirectional=True).double(), packed=True)
    _gradgradcheck(skt.LSTM(2, 3, bias=False).double())


@pytest.mark.parametrize("packed", [False, True], ids=["tensor", "packed"])
def test_gradgradcheck_lstm_with_projections(packed, one_thread):
    torch.manual_seed(4)
    _gradgradcheck(skt.LSTM(2, 4, proj_size=2, num_layers=2, bidirectional=True).double(), packed)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_create_graph_gives_gradients_with_a_graph(cell):
    ours, _ = make_pair(cell, 3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(5, 2, 3, requires_grad=True)
    y = ours(x)[0]
    gx, gw = torch.autograd.grad(y.square().sum(), (x, ours.weight_hh_l0), create_graph=True)
    assert gx.requires_grad and gx.grad_fn is not None
    assert gw.requires_grad and gw.grad_fn is not None
    (gx.sum() + gw.sum()).backward()  # and it can be differentiated again
    assert all(p.grad is not None for p in ours.parameters())


def _penalty_grads(module, x, packed, seed):
    """A WGAN-GP critic step: loss + (‖∂critic/∂x‖ − 1)², backpropagated to every parameter."""
    module.zero_grad()
    x.grad = None
    inp = pack_padded_sequence(x, torch.tensor([4, 2, 3]), enforce_sorted=False) if packed else x
    torch.manual_seed(seed)
    y, hidden = module(inp)
    y = y.data if isinstance(y, torch.nn.utils.rnn.PackedSequence) else y
    h = hidden[0] if isinstance(hidden, tuple) else hidden
    critic = y.tanh().sum() + h.square().sum()
    (gx,) = torch.autograd.grad(critic, x, create_graph=True)
    loss = critic + (gx.flatten().norm() - 1) ** 2
    loss.backward()
    return [x.grad.clone(), *(p.grad.clone() for p in module.parameters())]


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("packed", [False, True], ids=["tensor", "packed"])
def test_gradient_penalty_matches_torch(cell, packed):
    ours, ref = make_pair(cell, 3, 5, num_layers=2, bidirectional=True, dropout=0.25, dtype=torch.float64)
    ours.train(), ref.train()
    x = torch.randn(4, 3, 3, dtype=torch.float64, requires_grad=True)
    got, want = _penalty_grads(ours, x, packed, 11), _penalty_grads(ref, x, packed, 11)
    names = ["x", *(k for k, _ in ours.named_parameters())]
    for name, a, b in zip(names, got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)


def test_first_order_backward_stays_fused(monkeypatch):
    """Without create_graph the fused backward runs and the torch-op recomputation does not."""
    from seqkernels.torch import _differentiable

    fused = []
    real = _kernels.layer_backward
    monkeypatch.setattr(_kernels, "layer_backward", lambda *a, **k: fused.append(1) or real(*a, **k))
    monkeypatch.setattr(_differentiable, "layer", lambda *a, **k: pytest.fail("recomputed on a first-order pass"))
    ours, _ = make_pair("lstm", 3, 4, num_layers=2)
    x = torch.randn(5, 2, 3, requires_grad=True)
    ours(x)[0].sum().backward()
    assert fused == [1, 1] and x.grad is not None


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_batched_gradients_equal_one_at_a_time(cell):
    """autograd.grad(..., is_grads_batched=True) (jacobians, gradcheck's batched check) runs the
    backward on batched cotangents, which the fused kernels cannot take: the torch-op path does."""
    ours, _ = make_pair(cell, 3, 4, bidirectional=True, dtype=torch.float64)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    y = ours(x)[0]
    cot = torch.randn(4, *y.shape, dtype=torch.float64)
    (batched,) = torch.autograd.grad(y, x, cot, is_grads_batched=True, retain_graph=True)
    one_by_one = torch.stack([torch.autograd.grad(y, x, c, retain_graph=True)[0] for c in cot])
    torch.testing.assert_close(batched, one_by_one, rtol=1e-12, atol=1e-12)
