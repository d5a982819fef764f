"""Autograd through the seqkernels kernels: gradcheck in float64, requires_grad combinations
(the inference path when nothing needs a gradient), retain_graph, and GRU reset_after=False
against seqkernels.nn (torch.nn has no such GRU)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

import seqkernels as sk  # noqa: E402
import seqkernels.torch as skt  # noqa: E402
from seqkernels.torch import _kernels  # noqa: E402
from tests.tolerance import assert_close_rel  # noqa: E402
from tests.torch.helpers import CELLS, make_pair  # noqa: E402


def _gradcheck(module, packed, batch_first):
    """gradcheck of (x, h0[, c0], *params) -> all outputs, parameters passed via functional_call."""
    torch.manual_seed(0)
    lstm = module.mode == "LSTM"
    D, L, H, I = module.num_directions, module.num_layers, module.hidden_size, module.input_size
    T, B = 4, 3
    # One OpenMP thread: gradcheck runs hundreds of tiny forwards, where waking a second thread
    # costs more than the work (and much more on a busy machine). torch and seqkernels share the
    # OpenMP runtime, so this also sets the kernels' thread count.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(L * D, B, H, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(L * D, B, H, dtype=torch.float64, requires_grad=True)
    names = [k for k, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in module.parameters()]
    lengths = torch.tensor([2, 4, 1])

    def f(x, h0, c0, *ps):
        inp = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False) if packed else x
        y, hidden = torch.func.functional_call(module, dict(zip(names, ps)), (inp, (h0, c0) if lstm else h0))
        y = y.data if packed else y
        return (y, *hidden) if lstm else (y, hidden)

    try:
        assert torch.autograd.gradcheck(f, (x, h0, c0, *params), eps=1e-6, atol=1e-7, rtol=1e-5)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("packed", [False, True], ids=["tensor", "packed"])
def test_gradcheck_float64(cell, packed):
    ours_cls, _, extra = CELLS[cell]
    torch.manual_seed(1)
    # two layers on padded input, one on packed input: gradcheck costs a forward per input element
    module = ours_cls(2, 3, num_layers=1 if packed else 2, bidirectional=True, **extra).double()
    _gradcheck(module, packed, batch_first=packed)


def test_gradcheck_gru_reset_before_and_no_bias():
    torch.manual_seed(2)
    _gradcheck(skt.GRU(2, 3, bidirectional=True, reset_after=False).double(), packed=True, batch_first=False)
    _gradcheck(skt.LSTM(2, 3, bias=False).double(), packed=False, batch_first=False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gru_reset_after_false_matches_seqkernels_nn(dtype, rng):
    """torch.nn has no Cho et al. GRU; seqkernels.nn.GRU(reset_after=False) is checked against the
    float64 reference, so it is the twin here."""
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    ours = skt.GRU(5, 7, num_layers=2, bidirectional=True, batch_first=True, reset_after=False, dtype=dtype)
    twin = sk.nn.GRU(5, 7, num_layers=2, bidirectional=True, batch_first=True, reset_after=False, dtype=np_dtype)
    twin.load_state_dict(ours.state_dict())
    x = rng.standard_normal((3, 6, 5)).astype(np_dtype)
    h0 = rng.standard_normal((4, 3, 7)).astype(np_dtype)
    lengths = np.array([6, 2, 4])
    y, h_n = twin(x, h0, lengths)
    dy = rng.standard_normal(y.shape).astype(np_dtype) * (np.arange(6) < lengths[:, None])[:, :, None]
    dh = rng.standard_normal(h_n.shape).astype(np_dtype)
    dx, dh0 = twin.backward(dy, dh)

    xt, h0t = torch.from_numpy(x).requires_grad_(), torch.from_numpy(h0).requires_grad_()
    yt, hnt = ours(pack_padded_sequence(xt, torch.from_numpy(lengths), batch_first=True, enforce_sorted=False), h0t)
    yt, _ = torch.nn.utils.rnn.pad_packed_sequence(yt, batch_first=True, total_length=6)
    torch.autograd.backward([yt, hnt], [torch.from_numpy(dy), torch.from_numpy(dh)])
    rel = 1e-5 if dtype == torch.float32 else 1e-12
    assert_close_rel("y", yt.detach().numpy(), y, rel)
    assert_close_rel("h_n", hnt.detach().numpy(), h_n, rel)
    assert_close_rel("dx", xt.grad.numpy(), dx, rel)
    assert_close_rel("dh0", h0t.grad.numpy(), dh0, rel)
    for name, p in ours.named_parameters():
        assert_close_rel(name, p.grad.numpy(), twin.grads[name], rel)


@pytest.fixture
def calls(monkeypatch):
    """Records the ``training`` flag of every kernel forward (True = workspace for backward)."""
    seen = []
    real = _kernels.layer_forward

    def spy(spec, x, h0, c0, weights, lengths, training, packs=None):
        seen.append(training)
        return real(spec, x, h0, c0, weights, lengths, training, packs)

    monkeypatch.setattr(_kernels, "layer_forward", spy)
    return seen


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_inference_path_without_workspace(cell, calls):
    ours, ref = make_pair(cell, 3, 5, num_layers=2)
    x = torch.randn(4, 2, 3)
    with torch.no_grad():
        y = ours(x)[0]
    assert y.grad_fn is None and calls == [False, False]
    with torch.inference_mode():
        y2 = ours(x)[0]
    assert calls == [False] * 4 and torch.equal(y, y2)
    for p in ours.parameters():
        p.requires_grad_(False)
    y3 = ours(x)[0]  # grad mode on, but nothing requires a gradient
    assert y3.grad_fn is None and calls == [False] * 6 and torch.equal(y, y3)
    torch.testing.assert_close(y, ref(x)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("which", ["x", "h0", "params", "x_and_h0", "layer1_params"])
def test_requires_grad_combinations(which, calls):
    ours, ref = make_pair("lstm", 3, 5, num_layers=2, bidirectional=True)
    torch.manual_seed(3)
    x0, h00, c00 = torch.randn(4, 2, 3), torch.randn(4, 2, 5), torch.randn(4, 2, 5)
    grads = {}
    for m in (ours, ref):
        x, h0, c0 = x0.clone(), h00.clone(), c00.clone()
        for name, p in m.named_parameters():
            p.requires_grad_(which == "params" or (which == "layer1_params" and name.endswith(("_l1", "_l1_reverse"))))
        x.requires_grad_(which in ("x", "x_and_h0"))
        h0.requires_grad_(which in ("h0", "x_and_h0"))
        y, (h, c) = m(x, (h0, c0))
        (y.square().sum() + h.sum() + c.sum()).backward()
        grads[m] = [t.grad for t in (x, h0, c0, *m.parameters())]
    for a, b in zip(grads[ours], grads[ref]):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # a layer saves a workspace only when one of its inputs needs a gradient
    assert calls == [which != "layer1_params", True]


def test_retain_graph_and_second_backward():
    ours, _ = make_pair("gru", 3, 4, bidirectional=True)
    x = torch.randn(5, 2, 3, requires_grad=True)
    y, h = ours(x)
    loss = y.sum() + h.sum()
    (g1,) = torch.autograd.grad(loss, x, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, x)
    assert torch.equal(g1, g2)
    with pytest.raises(RuntimeError, match="second time"):
        torch.autograd.grad(loss, x)


def test_only_final_state_used():
    """Gradients arrive for h_n alone (no dy): the unused output's cotangent is zeros."""
    ours, ref = make_pair("lstm", 3, 4, num_layers=2)
    x = torch.randn(5, 2, 3, requires_grad=True)
    outs = {}
    for m in (ours, ref):
        x.grad = None
        _, (h, _c) = m(x)
        h.sum().backward()
        outs[m] = x.grad.clone()
    torch.testing.assert_close(outs[ours], outs[ref], rtol=1e-5, atol=1e-7)


