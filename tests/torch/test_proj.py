"""seqkernels.torch.LSTM(proj_size=P) against torch.nn.LSTM(proj_size=P): parameters and state
dicts, outputs, final states and every gradient (float32 1e-5, float64 1e-12 relative), for every
input kind, lengths, layers and directions."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import seqkernels.torch as skt  # noqa: E402
from tests.torch.helpers import REL, compare, make_input  # noqa: E402

# torch.nn.LSTM(proj_size) in float32 warns that oneDNN cannot run it (it falls back to its own loop)
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")

# (T, B, I, H, P, layers, bidirectional, batch_first, bias, input kind, with hx)
CONFIGS = [
    (5, 3, 4, 7, 3, 1, False, False, True, "tensor", True),
    (4, 3, 5, 9, 2, 2, True, True, True, "packed_unsorted", True),
    (6, 4, 3, 33, 17, 2, True, False, False, "packed_sorted", False),
    (3, 1, 2, 5, 1, 1, True, False, True, "unbatched", True),
    (7, 5, 6, 70, 37, 1, False, False, True, "packed_unsorted", True),
]


def _lengths(T, B, kind, rng):
    lengths = rng.integers(1, T + 1, B).tolist()
    lengths[int(rng.integers(B))] = T
    return sorted(lengths, reverse=True) if kind == "packed_sorted" else lengths


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("index", range(len(CONFIGS)))
def test_outputs_and_gradients_equal_torch(index, dtype):
    T, B, I, H, P, L, bidir, batch_first, bias, kind, with_hx = CONFIGS[index]
    gen = torch.Generator().manual_seed(index)
    torch.manual_seed(index)
    kw = dict(num_layers=L, bidirectional=bidir, batch_first=batch_first, bias=bias, proj_size=P)
    ref = torch.nn.LSTM(I, H, **kw).to(dtype)
    ours = skt.LSTM(I, H, **kw).to(dtype)
    ours.load_state_dict(ref.state_dict())  # torch's state dict, weight_hr_l{k} included, loads unchanged
    x, inp = make_input(kind, T, B, I, _lengths(T, B, kind, np.random.default_rng(index)), batch_first, dtype, gen)
    leaves, hx = {"x": x}, None
    if with_hx:
        D = 2 if bidir else 1
        lead = (L * D,) if kind == "unbatched" else (L * D, B)
        h0 = torch.randn((*lead, P), generator=gen, dtype=dtype).requires_grad_()
        c0 = torch.randn((*lead, H), generator=gen, dtype=dtype).requires_grad_()
        leaves.update(h0=h0, c0=c0)
        hx = (h0, c0)
    compare(ours, ref, inp, hx, leaves, REL[dtype], gen)


def test_parameters_state_dict_and_initialisation_match_torch():
    kw = dict(num_layers=2, bidirectional=True, bias=False, proj_size=3)
    torch.manual_seed(7)
    ref = torch.nn.LSTM(4, 6, **kw)
    torch.manual_seed(7)
    ours = skt.LSTM(4, 6, **kw)
    assert ours.proj_size == 3 and repr(ours) == repr(ref)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in ref.state_dict().items()
    ]
    for (k, a), (_, b) in zip(ours.state_dict().items(), ref.state_dict().items()):
        assert torch.equal(a, b), k  # same order of registration: same draws from the same seed
    ref.load_state_dict(ours.state_dict())


def test_state_shape_errors_like_torch():
    ours, ref = skt.LSTM(3, 5, proj_size=2), torch.nn.LSTM(3, 5, proj_size=2)
    x = torch.randn(4, 2, 3)
    bad = (torch.zeros(1, 2, 5), torch.zeros(1, 2, 5))  # h must have proj_size units
    with pytest.raises(RuntimeError):
        ref(x, bad)
    with pytest.raises(RuntimeError, match="hidden\\[0\\]"):
        ours(x, bad)


def test_zero_batch_shapes():
    ours = skt.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2)
    y, (h, c) = ours(torch.zeros(4, 0, 3))
    assert y.shape == (4, 0, 4) and h.shape == (4, 0, 2) and c.shape == (4, 0, 5)


def test_no_grad_inference_equals_training_forward():
    torch.manual_seed(3)
    ours = skt.LSTM(5, 20, num_layers=2, proj_size=7, dtype=torch.float64)
    x = torch.randn(6, 3, 5, dtype=torch.float64)
    with torch.no_grad():
        y0, (h0, c0) = ours(x)
    y1, (h1, c1) = ours(x.requires_grad_())
    assert torch.equal(y0, y1.detach()) and torch.equal(h0, h1.detach()) and torch.equal(c0, c1.detach())
