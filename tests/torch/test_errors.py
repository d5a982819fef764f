"""Bad arguments raise the same exception types as torch.nn, with messages that name the
argument; CUDA tensors go to the CUDA path (checked on a GPU); seqkernels imports without torch."""

import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

import seqkernels.torch as skt  # noqa: E402
from seqkernels.torch import _kernels  # noqa: E402
from tests.torch.helpers import CELLS, make_pair  # noqa: E402


def _raises_like_torch(ours, ref, call, match=None):
    """``call(module)`` raises the same exception type for both; ours matches ``match``."""
    with pytest.raises(Exception) as want:
        call(ref)
    with pytest.raises(want.type, match=match):
        call(ours)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_input_errors(cell):
    ours, ref = make_pair(cell, 3, 4, num_layers=2)
    _raises_like_torch(ours, ref, lambda m: m(torch.randn(2, 5, 2, 3)), "Expected input to be 2D or 3D, got 4D")
    _raises_like_torch(ours, ref, lambda m: m(torch.randn(5)), "got 1D")
    _raises_like_torch(ours, ref, lambda m: m(torch.randn(5, 2, 4)), "input_size. Expected 3, got 4")
    _raises_like_torch(ours, ref, lambda m: m(torch.randn(5, 4)), "input_size")
    _raises_like_torch(ours, ref, lambda m: m(torch.randn(5, 2, 3, dtype=torch.float64)), "dtype")
    _raises_like_torch(ours, ref, lambda m: m(torch.randn(0, 2, 3)), "sequence length")
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.randn(5, 2, 4), torch.tensor([5, 3]))
    _raises_like_torch(ours, ref, lambda m: m(packed), "input_size")
    with pytest.raises(TypeError, match="input"):
        ours([[1.0, 2.0, 3.0]])


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_hx_errors(cell):
    ours, ref = make_pair(cell, 3, 4, num_layers=2, bidirectional=True)
    lstm = cell == "lstm"
    x = torch.randn(5, 2, 3)

    def hx(*shape, dtype=torch.float32):
        t = torch.zeros(*shape, dtype=dtype)
        return (t, t.clone()) if lstm else t

    name = r"hx\[0\]" if lstm else "hx"
    shape_msg = name + r": Expected hidden.* size \(4, 2, 4\), got \[4, 3, 4\]"
    _raises_like_torch(ours, ref, lambda m: m(x, hx(4, 3, 4)), shape_msg)
    _raises_like_torch(ours, ref, lambda m: m(x, hx(2, 2, 4)), name)
    _raises_like_torch(ours, ref, lambda m: m(x, hx(4, 2, 5)), name)
    _raises_like_torch(ours, ref, lambda m: m(x, hx(4, 4)), "For batched 3-D input, hx")
    _raises_like_torch(ours, ref, lambda m: m(torch.randn(5, 3), hx(4, 1, 4)), "For unbatched 2-D input, hx")
    _raises_like_torch(ours, ref, lambda m: m(x, hx(4, 2, 4, dtype=torch.float64)), "hx")
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor([5, 3]))
    _raises_like_torch(ours, ref, lambda m: m(packed, hx(4, 3, 4)), name)
    if lstm:
        bad_c = (torch.zeros(4, 2, 4), torch.zeros(4, 2, 5))
        _raises_like_torch(ours, ref, lambda m: m(x, bad_c), r"hx\[1\]: Expected hidden\[1\] size")
        with pytest.raises(TypeError, match="tuple"):
            ours(x, torch.zeros(4, 2, 4))
    else:
        with pytest.raises(TypeError, match="hx"):
            ours(x, (torch.zeros(4, 2, 4),))


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"dropout": 1.5}, ValueError, "dropout"),
        ({"dropout": -0.1}, ValueError, "dropout"),
        ({"hidden_size": 0}, ValueError, "hidden_size"),
        ({"input_size": 0}, ValueError, "input_size"),
        ({"num_layers": 0}, ValueError, "num_layers"),
        ({"hidden_size": 4.0}, TypeError, "hidden_size"),
        ({"bias": 1}, TypeError, "bias"),
        ({"batch_first": None}, TypeError, "batch_first"),
    ],
)
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_constructor_errors_like_torch(cell, kwargs, exc, match):
    ours_cls, torch_cls, extra = CELLS[cell]
    args = {"input_size": 3, "hidden_size": 4, **extra, **kwargs}
    with pytest.raises(exc):
        torch_cls(**args)
    with pytest.raises(exc, match=match):
        ours_cls(**args)


