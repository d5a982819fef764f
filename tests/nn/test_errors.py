"""Bad input gives a clear ValueError/TypeError naming the argument — never a crash."""

import numpy as np
import pytest

import seqkernels as sk


@pytest.fixture
def lstm():
    return sk.nn.LSTM(4, 5, num_layers=2, bidirectional=True)


X = np.zeros((3, 2, 4), np.float32)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda m: m(np.zeros((3, 4), np.float32)), ValueError, "x: expected 3 dimensions"),
        (lambda m: m(np.zeros((3, 2, 5), np.float32)), ValueError, "x: expected input size 4"),
        (lambda m: m(np.zeros((0, 2, 4), np.float32)), ValueError, "x: the sequence length"),
        (lambda m: m(np.zeros((3, 2, 4), np.int64)), TypeError, "x: expected a floating-point"),
        (lambda m: m("abc"), TypeError, "x: expected a NumPy array"),
        (lambda m: m(np.full((3, 2, 4), np.nan, np.float32)), ValueError, "x: contains NaN"),
        (lambda m: m(np.full((3, 2, 4), np.inf, np.float32)), ValueError, "x: contains NaN or Inf"),
        (lambda m: m(X, np.zeros((4, 2, 5), np.float32)), TypeError, "hx: an LSTM takes a tuple"),
        (
            lambda m: m(X, (np.zeros((4, 2, 5), np.float32), np.zeros((2, 2, 5), np.float32))),
            ValueError,
            r"hx\[1\]: expected shape \(4, 2, 5\)",
        ),
        (lambda m: m(X, (np.zeros((4, 3, 5), np.float32), None)), ValueError, r"hx\[0\]: expected shape"),
        (lambda m: m(X, None, [3, 0]), ValueError, "lengths: every entry must be in 1..3"),
        (lambda m: m(X, None, [3, 4]), ValueError, "lengths: every entry must be in 1..3"),
        (lambda m: m(X, None, [3]), ValueError, r"lengths: expected shape \(2,\)"),
        (lambda m: m(X, None, [1.5, 2.0]), TypeError, "lengths: expected integers"),
        (lambda m: m.backward(np.zeros((3, 2, 10), np.float32)), ValueError, "needs a forward pass in training mode"),
    ],
)
def test_bad_forward_inputs(lstm, call, exc, match):
    with pytest.raises(exc, match=match):
        call(lstm)


def test_bad_backward_inputs(lstm):
    lstm(X)
    with pytest.raises(ValueError, match=r"dy: expected shape \(3, 2, 10\)"):
        lstm.backward(np.zeros((3, 2, 5), np.float32))
    with pytest.raises(ValueError, match="dy: contains NaN"):
        lstm.backward(np.full((3, 2, 10), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"dhx\[0\]: expected shape"):
        lstm.backward(np.zeros((3, 2, 10), np.float32), (np.zeros((1, 2, 5), np.float32), None))
    lstm.backward(np.zeros((3, 2, 10), np.float32))  # a failed call keeps the saved forward
    with pytest.raises(ValueError, match="training mode"):
        lstm.backward(np.zeros((3, 2, 10), np.float32))  # one backward per forward


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(input_size=0, hidden_size=3), ValueError, "input_size must be a positive integer"),
        (dict(input_size=2, hidden_size=2.5), ValueError, "hidden_size must be a positive integer"),
        (dict(input_size=2, hidden_size=3, num_layers=0), ValueError, "num_layers"),
        (dict(input_size=2, hidden_size=3, dropout=1.0), ValueError, "dropout must be a number in"),
        (dict(input_size=2, hidden_size=3, dtype=np.int32), TypeError, "dtype must be float32 or float64"),
    ],
)
def test_bad_constructor_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        sk.nn.LSTM(**kwargs)


def test_bad_rnn_nonlinearity():
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        sk.nn.RNN(2, 3, nonlinearity="sigmoid")


