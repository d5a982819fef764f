"""seqkernels.nn layers against torch.nn on the CPU: a torch state dict loads unchanged and gives
the same outputs, final states and gradients (within 1e-5 relative in float32)."""

import numpy as np
import pytest

import seqkernels as sk
from tests.tolerance import assert_close_rel

torch = pytest.importorskip("torch")
# torch.nn.LSTM(proj_size) in float32 warns that oneDNN cannot run it (it falls back to its own loop)
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")

# (seqkernels class, torch class, kwargs for both)
PAIRS = {
    "lstm": (sk.nn.LSTM, torch.nn.LSTM, {}),
    "lstm_proj": (sk.nn.LSTM, torch.nn.LSTM, {"proj_size": 3}),
    "gru": (sk.nn.GRU, torch.nn.GRU, {}),
    "rnn_tanh": (sk.nn.RNN, torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (sk.nn.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
}

# (T, B, I, H, layers, bidirectional, batch_first, lengths, bias)
CONFIGS = {
    "single": (7, 3, 5, 11, 1, False, False, None, True),
    "bidir_2layers_packed": (6, 4, 5, 37, 2, True, False, [6, 1, 4, 3], True),
    "batch_first_packed": (5, 3, 4, 9, 2, False, True, [2, 5, 3], True),
    "no_bias_h129": (4, 2, 6, 129, 1, True, False, None, False),
}


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("cell", sorted(PAIRS))
def test_matches_torch(cell, config, rng):
    ours_cls, torch_cls, kw = PAIRS[cell]
    T, B, I, H, L, bidir, batch_first, lengths, bias = CONFIGS[config]
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
    hx_t = (h0t, c0t) if is_lstm else h0t
    if lengths is not None:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False
        )
        out, hn_t = tm(packed, hx_t)
        yt, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    else:
        yt, hn_t = tm(xt, hx_t)
    y, hn = ours(x, (h0, c0) if is_lstm else h0, lengths)

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
        assert_close_rel("dc0", dhx[1], c0t.grad.numpy(), rel)
        dh0 = dhx[0]
    else:
        assert_close_rel("h_n", hn, hn_t.detach().numpy(), rel)
        dh0 = dhx
    assert_close_rel("dx", dx, xt.grad.numpy(), rel)
    assert_close_rel("dh0", dh0, h0t.grad.numpy(), rel)
    named = dict(tm.named_parameters())
    assert set(ours.grads) == set(named)
    for name, p in named.items():
        assert_close_rel(name, ours.grads[name], p.grad.numpy(), rel)


def test_parameter_names_and_shapes_match_torch():
    for ours_cls, torch_cls, kw in PAIRS.values():
        tm = torch_cls(5, 7, num_layers=2, bidirectional=True, **kw)
        ours = ours_cls(5, 7, num_layers=2, bidirectional=True, **kw)
        assert list(ours.state_dict()) == list(tm.state_dict())
        for k, v in tm.state_dict().items():
            assert ours.state_dict()[k].shape == tuple(v.shape)


def test_state_dict_round_trip(rng):
    a = sk.nn.GRU(4, 6, num_layers=2, seed=1)
    b = sk.nn.GRU(4, 6, num_layers=2, seed=2)
    b.load_state_dict(a.state_dict())
    x = rng.standard_normal((3, 2, 4)).astype(np.float32)
    np.testing.assert_array_equal(a(x)[0], b(x)[0])
    with pytest.raises(ValueError, match="missing"):
        b.load_state_dict({k: v for k, v in a.state_dict().items() if k != "weight_hh_l1"})
    with pytest.raises(ValueError, match="weight_ih_l0"):
        b.load_state_dict({**a.state_dict(), "weight_ih_l0": np.zeros((3, 3))})
