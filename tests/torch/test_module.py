"""The nn.Module surface of seqkernels.torch layers matches torch.nn: constructor, attributes,
parameter names, shapes and initialisation, state dicts both ways, dtype conversion, repr."""

import copy
import pickle

import pytest

torch = pytest.importorskip("torch")

import seqkernels.torch as skt  # noqa: E402
from tests.torch.helpers import CELLS, make_pair  # noqa: E402

ATTRS = (
    "mode",
    "input_size",
    "hidden_size",
    "num_layers",
    "bias",
    "batch_first",
    "dropout",
    "bidirectional",
    "proj_size",
    "_flat_weights_names",
    "_all_weights",
)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize(
    "kw", [{}, {"num_layers": 3, "bidirectional": True, "bias": False, "batch_first": True, "dropout": 0.25}]
)
def test_same_attributes_parameters_and_initialisation(cell, kw):
    ours_cls, torch_cls, extra = CELLS[cell]
    torch.manual_seed(5)
    ref = torch_cls(7, 11, **extra, **kw)
    torch.manual_seed(5)
    ours = ours_cls(7, 11, **extra, **kw)
    for a in ATTRS:
        assert getattr(ours, a) == getattr(ref, a), a
    if "nonlinearity" in extra:
        assert ours.nonlinearity == ref.nonlinearity
    # Same names, order, shapes, and (same seed, same registration order) the same values.
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in ref.state_dict().items()
    ]
    for (k, a), b in zip(ours.named_parameters(), ref.parameters()):
        assert isinstance(a, torch.nn.Parameter) and a.requires_grad
        assert torch.equal(a, b), k
    assert [[tuple(p.shape) for p in w] for w in ours.all_weights] == [
        [tuple(p.shape) for p in w] for w in ref.all_weights
    ]
    bound = 1 / 11**0.5
    assert all(p.abs().max() <= bound for p in ours.parameters())


def test_positional_constructor_arguments_like_torch():
    # RNN takes nonlinearity as its fourth positional argument, as torch.nn.RNN does.
    ours, ref = skt.RNN(3, 4, 2, "relu", False, True), torch.nn.RNN(3, 4, 2, "relu", False, True)
    for a in ATTRS + ("nonlinearity",):
        assert getattr(ours, a) == getattr(ref, a), a
    ours, ref = skt.LSTM(3, 4, 2, False, True, 0.5, True, 0), torch.nn.LSTM(3, 4, 2, False, True, 0.5, True, 0)
    for a in ATTRS:
        assert getattr(ours, a) == getattr(ref, a), a


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_state_dicts_load_both_ways(cell):
    ours_cls, torch_cls, extra = CELLS[cell]
    ref = torch_cls(4, 6, num_layers=2, bidirectional=True, **extra)
    ours = ours_cls(4, 6, num_layers=2, bidirectional=True, **extra)
    ours.load_state_dict(ref.state_dict())  # strict: same keys
    x = torch.randn(5, 3, 4)
    torch.testing.assert_close(ours(x)[0], ref(x)[0], rtol=1e-5, atol=1e-6)
    back = torch_cls(4, 6, num_layers=2, bidirectional=True, **extra)
    back.load_state_dict(ours.state_dict())
    for a, b in zip(back.parameters(), ref.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(RuntimeError, match="Missing key"):
        ours.load_state_dict({k: v for k, v in ref.state_dict().items() if k != "weight_hh_l1"})


@pytest.mark.parametrize("convert", ["double", "to"])
def test_dtype_conversion(convert):
    ours, ref = make_pair("lstm", 3, 5, num_layers=2)
    ours = ours.double() if convert == "double" else ours.to(torch.float64)
    ref = ref.double()
    assert all(p.dtype == torch.float64 for p in ours.parameters())
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    y, (h, c) = ours(x)
    assert y.dtype == h.dtype == c.dtype == torch.float64
    torch.testing.assert_close(y, ref(x)[0], rtol=1e-12, atol=1e-14)
    ours.float()
    assert ours(x.float())[0].dtype == torch.float32


def test_factory_kwargs_and_unsupported_dtype():
    m = skt.GRU(3, 4, dtype=torch.float64, device="cpu")
    assert all(p.dtype == torch.float64 and p.device.type == "cpu" for p in m.parameters())
    with pytest.raises(TypeError, match="dtype"):
        skt.GRU(3, 4, dtype=torch.float16)
    half = skt.GRU(3, 4).half()
    with pytest.raises(TypeError, match="float32 and float64"):
        half(torch.randn(2, 1, 3, dtype=torch.float16))


def test_repr_flatten_parameters_copy_and_pickle():
    m = skt.LSTM(3, 4, num_layers=2, bias=False, batch_first=True, dropout=0.5, bidirectional=True)
    ref = torch.nn.LSTM(3, 4, num_layers=2, bias=False, batch_first=True, dropout=0.5, bidirectional=True)
    assert repr(m) == repr(ref)
    assert repr(skt.GRU(2, 3, reset_after=False)) == "GRU(2, 3, reset_after=False)"
    assert m.flatten_parameters() is None
    x = torch.randn(2, 5, 3)
    m.eval()
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert torch.equal(clone(x)[0], m(x)[0])


def test_functional_call_uses_the_given_parameters():
    ours, ref = make_pair("gru", 3, 4)
    x = torch.randn(5, 2, 3)
    params = {k: torch.randn_like(v) for k, v in ref.named_parameters()}
    got = torch.func.functional_call(ours, params, (x,))[0]
    want = torch.func.functional_call(ref, params, (x,))[0]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_module_in_a_model_and_zero_batch():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3))
    lstm = skt.LSTM(3, 4, batch_first=True)
    y, (h, c) = lstm(model(torch.randn(0, 5, 3)))
    ref = torch.nn.LSTM(3, 4, batch_first=True)(torch.randn(0, 5, 3))
    assert y.shape == ref[0].shape and h.shape == ref[1][0].shape and c.shape == ref[1][1].shape