def test_in_place_change_of_weights_is_detected():
    ours, _ = make_pair("rnn_tanh", 3, 4)
    y, _ = ours(torch.randn(5, 2, 3))
    with torch.no_grad():
        ours.weight_hh_l0.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_live_graphs_keep_their_pooled_workspaces(monkeypatch):
    """Workspaces come from the kernels' block pool and go back only when autograd frees them: two
    forwards whose graphs are both alive, their backwards in reverse order, give each one's own
    gradients (as computed alone)."""
    from seqkernels.nn import _layer_plan

    monkeypatch.setattr(_layer_plan, "POOLED_MIN_BYTES", 0)  # every host buffer from the pool
    sk._C.pool_release()
    torch.manual_seed(5)
    layer = skt.LSTM(6, 9, num_layers=2)
    xs = [torch.randn(7, 3, 6, requires_grad=True) for _ in range(2)]

    def grads_of(loss, x):
        layer.zero_grad(set_to_none=True)
        x.grad = None
        loss.backward()
        return [x.grad.clone()] + [p.grad.clone() for p in layer.parameters()]

    alone = [grads_of(layer(x)[0].square().sum(), x) for x in xs]
    losses = [layer(x)[0].square().sum() for x in xs]  # both workspaces held
    together = [grads_of(losses[1], xs[1]), grads_of(losses[0], xs[0])][::-1]
    for got, want in zip(together, alone):
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=0, atol=0)
    assert sk._C.pool_free_bytes() > 0  # freed graphs gave their workspaces back
