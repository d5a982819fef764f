"""What torch user code does to a module besides calling it: flatten_parameters(), deepcopy and
pickle, weight_norm on the recurrent weights, DataParallel and DistributedDataParallel (gloo, two
CPU processes), device moves, dtype casts and frozen parameters, each side by side with torch.nn."""

import copy
import io
import os
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from tests.torch.helpers import CELLS, make_pair  # noqa: E402


def _loss_and_grads(module, x):
    module.zero_grad()
    y, _ = module(x)
    loss = y.square().mean()
    loss.backward()
    return loss.detach(), [None if p.grad is None else p.grad.clone() for p in module.parameters()]


def _assert_same(a, b):
    torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-6)
    for ga, gb in zip(a[1], b[1]):
        assert (ga is None) == (gb is None)
        if ga is not None:
            torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_flatten_parameters_is_harmless(cell):
    ours, ref = make_pair(cell, 3, 4, num_layers=2)
    assert ours.flatten_parameters() is None
    x = torch.randn(5, 2, 3)
    _assert_same(_loss_and_grads(ours, x), _loss_and_grads(ref, x))


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_deepcopy_and_pickle(cell):
    ours, _ = make_pair(cell, 3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(5, 2, 3)
    want = _loss_and_grads(ours, x)  # runs once, so the pack caches exist before copying
    buf = io.BytesIO()
    torch.save(ours, buf)
    buf.seek(0)
    for twin in (copy.deepcopy(ours), torch.load(buf, weights_only=False)):
        _assert_same(_loss_and_grads(twin, x), want)
        with torch.no_grad():
            twin.weight_hh_l0.add_(1.0)  # the copy's parameters (and caches) are its own
        _assert_same(_loss_and_grads(ours, x), want)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_weight_norm_on_recurrent_weights(cell):
    from torch.nn.utils.parametrizations import weight_norm

    ours, ref = make_pair(cell, 3, 4, num_layers=2)
    for m in (ours, ref):
        weight_norm(m, "weight_hh_l0")
        weight_norm(m, "weight_ih_l1", dim=1)
    assert [k for k, _ in ours.named_parameters()] == [k for k, _ in ref.named_parameters()]
    x = torch.randn(5, 2, 3)
    _assert_same(_loss_and_grads(ours, x), _loss_and_grads(ref, x))


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_data_parallel_wrapping(cell):
    ours, ref = make_pair(cell, 3, 4, batch_first=True)
    x = torch.randn(2, 5, 3)
    dp_ours, dp_ref = torch.nn.DataParallel(ours), torch.nn.DataParallel(ref)  # no GPU: runs the module
    _assert_same(_loss_and_grads(dp_ours, x), _loss_and_grads(dp_ref, x))


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_dtype_casts_and_device_moves(cell):
    ours, ref = make_pair(cell, 3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(5, 2, 3)
    _loss_and_grads(ours, x)  # float32 pack caches exist now
    for m in (ours, ref):
        m.double().to("cpu").to(torch.float64)
    assert all(p.dtype == torch.float64 for p in ours.parameters())
    _assert_same(_loss_and_grads(ours, x.double()), _loss_and_grads(ref, x.double()))
    for m in (ours, ref):
        m.float()
    _assert_same(_loss_and_grads(ours, x), _loss_and_grads(ref, x))
    with pytest.raises(TypeError, match="float32 and float64"):
        ours.half()(x.half())


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_some_parameters_frozen(cell):
    ours, ref = make_pair(cell, 3, 4, num_layers=2, bidirectional=True)
    for m in (ours, ref):
        m.weight_ih_l0.requires_grad_(False)
        m.bias_hh_l1_reverse.requires_grad_(False)
        m.weight_hh_l1.requires_grad_(False)
    x = torch.randn(5, 2, 3)
    got, want = _loss_and_grads(ours, x), _loss_and_grads(ref, x)
    _assert_same(got, want)
    assert ours.weight_ih_l0.grad is None and ours.weight_hh_l0.grad is not None


_DDP_SCRIPT = textwrap.dedent("""
    import os, sys
    import torch
    import torch.distributed as dist
    import seqkernels.torch as skt

    def run(rank, world, port, out):
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
        torch.manual_seed(0)
        model = skt.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True)
        x = torch.randn(4, 6, 3, generator=torch.Generator().manual_seed(1))
        if world == 1:
            y, _ = model(x)
        else:
            model = torch.nn.parallel.DistributedDataParallel(model)
            y, _ = model(x[rank * 2:(rank + 1) * 2])  # each rank its half of the batch
        (y.square().sum() / 4).backward()  # DDP averages: this sums to the full batch's loss
        params = model.parameters()
        grads = {k: p.grad * (world if world > 1 else 1) for k, p in zip(
            [k for k, _ in (model.module if world > 1 else model).named_parameters()], params)}
        if rank == 0:
            torch.save(grads, out)
        dist.destroy_process_group()

    if __name__ == "__main__":
        world, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
        torch.multiprocessing.spawn(run, args=(world, port, out), nprocs=world)
""")


def test_distributed_data_parallel_two_processes_equal_one(tmp_path):
    """Gradients of a DDP run over two CPU processes (gloo) equal a single-process run's."""
    import socket

    if not torch.distributed.is_available():
        pytest.skip("torch built without torch.distributed")
    script = tmp_path / "ddp.py"
    script.write_text(_DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([os.getcwd(), *sys.path])}
    results = {}
    for world in (1, 2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        out = tmp_path / f"grads{world}.pt"
        subprocess.run([sys.executable, str(script), str(world), str(port), str(out)], check=True, env=env, timeout=300)
        results[world] = torch.load(out)
    assert results[1].keys() == results[2].keys()
    for k in results[1]:
        torch.testing.assert_close(results[2][k], results[1][k], rtol=1e-5, atol=1e-6, msg=k)
