"""The CUDA recurrent kernels (cuda/rnn/recurrent.cu) through seqkernels.nn layers moved to the GPU:
against the CPU kernels and the float64 reference, against torch.nn with cuDNN, run-to-run
determinism, and the device-mismatch errors. Every test but the last needs a GPU (`cuda` mark)."""

import numpy as np
import pytest

import seqkernels as sk
from tests.nn.test_recurrent import (
    CELLS,
    PROJ_CONFIGS,
    make_case,
    make_proj_case,
    random_grads,
    run_layer,
    run_reference,
)
from tests.tolerance import assert_close_rel, assert_within_rule

# (T, B, I, H, layers, bidirectional, variable lengths, initial state): the odd sizes
GPU_CONFIGS = {
    "h1": (3, 2, 2, 1, 1, False, False, True),
    "h7_lengths": (5, 3, 4, 7, 1, False, True, True),
    "t1_b1": (1, 1, 5, 7, 1, True, False, False),
    "h129_b3": (6, 3, 9, 129, 1, False, True, True),
    "h1000_b1": (4, 1, 16, 1000, 1, False, False, True),
    "bidir_2layers": (5, 3, 4, 7, 2, True, True, True),
    # 13 batch rows: h_{t-1} / dz staged in shared memory in groups, the last one partial
    "b13_h64_staged": (3, 13, 5, 64, 1, True, True, True),
    # weights in global memory on any GPU up to 227 KiB of shared memory per block (float64 slices
    # of 16+ units): the coalesced column reduction of the backward pass
    "h2048_global": (2, 3, 4, 2048, 1, False, True, True),
}


def run_gpu(layer, mode, x, lengths, h0, c0, dy, dh, dc):
    import cupy

    layer.to("cuda")
    dt = layer.dtype
    cast = lambda a: None if a is None else cupy.asarray(a.astype(dt))  # noqa: E731
    hx = None if h0 is None and c0 is None else ((cast(h0), cast(c0)) if mode == "lstm" else cast(h0))
    dhx = (cast(dh), cast(dc)) if mode == "lstm" else cast(dh)
    y, hn = layer(cast(x), hx, lengths)
    dx, dhx0 = layer.backward(cast(dy), dhx)
    hn, cn = hn if mode == "lstm" else (hn, None)
    dh0, dc0 = dhx0 if mode == "lstm" else (dhx0, None)
    out = dict(y=y, h_n=hn, c_n=cn, dx=dx, dh0=dh0, dc0=dc0, **{"grad_" + k: v for k, v in layer.grads.items()})
    layer.to("cpu")
    return {k: None if v is None else cupy.asnumpy(v) for k, v in out.items()}


@pytest.mark.cuda
@pytest.mark.parametrize("config", sorted(GPU_CONFIGS))
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_float64_gpu_equals_reference(cell, config, rng, monkeypatch):
    from tests.nn import test_recurrent

    monkeypatch.setitem(test_recurrent.CONFIGS, config, GPU_CONFIGS[config])
    layer, mode, rkw, x, lengths, h0, c0 = make_case(cell, config, np.float64, rng)
    dy, dh, dc = random_grads(layer, mode, x, rng)
    got = run_gpu(layer, mode, x, lengths, h0, c0, dy, dh, dc)
    want = run_reference(layer, mode, rkw, x, lengths, h0, c0, dy, dh, dc, np.float64)
    for k in want:
        if want[k] is not None:
            assert_close_rel(k, got[k], want[k], 1e-11)


@pytest.mark.cuda
@pytest.mark.parametrize("config", sorted(GPU_CONFIGS))
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_float32_gpu_within_tolerance_rule_and_equals_cpu(cell, config, rng, monkeypatch):
    from tests.nn import test_recurrent

    monkeypatch.setitem(test_recurrent.CONFIGS, config, GPU_CONFIGS[config])
    layer, mode, rkw, x, lengths, h0, c0 = make_case(cell, config, np.float32, rng)
    dy, dh, dc = random_grads(layer, mode, x, rng)
    x, dy, dh = x.astype(np.float32), dy.astype(np.float32), dh.astype(np.float32)
    h0 = None if h0 is None else h0.astype(np.float32)
    c0 = None if c0 is None else c0.astype(np.float32)
    dc = None if dc is None else dc.astype(np.float32)
    got = run_gpu(layer, mode, x, lengths, h0, c0, dy, dh, dc)
    cpu = run_layer(layer, mode, x, lengths, h0, c0, dy, dh, dc)
    ref64 = run_reference(layer, mode, rkw, x, lengths, h0, c0, dy, dh, dc, np.float64)
    ref32 = run_reference(layer, mode, rkw, x, lengths, h0, c0, dy, dh, dc, np.float32)
    for k in ref64:
        if ref64[k] is not None:
            assert got[k].dtype == np.float32, k
            assert_within_rule(k, got[k], ref64[k], ref32[k])
            assert_within_rule(k + " (gpu vs cpu)", got[k], ref64[k], cpu[k])


@pytest.mark.cuda
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_gpu_is_deterministic_run_to_run(cell, rng):
    layer, mode, _, x, lengths, h0, c0 = make_case(cell, "bidir_2layers_h65", np.float32, rng)
    dy, dh, dc = random_grads(layer, mode, x, rng)
    a = run_gpu(layer, mode, x, lengths, h0, c0, dy, dh, dc)
    b = run_gpu(layer, mode, x, lengths, h0, c0, dy, dh, dc)
    for k in a:
        if a[k] is not None:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.cuda
@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")
@pytest.mark.parametrize(
    "mode_name, cls, kw",
    [("lstm", "LSTM", {}), ("gru", "GRU", {}), ("rnn", "RNN", {}), ("lstm_proj", "LSTM", {"proj_size": 40})],
)
def test_gpu_matches_torch_cudnn(mode_name, cls, kw, rng):
    torch = pytest.importorskip("torch")
    import cupy

    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    T, B, I, H = 7, 5, 9, 129
    ours = getattr(sk.nn, cls)(I, H, num_layers=2, bidirectional=True, seed=3, **kw)
    theirs = getattr(torch.nn, cls)(I, H, num_layers=2, bidirectional=True, **kw).cuda()
    ours.load_state_dict(theirs.state_dict())
    ours.to("cuda")
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dy = rng.standard_normal((T, B, 2 * kw.get("proj_size", H))).astype(np.float32)
    y, _ = ours(cupy.asarray(x))
    dx, _ = ours.backward(cupy.asarray(dy))
    with torch.backends.cudnn.flags(allow_tf32=False):
        tx = torch.tensor(x, device="cuda", requires_grad=True)
        ty, _ = theirs(tx)
        ty.backward(torch.tensor(dy, device="cuda"))
    np.testing.assert_allclose(cupy.asnumpy(y), ty.detach().cpu().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cupy.asnumpy(dx), tx.grad.cpu().numpy(), rtol=1e-5, atol=1e-5)
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(
            cupy.asnumpy(ours.grads[name]), p.grad.cpu().numpy(), rtol=1e-5, atol=1e-5, err_msg=name
        )


@pytest.mark.cuda
@pytest.mark.parametrize("config", sorted(PROJ_CONFIGS))
def test_proj_gpu_equals_reference_and_cpu(config, rng):
    """LSTM with projections (the proj kernels of recurrent.cu): float64 against the reference,
    float32 within the tolerance rule of the CPU kernels, and run to run bit-identical."""
    layer, x, lengths, h0, c0, dy, dh, dc = make_proj_case(config, np.float64, rng)
    got = run_gpu(layer, "lstm", x, lengths, h0, c0, dy, dh, dc)
    want = run_reference(layer, "lstm", {}, x, lengths, h0, c0, dy, dh, dc, np.float64)
    assert any(k.startswith("grad_weight_hr") for k in got)
    for k in want:
        assert_close_rel(k, got[k], want[k], 1e-11)
    layer, x, lengths, h0, c0, dy, dh, dc = make_proj_case(config, np.float32, rng)
    f32 = lambda a: None if a is None else a.astype(np.float32)  # noqa: E731
    x, h0, c0, dy, dh, dc = map(f32, (x, h0, c0, dy, dh, dc))
    got = run_gpu(layer, "lstm", x, lengths, h0, c0, dy, dh, dc)
    again = run_gpu(layer, "lstm", x, lengths, h0, c0, dy, dh, dc)
    cpu = run_layer(layer, "lstm", x, lengths, h0, c0, dy, dh, dc)
    ref64 = run_reference(layer, "lstm", {}, x, lengths, h0, c0, dy, dh, dc, np.float64)
    for k in ref64:
        np.testing.assert_array_equal(got[k], again[k], err_msg=k)
        assert_within_rule(k + " (gpu vs cpu)", got[k], ref64[k], cpu[k])


@pytest.mark.cuda
def test_large_hidden_falls_back_to_weights_in_global_memory(rng):
    import cupy

    from seqkernels.nn import _cuda_recurrent

    layer = sk.nn.LSTM(8, 2048, dtype=np.float64, seed=1).to("cuda")
    layer.eval()
    layer(cupy.asarray(rng.standard_normal((2, 1, 8))))
    assert not _cuda_recurrent.last_launch_plan()["weights_in_shared_memory"]
    small = sk.nn.LSTM(8, 64, seed=1).to("cuda")
    small.eval()
    small(cupy.asarray(rng.standard_normal((2, 1, 8)).astype(np.float32)))
    assert _cuda_recurrent.last_launch_plan()["weights_in_shared_memory"]
    assert _cuda_recurrent.last_launch_plan()["staging_bytes"] > 0  # h_{t-1} staged in shared memory


@pytest.mark.cuda
def test_threads_with_different_hidden_sizes_agree_with_serial_runs(rng):
    """The kernels' shared-memory limit is raised once, not per call: threads launching layers of
    different sizes at once (the bindings release the GIL) must get the serial results."""
    import threading

    import cupy

    sizes = [7, 64, 300, 1000]
    layers = [sk.nn.GRU(8, h, seed=h).to("cuda") for h in sizes]
    x = cupy.asarray(rng.standard_normal((4, 3, 8)).astype(np.float32))
    serial = [cupy.asnumpy(layer(x)[0]) for layer in layers]
    got, errors = {}, []

    def run(i):
        try:
            with cupy.cuda.Stream(non_blocking=True) as stream:
                for _ in range(10):
                    y = layers[i](x)[0]
                stream.synchronize()
                got[i] = cupy.asnumpy(y)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(sizes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in range(len(sizes)):
        np.testing.assert_array_equal(got[i], serial[i], err_msg=f"H={sizes[i]}")


@pytest.mark.cuda
def test_launcher_rejects_host_memory_and_keeps_the_current_device():
    import cupy

    from seqkernels._backend import _cuda

    host = np.zeros(64, np.float32)
    p = host.ctypes.data
    before = cupy.cuda.runtime.getDevice()
    with pytest.raises(ValueError, match="expected GPU memory"):
        _cuda.recurrent_forward("float32", "rnn", False, "tanh", 1, 1, 1, p, p, 0, 0, 0, 0, False, p, 1, p, 0, 0, p, 0)
    assert cupy.cuda.runtime.getDevice() == before


@pytest.mark.cuda
def test_device_mismatch_is_a_clear_error(rng):
    import cupy

    layer = sk.nn.GRU(4, 8).to("cuda")
    with pytest.raises(TypeError, match="the layer is on cuda"):
        layer(rng.standard_normal((3, 2, 4)))
    layer.to("cpu")
    with pytest.raises(TypeError, match="GPU array"):
        layer(cupy.zeros((3, 2, 4), dtype=cupy.float32))


def test_to_cuda_without_a_gpu_is_a_clear_error():
    if sk.cuda_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        sk.nn.LSTM(4, 8).to("cuda")
    with pytest.raises(ValueError, match="device must be"):
        sk.nn.LSTM(4, 8).to("tpu")