def test_unsupported_options():
    for bad in (4, 5, -1):  # proj_size must be in [0, hidden_size)
        with pytest.raises(ValueError):
            torch.nn.LSTM(3, 4, proj_size=bad)
        with pytest.raises(ValueError, match="proj_size"):
            skt.LSTM(3, 4, proj_size=bad)
    for cls, torch_cls in ((skt.GRU, torch.nn.GRU), (skt.RNN, torch.nn.RNN)):
        with pytest.raises(ValueError, match="proj_size"):
            torch_cls(3, 4, proj_size=2)
        with pytest.raises(ValueError, match="proj_size"):
            cls(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="nonlinearity"):
        torch.nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="nonlinearity"):
        skt.RNN(3, 4, nonlinearity="sigmoid")


def test_dispatch_point():
    """CUDA tensors go to the CUDA path; other devices with data are a clear error."""
    assert _kernels._backend(torch.device("cuda", 0)) == (_kernels._cuda_forward, _kernels._cuda_backward)
    assert _kernels._backend(torch.device("cpu")) == (_kernels._cpu_forward, _kernels._cpu_backward)
    with pytest.raises(RuntimeError, match="not supported"):
        _kernels._backend(torch.device("meta"))
    # On the meta device the custom op's shape function answers, as torch.nn's layers do on meta.
    m = skt.LSTM(3, 4, bidirectional=True).to("meta")
    y, (h, c) = m(torch.randn(2, 1, 3, device="meta"))
    assert y.device.type == "meta" and y.shape == (2, 1, 8) and h.shape == c.shape == (2, 1, 4)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA build of torch and a GPU")
@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN"])
def test_cuda_module_matches_torch_cudnn(name):
    torch.manual_seed(0)
    ref = getattr(torch.nn, name)(5, 33, num_layers=2, bidirectional=True).cuda()
    ours = getattr(skt, name)(5, 33, num_layers=2, bidirectional=True).cuda()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(7, 3, 5, device="cuda")
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    with torch.backends.cudnn.flags(allow_tf32=False):
        ya, _ = ref(xa)
        ya.sum().backward()
    yb, _ = ours(xb)
    yb.sum().backward()
    torch.testing.assert_close(yb, ya, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-5, atol=1e-5)
    for (n, p), (_, q) in zip(ref.named_parameters(), ours.named_parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-5, msg=n)


def test_device_mismatch():
    m = skt.LSTM(3, 4).to("meta")
    with pytest.raises(RuntimeError, match="input is on cpu"):
        m(torch.randn(2, 1, 3))


def _run_without_torch(code):
    # sys.modules['torch'] = None makes every `import torch` raise ImportError, as if not installed.
    shim = "import sys\nsys.modules['torch'] = None\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", shim], capture_output=True, text=True, timeout=120)


def test_seqkernels_imports_without_torch():
    r = _run_without_torch("""
        import numpy as np
        import seqkernels
        layer = seqkernels.nn.LSTM(3, 4)
        y, _ = layer(np.zeros((2, 1, 3), np.float32))
        assert y.shape == (2, 1, 4)
        try:
            import seqkernels.torch
        except ImportError as e:
            assert "needs PyTorch" in str(e), e
        else:
            raise AssertionError("seqkernels.torch imported without torch")
        print("ok")
    """)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_import_seqkernels_does_not_import_torch():
    r = subprocess.run(
        [sys.executable, "-c", "import sys, seqkernels; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr
