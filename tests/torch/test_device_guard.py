"""A module on a non-current GPU runs there: seqkernels.torch makes the tensors' device current for
torch and CuPy and queues on torch's stream of that device (_kernels._on_device). Checked here with
fakes of torch.cuda and CuPy (no GPU needed), and on real GPUs by the `cuda` tests."""

import sys
import types

import pytest

torch = pytest.importorskip("torch")

from seqkernels.torch import _kernels  # noqa: E402


class _Recorder:
    """Fake torch.cuda device/stream and CuPy Device/ExternalStream that log enter and exit."""

    def __init__(self):
        self.log = []

    def context(self, name, *args):
        log = self.log

        class Ctx:
            def __enter__(self):
                log.append(("enter", name) + args)
                return self

            def __exit__(self, *exc):
                log.append(("exit", name) + args)
                return False

        return Ctx()


@pytest.fixture
def fakes(monkeypatch):
    rec = _Recorder()
    monkeypatch.setattr(torch.cuda, "device", lambda index: rec.context("torch.device", index))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(
        torch.cuda, "current_stream", lambda index=None: types.SimpleNamespace(cuda_stream=1000 + (index or 0))
    )
    cupy = types.ModuleType("cupy")
    cupy.cuda = types.SimpleNamespace(
        Device=lambda index: rec.context("cupy.Device", index),
        ExternalStream=lambda ptr, device_id: rec.context("cupy.stream", ptr, device_id),
    )
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    return rec


def test_tensor_device_becomes_current_with_its_own_stream(fakes):
    with _kernels._on_device(torch.device("cuda", 1)):
        fakes.log.append(("body",))
    assert fakes.log == [
        ("enter", "torch.device", 1),
        ("enter", "cupy.Device", 1),
        ("enter", "cupy.stream", 1001, 1),
        ("body",),
        ("exit", "cupy.stream", 1001, 1),
        ("exit", "cupy.Device", 1),
        ("exit", "torch.device", 1),
    ]


def test_device_is_restored_when_the_kernel_raises(fakes):
    with pytest.raises(RuntimeError, match="kernel failed"):
        with _kernels._on_device(torch.device("cuda", 2)):
            raise RuntimeError("kernel failed")
    assert [e[0] for e in fakes.log] == ["enter"] * 3 + ["exit"] * 3


def test_cuda_without_index_means_the_current_device(fakes):
    with _kernels._on_device(torch.device("cuda")):
        pass
    assert fakes.log[0] == ("enter", "torch.device", 0)


def test_the_cuda_paths_run_under_the_guard(monkeypatch, fakes):
    seen = []
    monkeypatch.setattr(_kernels, "_forward_with", lambda *a: seen.append(("forward", list(fakes.log))))
    monkeypatch.setattr(_kernels, "_backward_with", lambda *a: seen.append(("backward", list(fakes.log))))
    monkeypatch.setattr(_kernels, "_device_lengths", lambda lengths: None)
    x = types.SimpleNamespace(device=torch.device("cuda", 3))
    _kernels._cuda_forward(None, x, None, None, [], None, False)
    _kernels._cuda_backward(None, x, [], None, None, None, None, None)
    for name, log in seen:
        assert log[-3:] == [
            ("enter", "torch.device", 3),
            ("enter", "cupy.Device", 3),
            ("enter", "cupy.stream", 1003, 3),
        ], name


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs two GPUs")
@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_module_on_the_second_gpu_matches_the_cpu(name):
    import seqkernels.torch as skt

    torch.manual_seed(0)
    cpu = getattr(skt, name)(5, 17, num_layers=2, bidirectional=True)
    gpu = getattr(skt, name)(5, 17, num_layers=2, bidirectional=True).to("cuda:1")
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randn(6, 3, 5)
    with torch.cuda.device(0):  # the current device is not the module's
        y_gpu, _ = gpu(x.to("cuda:1"))
        y_gpu.sum().backward()
        assert torch.cuda.current_device() == 0
    y_cpu, _ = cpu(x)
    y_cpu.sum().backward()
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, rtol=1e-5, atol=1e-5)
    for (n, p), q in zip(cpu.named_parameters(), gpu.parameters()):
        torch.testing.assert_close(q.grad.cpu(), p.grad, rtol=1e-5, atol=1e-5, msg=n)
