"""Text-CNN layers (seqkernels.nn.conv): the float64 loop reference (seqkernels.reference.conv)
against finite differences; the layers against the reference at float64 and, in float32, within
the tolerance rule; against torch.nn.Conv1d / MaxPool1d; TextCNN against its per-sequence
reference; and errors that name the argument. Sizes are odd on purpose."""

import numpy as np
import pytest

import seqkernels as sk
from seqkernels.reference import conv as ref
from tests.tolerance import assert_close_rel, assert_within_rule, numerical_grad

nn = sk.nn
F64, F32 = np.float64, np.float32

# (T, B, C, F, kernel_size, stride, padding, dilation)
CONV_SHAPES = [
    (7, 3, 5, 4, 3, 1, 0, 1),
    (9, 2, 3, 5, 4, 2, 1, 1),
    (8, 1, 2, 3, 2, 3, 2, 2),
    (5, 3, 1, 1, 5, 1, 0, 1),  # kernel as long as the input: one output step
    (6, 2, 4, 3, 1, 1, 0, 1),  # width 1: a Linear over every step
]


def _conv(shape, dtype, seed=0, **kw):
    T, B, C, F, k, s, p, d = shape
    return nn.Conv1d(C, F, k, stride=s, padding=p, dilation=d, dtype=dtype, seed=seed, **kw)


# ---------------------------------------------------------------------------------------------
# The reference against finite differences
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", CONV_SHAPES[:3])
def test_reference_conv1d_fd(shape, rng):
    T, B, C, F, k, s, p, d = shape
    x, w, b = rng.standard_normal((T, B, C)), rng.standard_normal((F, C, k)), rng.standard_normal(F)
    T_out = ref.conv_output_length(T, k, s, p, d)
    c = rng.standard_normal((T_out, B, F))

    def loss():
        return float((ref.conv1d_forward(x, w, b, s, p, d) * c).sum())

    dx, dw, db = ref.conv1d_backward(x, w, c, s, p, d)
    for name, arr, grad in (("dx", x, dx), ("dw", w, dw), ("db", b, db)):
        assert_close_rel(name, grad, numerical_grad(loss, arr), 1e-6)


def test_reference_pooling_and_relu_fd(rng):
    x = rng.standard_normal((9, 2, 3))
    c = rng.standard_normal((5, 2, 3))  # kernel 3, stride 2, padding 1: 5 windows
    dx = ref.max_pool1d_backward(x, c, 3, 2, 1)
    assert_close_rel(
        "max_pool1d", dx, numerical_grad(lambda: float((ref.max_pool1d_forward(x, 3, 2, 1) * c).sum()), x), 1e-6
    )
    lengths = [9, 4]
    c2 = rng.standard_normal((2, 3))
    dx = ref.max_over_time_backward(x, c2, lengths)
    assert_close_rel(
        "max_over_time", dx, numerical_grad(lambda: float((ref.max_over_time_forward(x, lengths) * c2).sum()), x), 1e-6
    )
    assert not dx[4:, 1].any()  # steps past the length get nothing
    c3 = rng.standard_normal(x.shape)
    assert_close_rel(
        "relu", ref.relu_backward(x, c3), numerical_grad(lambda: float((np.maximum(x, 0) * c3).sum()), x), 1e-6
    )


def test_reference_text_cnn_fd(rng):
    x = rng.standard_normal((6, 3, 4))
    ws = [rng.standard_normal((2, 4, k)) for k in (2, 3, 7)]  # 7 > T: every sequence zero-padded
    bs = [rng.standard_normal(2) for _ in ws]
    lengths = [6, 2, 4]
    c = rng.standard_normal((3, 6))

    def loss():
        return float((ref.text_cnn_forward(x, ws, bs, lengths) * c).sum())

    dx, dws, dbs = ref.text_cnn_backward(x, ws, bs, c, lengths)
    assert_close_rel("dx", dx, numerical_grad(loss, x), 1e-6)
    assert not dx[2:, 1].any()
    for i in range(3):
        assert_close_rel(f"dw{i}", dws[i], numerical_grad(loss, ws[i]), 1e-6)
        assert_close_rel(f"db{i}", dbs[i], numerical_grad(loss, bs[i]), 1e-6)