def test_kernel_entry_points_check_their_arrays():
    """The raw bindings validate too: wrong dtype, shape or a read-only output raise ValueError."""
    x = np.zeros((2, 1, 3), np.float32)
    w_ih, w_hh = np.zeros((8, 3), np.float32), np.zeros((8, 2), np.float32)
    y, hn = np.zeros((2, 1, 2), np.float32), np.zeros((1, 2), np.float32)
    args = dict(
        mode="rnn",
        reset_after=True,
        nonlinearity="tanh",
        x=x,
        w_ih=w_ih,
        w_hh=w_hh,
        b_ih=None,
        b_hh=None,
        h0=None,
        c0=None,
        lengths=None,
        reverse=False,
        y=y,
        direction=0,
        h_n=hn,
        c_n=None,
        workspace=None,
    )
    with pytest.raises(ValueError, match=r"w_ih: expected shape \(2, 3\)"):
        sk._C.forward(**args)
    with pytest.raises(ValueError, match="mode must be"):
        sk._C.forward(**{**args, "mode": "lstmx"})
    ok = {**args, "w_ih": np.zeros((2, 3), np.float32), "w_hh": np.zeros((2, 2), np.float32)}
    sk._C.forward(**ok)
    with pytest.raises(ValueError, match="w_hh: expected dtype float32"):
        sk._C.forward(**{**ok, "w_hh": np.zeros((2, 2), np.float64)})
    with pytest.raises(ValueError, match="direction 1 does not fit"):
        sk._C.forward(**{**ok, "direction": 1})
    ro = np.zeros((1, 2), np.float32)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="h_n: expected a writable array"):
        sk._C.forward(**{**ok, "h_n": ro})
    with pytest.raises(ValueError, match="lengths: every entry"):
        sk._C.forward(**{**ok, "lengths": np.array([3], np.int32)})
    with pytest.raises(ValueError, match="y: expected a C-contiguous"):
        sk._C.forward(**{**ok, "y": np.zeros((2, 1, 4), np.float32)[:, :, ::2]})


def test_kernel_entry_points_check_the_projection():
    """proj_size > 0: w_hh is (4H, P), w_hr (P, H) is required, h arrays have P units; w_hr without
    proj_size, or proj_size >= H, is a ValueError."""
    H, P = 4, 2
    x = np.zeros((2, 1, 3), np.float32)
    args = dict(
        mode="lstm",
        reset_after=True,
        nonlinearity="tanh",
        x=x,
        w_ih=np.zeros((4 * H, 3), np.float32),
        w_hh=np.zeros((4 * H, P), np.float32),
        b_ih=None,
        b_hh=None,
        h0=None,
        c0=None,
        lengths=None,
        reverse=False,
        y=np.zeros((2, 1, P), np.float32),
        direction=0,
        h_n=np.zeros((1, P), np.float32),
        c_n=np.zeros((1, H), np.float32),
        workspace=None,
        proj_size=P,
    )
    sk._C.forward(**args, w_hr=np.zeros((P, H), np.float32))
    with pytest.raises(ValueError, match="w_hr: expected a"):
        sk._C.forward(**args)
    with pytest.raises(ValueError, match=r"w_hr: expected shape \(2, 4\)"):
        sk._C.forward(**args, w_hr=np.zeros((H, P), np.float32))
    with pytest.raises(ValueError, match=r"h_n: expected shape \(1, 2\)"):
        sk._C.forward(**{**args, "h_n": np.zeros((1, H), np.float32)}, w_hr=np.zeros((P, H), np.float32))
    with pytest.raises(ValueError, match="proj_size must be smaller"):
        sk._C.forward(
            **{**args, "proj_size": 4, "w_hh": np.zeros((4 * H, 4), np.float32)}, w_hr=np.zeros((4, H), np.float32)
        )
    with pytest.raises(ValueError, match="w_hr: given, but proj_size is 0"):
        sk._C.forward(
            **{
                **args,
                "proj_size": 0,
                "w_hh": np.zeros((4 * H, H), np.float32),
                "y": np.zeros((2, 1, H), np.float32),
                "h_n": np.zeros((1, H), np.float32),
            },
            w_hr=np.zeros((P, H), np.float32),
        )
    with pytest.raises(ValueError, match="proj_size applies to mode 'lstm' only"):
        sk._C.forward(**{**args, "mode": "gru"}, w_hr=np.zeros((P, H), np.float32))