# ---------------------------------------------------------------------------------------------
# The layers against the reference
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", CONV_SHAPES)
def test_conv1d_matches_reference_float64_and_fd(shape, rng):
    T, B, C, F, k, s, p, d = shape
    conv = _conv(shape, F64)
    x = rng.standard_normal((T, B, C))
    y = conv(x)
    w, b = conv.params["weight"], conv.params["bias"]
    assert_close_rel("y", y, ref.conv1d_forward(x, w, b, s, p, d), 1e-13)
    c = rng.standard_normal(y.shape)
    dx = conv.backward(c)
    rdx, rdw, rdb = ref.conv1d_backward(x, w, c, s, p, d)
    assert_close_rel("dx", dx, rdx, 1e-13)
    assert_close_rel("dw", conv.grads["weight"], rdw, 1e-13)
    assert_close_rel("db", conv.grads["bias"], rdb, 1e-13)
    conv.eval()
    assert_close_rel("dx fd", dx, numerical_grad(lambda: float((conv(x) * c).sum()), x), 1e-6)


@pytest.mark.parametrize("shape", CONV_SHAPES)
def test_conv1d_float32_within_the_tolerance_rule(shape, rng):
    T, B, C, F, k, s, p, d = shape
    conv = _conv(shape, F32, seed=1)
    x = rng.standard_normal((T, B, C)).astype(F32)
    w, b = conv.params["weight"], conv.params["bias"]
    y = conv(x)
    c = rng.standard_normal(y.shape).astype(F32)
    dx = conv.backward(c)
    want = ref.conv1d_forward(x.astype(F64), w, b, s, p, d), ref.conv1d_backward(x.astype(F64), w, c, s, p, d)
    got32 = ref.conv1d_forward(x, w, b, s, p, d), ref.conv1d_backward(x, w, c, s, p, d)
    assert y.dtype == F32 and dx.dtype == F32 and conv.grads["weight"].dtype == F32
    assert_within_rule("y", y, want[0], got32[0])
    for name, got, w64, w32 in zip(
        ("dx", "dw", "db"), (dx, conv.grads["weight"], conv.grads["bias"]), want[1], got32[1]
    ):
        assert_within_rule(name, got, w64, w32)


def test_conv1d_batch_first_and_no_bias(rng):
    x = rng.standard_normal((7, 3, 4))
    tm = nn.Conv1d(4, 5, 3, padding=1, dtype=F64, seed=2)
    bf = nn.Conv1d(4, 5, 3, padding=1, dtype=F64, seed=2, batch_first=True)
    y = tm(x)
    assert_close_rel("batch_first y", bf(x.transpose(1, 0, 2)), y.transpose(1, 0, 2), 1e-15)
    c = rng.standard_normal(y.shape)
    assert_close_rel("batch_first dx", bf.backward(c.transpose(1, 0, 2)), tm.backward(c).transpose(1, 0, 2), 1e-15)
    assert_close_rel("batch_first dw", bf.grads["weight"], tm.grads["weight"], 1e-14)
    nb = nn.Conv1d(4, 2, 2, bias=False, dtype=F64)
    nb(x)
    nb.backward(np.ones((6, 3, 2)))
    assert set(nb.params) == set(nb.grads) == {"weight"}


@pytest.mark.parametrize("k, s, p", [(3, None, 0), (3, 2, 1), (2, 1, 1), (5, 5, 2), (1, 2, 0)])
def test_max_pool1d_matches_reference(k, s, p, rng):
    x = rng.standard_normal((11, 3, 5))
    pool = nn.MaxPool1d(k, s, p)
    y = pool(x)
    assert_close_rel("y", y, ref.max_pool1d_forward(x, k, s, p), 0)
    c = rng.standard_normal(y.shape)
    assert_close_rel("dx", pool.backward(c), ref.max_pool1d_backward(x, c, k, s, p), 1e-15)
    ties = np.zeros((4, 1, 1))  # all equal: the first step of each window wins
    tp = nn.MaxPool1d(2, 1)
    tp(ties)
    assert_close_rel(
        "ties", tp.backward(np.ones((3, 1, 1))), ref.max_pool1d_backward(ties, np.ones((3, 1, 1)), 2, 1), 0
    )


def test_max_over_time_and_relu_match_reference(rng):
    x = rng.standard_normal((6, 4, 3)).astype(F32)
    lengths = np.array([6, 1, 3, 5])
    mot = nn.MaxOverTime()
    y = mot(x, lengths)
    assert y.dtype == F32
    assert_close_rel("y", y, ref.max_over_time_forward(x, lengths), 0)
    c = rng.standard_normal((4, 3)).astype(F32)
    assert_close_rel("dx", mot.backward(c), ref.max_over_time_backward(x, c, lengths), 0)
    assert_close_rel("no lengths", mot(x), ref.max_over_time_forward(x), 0)
    bf = nn.MaxOverTime(batch_first=True)
    assert_close_rel("batch_first", bf(x.transpose(1, 0, 2), lengths), y, 0)
    assert bf.backward(c).shape == (4, 6, 3)
    relu = nn.ReLU()
    assert_close_rel("relu", relu(x), np.maximum(x, 0), 0)
    assert_close_rel("relu dx", relu.backward(c[None].repeat(6, 0)), ref.relu_backward(x, c[None].repeat(6, 0)), 0)


@pytest.mark.parametrize("dtype", [F64, F32])
def test_text_cnn_matches_its_reference(dtype, rng):
    sizes = (2, 3, 5)
    cnn = nn.TextCNN(4, sizes, 3, dtype=dtype, seed=4)
    x = rng.standard_normal((7, 5, 4)).astype(dtype)
    lengths = np.array([7, 1, 4, 2, 6])
    x[4:, 2] = np.nan  # past the length: never read
    ws = [c.params["weight"] for c in cnn.convs]
    bs = [c.params["bias"] for c in cnn.convs]
    feats = cnn(x, lengths)
    assert feats.shape == (5, 9) and feats.dtype == dtype and cnn.output_size == 9
    c = rng.standard_normal(feats.shape).astype(dtype)
    dx = cnn.backward(c)
    x64 = x.astype(F64)
    want = ref.text_cnn_forward(x64, ws, bs, lengths), ref.text_cnn_backward(x64, ws, bs, c, lengths)
    if dtype == F64:
        assert_close_rel("feats", feats, want[0], 1e-13)
        assert_close_rel("dx", np.nan_to_num(dx, nan=1e9), want[1][0], 1e-13)
        for i, conv in enumerate(cnn.convs):
            assert_close_rel(f"dw{i}", conv.grads["weight"], want[1][1][i], 1e-13)
            assert_close_rel(f"db{i}", conv.grads["bias"], want[1][2][i], 1e-13)
    else:
        got32 = ref.text_cnn_forward(x, ws, bs, lengths), ref.text_cnn_backward(x, ws, bs, c, lengths)
        assert_within_rule("feats", feats, want[0], got32[0])
        assert_within_rule("dx", dx, want[1][0], got32[1][0])
        for i, conv in enumerate(cnn.convs):
            assert_within_rule(f"dw{i}", conv.grads["weight"], want[1][1][i], got32[1][1][i])
            assert_within_rule(f"db{i}", conv.grads["bias"], want[1][2][i], got32[1][2][i])
    # a sequence's features do not depend on the rest of the batch
    alone = cnn.eval()(x[:2, 3:4], lengths[3:4])
    assert_close_rel("alone", alone, feats[3:4], 1e-6 if dtype == F32 else 1e-14)
    assert_close_rel("no lengths", cnn(x[:, :2]), ref.text_cnn_forward(x64[:, :2], ws, bs), 1e-6)


def test_text_cnn_gradients_fd(rng):
    cnn = nn.TextCNN(3, (1, 3), 2, dtype=F64, seed=5)
    x = rng.standard_normal((5, 2, 3))
    lengths = np.array([5, 2])
    c = rng.standard_normal((2, 4))
    cnn(x, lengths)
    dx = cnn.backward(c)
    grads = dict(cnn.named_grads())
    assert set(grads) == {"conv0.weight", "conv0.bias", "conv1.weight", "conv1.bias"} == set(cnn.state_dict())
    cnn.eval()

    def loss():
        return float((cnn(x, lengths) * c).sum())

    assert_close_rel("dx", dx, numerical_grad(loss, x), 1e-6)
    for name, p in cnn.named_parameters():
        assert_close_rel(name, grads[name], numerical_grad(loss, p), 1e-6)


def test_stacked_convolutions_in_sequential_fd(rng):
    """Two convolution layers with pooling between them (the stacked form of the seeds), as a
    Sequential: every parameter's gradient matches finite differences."""
    model = nn.Sequential(
        nn.Conv1d(3, 4, 3, padding=1, dtype=F64, seed=1),
        nn.ReLU(),
        nn.MaxPool1d(2),
        nn.Conv1d(4, 5, 2, stride=2, dtype=F64, seed=2),
        nn.ReLU(),
        nn.MaxOverTime(),
        nn.Linear(5, 2, dtype=F64, seed=3),
    )
    x = rng.standard_normal((11, 2, 3))
    c = rng.standard_normal((2, 2))
    assert model(x).shape == (2, 2)
    dx = model.backward(c)
    grads = dict(model.named_grads())
    assert set(grads) == set(dict(model.named_parameters()))
    model.eval()

    def loss():
        return float((model(x) * c).sum())

    assert_close_rel("dx", dx, numerical_grad(loss, x), 1e-6)
    for name, p in model.named_parameters():
        assert_close_rel(name, grads[name], numerical_grad(loss, p), 1e-6)


# ---------------------------------------------------------------------------------------------
# torch parity
# ---------------------------------------------------------------------------------------------

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("shape", CONV_SHAPES)
def test_conv1d_matches_torch(shape, rng):
    T, B, C, F, k, s, p, d = shape
    tconv = torch.nn.Conv1d(C, F, k, stride=s, padding=p, dilation=d).double()
    conv = _conv(shape, F64)
    conv.load_state_dict(tconv.state_dict())
    x = rng.standard_normal((T, B, C))
    tx = torch.tensor(x.transpose(1, 2, 0), requires_grad=True)  # torch: (B, C, T)
    ty = tconv(tx)
    y = conv(x)
    assert_close_rel("y", y, ty.detach().numpy().transpose(2, 0, 1), 1e-13)
    c = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(c.transpose(1, 2, 0)))
    assert_close_rel("dx", conv.backward(c), tx.grad.numpy().transpose(2, 0, 1), 1e-13)
    assert_close_rel("dw", conv.grads["weight"], tconv.weight.grad.numpy(), 1e-13)
    assert_close_rel("db", conv.grads["bias"], tconv.bias.grad.numpy(), 1e-13)


def test_conv1d_float32_close_to_torch_and_init_like_torch(rng):
    tconv = torch.nn.Conv1d(300, 100, 5)
    conv = nn.Conv1d(300, 100, 5, seed=0)
    bound = 1 / np.sqrt(300 * 5)
    for name in ("weight", "bias"):
        assert conv.params[name].shape == tuple(tconv.state_dict()[name].shape)
        assert np.abs(conv.params[name]).max() <= bound and np.abs(conv.params[name]).max() > 0.9 * bound
    conv.load_state_dict(tconv.state_dict())
    x = rng.standard_normal((23, 4, 300)).astype(F32)
    y = conv(x)
    ty = tconv(torch.tensor(x.transpose(1, 2, 0))).detach().numpy().transpose(2, 0, 1)
    assert_close_rel("y", y, ty, 1e-5)


@pytest.mark.parametrize("k, s, p", [(3, None, 0), (3, 2, 1), (4, 3, 2)])
def test_max_pool1d_matches_torch(k, s, p, rng):
    x = rng.standard_normal((10, 2, 3))
    tx = torch.tensor(x.transpose(1, 2, 0), requires_grad=True)
    ty = torch.nn.MaxPool1d(k, s, p)(tx)
    pool = nn.MaxPool1d(k, s, p)
    y = pool(x)
    assert_close_rel("y", y, ty.detach().numpy().transpose(2, 0, 1), 0)
    c = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(c.transpose(1, 2, 0)))
    assert_close_rel("dx", pool.backward(c), tx.grad.numpy().transpose(2, 0, 1), 1e-15)


def test_text_cnn_matches_torch_kim_encoder(rng):
    """Equal lengths (no masking): torch's Conv1d -> ReLU -> max over time -> cat equals TextCNN."""
    cnn = nn.TextCNN(6, (3, 4, 5), 4, dtype=F64, seed=6)
    tconvs = [torch.nn.Conv1d(6, 4, k).double() for k in (3, 4, 5)]
    for i, t in enumerate(tconvs):
        getattr(cnn, f"conv{i}").load_state_dict(t.state_dict())
    x = rng.standard_normal((9, 3, 6))
    tx = torch.tensor(x.transpose(1, 2, 0), requires_grad=True)
    tf = torch.cat([torch.relu(t(tx)).max(dim=2).values for t in tconvs], dim=1)
    feats = cnn(x)
    assert_close_rel("feats", feats, tf.detach().numpy(), 1e-13)
    c = rng.standard_normal(feats.shape)
    tf.backward(torch.tensor(c))
    assert_close_rel("dx", cnn.backward(c), tx.grad.numpy().transpose(2, 0, 1), 1e-13)
    for i, t in enumerate(tconvs):
        assert_close_rel(f"dw{i}", getattr(cnn, f"conv{i}").grads["weight"], t.weight.grad.numpy(), 1e-13)


# ---------------------------------------------------------------------------------------------
# Errors name the argument
# ---------------------------------------------------------------------------------------------

X = np.zeros((5, 2, 3), np.float32)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: nn.Conv1d(0, 2, 3), ValueError, "in_channels"),
        (lambda: nn.Conv1d(3, 2, 0), ValueError, "kernel_size"),
        (lambda: nn.Conv1d(3, 2, 3, stride=0), ValueError, "stride"),
        (lambda: nn.Conv1d(3, 2, 3, padding=-1), ValueError, "padding"),
        (lambda: nn.Conv1d(3, 2, 3, padding=1.5), ValueError, "padding"),
        (lambda: nn.Conv1d(3, 2, 3, dilation=0), ValueError, "dilation"),
        (lambda: nn.Conv1d(3, 2, 3, dtype=np.int32), TypeError, "dtype"),
        (lambda: nn.Conv1d(3, 2, 3)(np.zeros((5, 2, 4), np.float32)), ValueError, "x: expected 3 channels"),
        (lambda: nn.Conv1d(3, 2, 3)(np.zeros((5, 3), np.float32)), ValueError, "x: expected 3 dimensions"),
        (lambda: nn.Conv1d(3, 2, 3)(np.zeros((5, 2, 3), np.int64)), TypeError, "x: expected a floating-point"),
        (lambda: nn.Conv1d(3, 2, 3)("abc"), TypeError, "x"),
        (lambda: nn.Conv1d(3, 2, 6)(X), ValueError, "kernel's span"),
        (lambda: nn.Conv1d(3, 2, 3).backward(np.zeros((3, 2, 2))), ValueError, "forward"),
        (lambda: (lambda c: (c(X), c.backward(np.zeros((4, 2, 2)))))(nn.Conv1d(3, 2, 3)), ValueError, "dy"),
        (lambda: nn.MaxPool1d(3, padding=2), ValueError, "padding"),
        (lambda: nn.MaxPool1d(0), ValueError, "kernel_size"),
        (lambda: nn.MaxPool1d(6)(X), ValueError, "kernel_size"),
        (lambda: nn.MaxOverTime()(X, [5, 0]), ValueError, "lengths"),
        (lambda: nn.MaxOverTime()(X, [5, 6]), ValueError, "lengths"),
        (lambda: nn.MaxOverTime()(X, [5.0, 1.0]), TypeError, "lengths"),
        (lambda: nn.MaxOverTime()(X, [5]), ValueError, "lengths"),
        (lambda: nn.ReLU()(np.zeros(3, np.int32)), TypeError, "x"),
        (lambda: nn.TextCNN(3, 3), TypeError, "filter_sizes"),
        (lambda: nn.TextCNN(3, ()), TypeError, "filter_sizes"),
        (lambda: nn.TextCNN(3, (3, 0)), ValueError, "filter_sizes"),
        (lambda: nn.TextCNN(3, (3,), 0), ValueError, "num_filters"),
        (lambda: nn.TextCNN(3, (3,))(np.zeros((5, 2, 4), np.float32)), ValueError, "x: expected 3 channels"),
        (lambda: nn.TextCNN(3, (3,))(X, [1, 9]), ValueError, "lengths"),
        (lambda: (lambda c: (c(X), c.backward(np.zeros((2, 5)))))(nn.TextCNN(3, (3,), 4)), ValueError, "dfeats"),
    ],
)
def test_errors_name_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
