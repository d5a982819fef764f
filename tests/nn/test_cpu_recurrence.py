"""Properties of the CPU recurrence beyond agreement with the reference: results independent of the
thread count, packed weights that follow every weight change, a team that survives fork() and
concurrent callers."""

import copy
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest

import seqkernels as sk
from seqkernels import nn
from seqkernels._backend import _C

# (layer class, kwargs): every cell the kernels have
CELLS = {
    "lstm": (nn.LSTM, {}),
    "gru": (nn.GRU, {}),
    "gru_reset_before": (nn.GRU, {"reset_after": False}),
    "rnn_tanh": (nn.RNN, {}),
    "rnn_relu": (nn.RNN, {"nonlinearity": "relu"}),
    "lstm_proj": (nn.LSTM, {"proj_size": 31}),  # LSTM with projections
}


def capabilities():
    best = _C.build_info()["cpu_capability_best"]
    order = _C.cpu_capabilities()
    return order[: order.index(best) + 1]


def run_layer(cell, num_threads, *, T=6, B=7, I=5, H=200, bidirectional=True, dtype=np.float32, seed=3, **extra):
    cls, kw = CELLS[cell]
    layer = cls(
        I,
        H,
        num_layers=2,
        bidirectional=bidirectional,
        dtype=dtype,
        seed=seed,
        num_threads=num_threads,
        **{**kw, **extra},
    )
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T
    y, state = layer(x, lengths=lengths)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, dstate = layer.backward(dy)
    flat = [
        y,
        *(state if isinstance(state, tuple) else (state,)),
        dx,
        *(dstate if isinstance(dstate, tuple) else (dstate,)),
    ]
    return flat + [layer.grads[k] for k in sorted(layer.grads)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_bits_do_not_depend_on_thread_count(cell, dtype, cpu_capability):
    # H = 200 is several chunks for every capability, so 1-4 threads split the units differently.
    base = run_layer(cell, 1, dtype=dtype)
    for threads in (2, 3, 4):
        other = run_layer(cell, threads, dtype=dtype)
        for a, b in zip(base, other):
            assert a.dtype == b.dtype and np.array_equal(a, b), f"{threads} threads changed the bits"


def test_bits_hold_while_other_programs_take_the_cores():
    """Busy neighbour processes take the cores from team members at random moments: the members still
    running take the chunks of those that are not (each member starts a step with its own chunks),
    and no output or gradient changes a bit."""
    # One per core (at most 8: on a larger machine the test is weaker, not heavier).
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(min(8, max(2, os.cpu_count() or 1)))
    ]
    try:
        time.sleep(0.3)  # until they spin
        for cell in ("lstm", "gru"):
            base = run_layer(cell, 1, T=40, bidirectional=False)
            for _ in range(5):
                for threads in (2, 4):
                    other = run_layer(cell, threads, T=40, bidirectional=False)
                    assert all(np.array_equal(a, b) for a, b in zip(base, other)), f"{cell}, {threads} threads"
    finally:
        for p in spinners:
            p.kill()
            p.wait()


@pytest.mark.parametrize("B", [1, 5, 13])
def test_bits_do_not_depend_on_thread_count_batch_tails(B):
    base = run_layer("lstm", 1, B=B, H=70, bidirectional=False)
    other = run_layer("lstm", 2, B=B, H=70, bidirectional=False)
    assert all(np.array_equal(a, b) for a, b in zip(base, other))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_proj_bits_do_not_depend_on_thread_count(dtype, cpu_capability):
    # P = 150: several chunks of the units of h as well as of the hidden units, for every capability
    base = run_layer("lstm_proj", 1, dtype=dtype, B=5, proj_size=150)
    for threads in (2, 3):
        other = run_layer("lstm_proj", threads, dtype=dtype, B=5, proj_size=150)
        for a, b in zip(base, other):
            assert a.dtype == b.dtype and np.array_equal(a, b), f"{threads} threads changed the bits"


def test_proj_pack_follows_projection_weight_changes():
    layer = nn.LSTM(4, 40, proj_size=20, seed=5).eval()
    x = np.random.default_rng(2).standard_normal((5, 3, 4)).astype(np.float32)
    y0 = layer(x)[0]
    layer.params["weight_hr_l0"][3, 7] += 0.25  # in place: only W_hr changes
    y1 = layer(x)[0]
    assert not np.array_equal(y0, y1)
    np.testing.assert_array_equal(y1, fresh_output(layer, x))


def fresh_output(layer, x):
    """What a layer with the same weights and no pack history computes."""
    twin = copy.deepcopy(layer)
    twin._packs = {}
    twin.eval()
    return twin(x)[0]


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_pack_follows_every_weight_change(cell):
    cls, kw = CELLS[cell]
    layer = cls(4, 33, num_layers=2, seed=1, **kw).eval()
    x = np.random.default_rng(0).standard_normal((5, 3, 4)).astype(np.float32)
    y0 = layer(x)[0]
    # in place, behind the layer's back
    layer.params["weight_hh_l0"][3, 7] += 0.25
    y1 = layer(x)[0]
    assert not np.array_equal(y0, y1)
    np.testing.assert_array_equal(y1, fresh_output(layer, x))
    # load_state_dict
    state = {k: v * 0.5 for k, v in layer.state_dict().items()}
    layer.load_state_dict(state)
    np.testing.assert_array_equal(layer(x)[0], fresh_output(layer, x))
    # an optimizer step
    layer.train()
    y, _ = layer(x)
    layer.backward(np.ones_like(y))
    nn.SGD(layer, lr=0.1).step()
    layer.eval()
    np.testing.assert_array_equal(layer(x)[0], fresh_output(layer, x))


@pytest.mark.parametrize("cell", ["lstm", "rnn_tanh"])
def test_fused_input_rows_follow_w_ih(cell):
    """LSTM and RNN batches of 3+ rows read W_ih from the pack (packed beside W_hh); calls with 1 or 2
    rows do not, and do not hash it either. An edit to W_ih between them must still reach the next
    call that reads it."""
    cls, kw = CELLS[cell]
    layer = cls(4, 33, num_layers=2, seed=1, **kw).eval()
    x = np.random.default_rng(0).standard_normal((5, 6, 4)).astype(np.float32)
    one = x[:, :1]
    layer(x), layer(one)
    for weight in ("weight_ih_l0", "weight_ih_l1"):
        before = layer(x)[0]
        layer.params[weight][5, 2] += 0.25  # in place, behind the layer's back
        np.testing.assert_array_equal(layer(one)[0], fresh_output(layer, one))  # reads no W_ih rows
        after = layer(x)[0]
        assert not np.array_equal(before, after)
        np.testing.assert_array_equal(after, fresh_output(layer, x))
    # a W_hh edit alone keeps the packed W_ih rows (still right by their own hash)
    layer.params["weight_hh_l0"][1, 1] -= 0.25
    np.testing.assert_array_equal(layer(x)[0], fresh_output(layer, x))


@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_one_step_calls_for_one_row_leave_the_pack_alone(cell, B):
    """A one-step call for one row (decoding a sequence) reads each weight once, so its products come
    from the weights' own rows: the layer's pack is neither read nor written. With more rows it uses
    the pack as a longer call does. Either way the step is the first step of a longer call."""
    cls, kw = CELLS[cell]
    layer = cls(20, 70, bidirectional=True, seed=3, **kw).eval()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, B, 20)).astype(np.float32)
    h0 = rng.standard_normal((2, B, layer.proj_size or 70)).astype(np.float32)
    hx = (h0, rng.standard_normal((2, B, 70)).astype(np.float32)) if cell.startswith("lstm") else h0
    both_steps = layer(x, hx)[0]
    one_step = layer(x[:1], hx)[0]
    packs = [p for packs in layer._packs.values() for p in packs]
    for pack in packs:
        pack[32:] = np.nan  # after the header: the packed weights
    corrupted = [p.copy() for p in packs]
    again = layer(x[:1], hx)[0]
    if B == 1:
        np.testing.assert_array_equal(again, one_step)  # the pack was not read ...
        for before, after in zip(corrupted, packs):
            np.testing.assert_array_equal(after, before)  # ... nor written
    else:
        assert not np.array_equal(again, one_step)  # the pack was read (its hashes matching: not rebuilt)
    # the reverse direction's output at t = 0 of a two-step call has seen x[1]: the forward half only
    R = one_step.shape[2] // 2
    np.testing.assert_allclose(one_step[0, :, :R], both_steps[0, :, :R], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "mode, reset_after, nonlinearity",
    [("lstm", True, "tanh"), ("gru", True, "tanh"), ("gru", False, "tanh"), ("rnn", True, "relu")],
)
def test_one_row_one_step_backward_reads_the_weights_rows_with_the_packed_bits(
    mode, reset_after, nonlinearity, cpu_capability
):
    """A one-step backward for one row takes dz·W_hh from W_hh's own rows: the pack is neither read
    nor written, and the state gradients have the bits of the same row in a call that reads the pack
    (two identical rows, from the same saved forward; H = 70: whole tiles and zero-padded lanes)."""
    from seqkernels.nn import _layer_plan

    I, H, G = 9, 70, {"lstm": 4, "gru": 3, "rnn": 1}[mode]
    cell = _layer_plan.Cell(mode, reset_after, nonlinearity)
    rng = np.random.default_rng(5)
    w = tuple(rng.uniform(-0.3, 0.3, s).astype(np.float32) for s in ((G * H, I), (G * H, H), G * H, G * H))
    x = np.repeat(rng.standard_normal((1, 1, I)).astype(np.float32), 2, axis=1)
    h0 = np.repeat(rng.standard_normal((1, 1, H)).astype(np.float32), 2, axis=1)
    c0 = h0[:, :, ::-1].copy() if mode == "lstm" else None
    dy = np.repeat(rng.standard_normal((1, 1, H)).astype(np.float32), 2, axis=1)
    packs = _layer_plan.new_packs(cell, I, H, np.float32, 1)

    def alloc(shape):
        return np.empty(shape, np.float32)

    _, _, _, (ws2,) = _layer_plan.forward(
        _C, cell, x, [w], h0=h0, c0=c0, lengths=None, training=True, alloc=alloc, packs=packs
    )

    def backward(B, ws):
        _, dh0, dc0, _ = _layer_plan.backward(
            _C,
            cell,
            x[:, :B].copy(),
            [w],
            [ws],
            dy[:, :B].copy(),
            dh_n=None,
            dc_n=None,
            lengths=None,
            alloc=alloc,
            packs=packs,
        )
        return {"dh0": dh0[0], "dc0": None if dc0 is None else dc0[0]}

    two = backward(2, ws2)  # reads (and completes) the pack
    # row 0 of the saved forward as a one-row workspace: every block is (slots, B, width)
    lay2 = _C.workspace_layout(mode, reset_after, nonlinearity, 1, 2, H)
    lay1 = _C.workspace_layout(mode, reset_after, nonlinearity, 1, 1, H)
    ws1 = np.empty(lay1["size"], np.float32)
    blocks = sorted((v, k) for k, v in lay2.items() if k != "size" and v >= 0)
    ends = [start for start, _ in blocks[1:]] + [lay2["size"]]
    for (start, name), end in zip(blocks, ends):
        slots = 2 if name in ("states", "cstates") else 1  # T + 1 states, T of the rest (T = 1)
        rows = ws2[start:end].reshape(slots, 2, -1)
        ws1[lay1[name] : lay1[name] + rows[:, 0].size] = rows[:, 0].ravel()
    pack = packs[0]
    pack[32:] = np.nan  # after the header, whose hashes still match: any read would show
    corrupted = pack.copy()
    one = backward(1, ws1)
    np.testing.assert_array_equal(pack, corrupted)
    for name in ("dh0", "dc0"):
        if one[name] is not None:
            assert np.isfinite(one[name]).all()
            np.testing.assert_array_equal(one[name][0], two[name][0])


@pytest.mark.parametrize("B", [1, 7])  # products from the weights' rows; the packed tiles
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_one_step_bits_do_not_depend_on_thread_count(cell, B):
    base = run_layer(cell, 1, T=1, B=B)
    for threads in (2, 3):
        other = run_layer(cell, threads, T=1, B=B)
        assert all(np.array_equal(a, b) for a, b in zip(base, other)), f"{threads} threads changed the bits"


def test_one_row_matrix_vector_products_keep_their_bits_for_any_thread_count():
    """A one-row step's products with more than 384 outputs (GRU, I = H = 300: x·W_ihᵀ has 900) are
    matrix-vector products cut into pieces by extent alone; the pieces depend on the shape only."""
    base = run_layer("gru", 1, T=1, B=1, I=300, H=300)
    for threads in (2, 3):
        other = run_layer("gru", threads, T=1, B=1, I=300, H=300)
        assert all(np.array_equal(a, b) for a, b in zip(base, other)), f"{threads} threads changed the bits"


def test_both_input_products_read_w_ih_from_the_pack():
    """The fused step (4+ rows) and the all-steps-first product (1-3 rows) both read W_ih's packed rows."""
    layer = nn.LSTM(4, 40, seed=2).eval()
    x = np.random.default_rng(1).standard_normal((4, 5, 4)).astype(np.float32)
    one = x[:, :1]
    y, y_one = layer(x)[0], layer(one)[0]
    pack = layer._packs[0][0]
    pack[32:48] += 1.0  # after the 128-byte header: part of W_ih's first row in the first tile (any SIMD width)
    assert not np.allclose(layer(x)[0], y)  # both forms read them (and did not repack) ...
    assert not np.allclose(layer(one)[0], y_one)
    layer.params["weight_ih_l0"][0, 0] += 0.0625  # ... and a W_ih change repacks them
    np.testing.assert_array_equal(layer(x)[0], fresh_output(layer, x))
    np.testing.assert_array_equal(layer(one)[0], fresh_output(layer, one))


def test_fused_and_separate_input_products_agree():
    """The fused step (4+ rows) and the input's product for all steps first (1-3 rows) round
    differently but compute the same function: a sequence alone and inside a batch agree to float32
    rounding."""
    layer = nn.LSTM(9, 70, seed=4).eval()
    x = np.random.default_rng(2).standard_normal((6, 5, 9)).astype(np.float32)
    batch = layer(x)[0]
    for b in range(5):
        np.testing.assert_allclose(layer(x[:, b : b + 1])[0][:, 0], batch[:, b], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "layer_cls, weights, kw",
    [
        ("LSTM", ("weight_hh_l0", "weight_ih_l0"), {}),  # the pack holds W_ih's rows too
        ("GRU", ("weight_hh_l0",), {}),
        ("LSTM", ("weight_hr_l0",), {"proj_size": 7}),
    ],
    ids=["lstm", "gru", "lstm_proj"],
)
def test_pack_is_built_once_and_then_reused(layer_cls, weights, kw):
    layer = getattr(nn, layer_cls)(3, 40, seed=2, **kw).eval()
    x = np.random.default_rng(1).standard_normal((4, 2, 3)).astype(np.float32)
    y0 = layer(x)[0]
    pack = layer._packs[0][0]
    header = pack[:32].copy()
    # Corrupt the packed data (not the header): a layer that reuses its pack computes something else,
    # which proves the second call did not repack ...
    pack[40:] += 1.0
    assert not np.allclose(layer(x)[0], y0)
    np.testing.assert_array_equal(pack[:32], header)
    # ... and a change to the weights it was built from makes it repack (the content hashes differ),
    # so the output is right again.
    for weight in weights:
        layer.params[weight][0, 0] += 0.0625
    np.testing.assert_array_equal(layer(x)[0], fresh_output(layer, x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pack_hash_covers_every_piece_of_large_weights(dtype):
    """Large weights are hashed in 64 KiB pieces by the team: a change anywhere (first element, either
    side of a piece boundary, last element) repacks, and a pack built by two threads is reused by one
    (the hash does not depend on the thread count)."""
    I, H = 48, 100  # W_hh: 400 x 100 (160 or 320 KB), W_ih: 400 x 48: several pieces each
    build = nn.LSTM(I, H, seed=5, dtype=dtype, num_threads=2).eval()
    x = np.random.default_rng(3).standard_normal((3, 5, I)).astype(dtype)  # 5 rows: W_ih is packed too
    build(x)
    one = nn.LSTM(I, H, seed=5, dtype=dtype, num_threads=1).eval()
    one._packs = build._packs
    pack = build._packs[0][0]
    y = one(x)[0]
    pack[64:] += 1.0  # the packed data, not its header: reused (not rebuilt) by the one-thread layer
    assert not np.allclose(one(x)[0], y)
    pack[:] = 0  # no header: the next call rebuilds everything
    np.testing.assert_array_equal(one(x)[0], y)
    piece = (64 << 10) // np.dtype(dtype).itemsize  # elements per hash piece
    for weight in ("weight_hh_l0", "weight_ih_l0"):
        flat = one.params[weight].reshape(-1)
        assert flat.size > 2 * piece or weight == "weight_ih_l0"
        for i in sorted({0, piece - 1, piece, flat.size - 1}):
            flat[i] += 0.125  # in place, behind the layer's back
            np.testing.assert_array_equal(one(x)[0], fresh_output(one, x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_writes_or_adds_into_dx(dtype):
    """accumulate_dx=False (a layer's first direction) writes dx whatever it held; True adds into it."""
    T, B, I, H = 5, 3, 7, 9
    rng = np.random.default_rng(4)
    cell = dict(mode="lstm", reset_after=True, nonlinearity="tanh")
    x = rng.standard_normal((T, B, I)).astype(dtype)
    w_ih, w_hh = (rng.standard_normal((4 * H, n)).astype(dtype) * 0.3 for n in (I, H))
    workspace = np.empty(_C.workspace_size("lstm", True, "tanh", T, B, H), dtype)
    _C.forward(
        **cell, x=x, w_ih=w_ih, w_hh=w_hh, b_ih=None, b_hh=None, h0=None, c0=None, lengths=None, reverse=False,
        y=np.empty((T, B, H), dtype), direction=0, h_n=np.empty((B, H), dtype), c_n=np.empty((B, H), dtype),
        workspace=workspace,
    )  # fmt: skip
    dy = rng.standard_normal((T, B, H)).astype(dtype)

    def dx_after(start, accumulate):
        dx = start.copy()
        _C.backward(
            **cell, x=x, w_ih=w_ih, w_hh=w_hh, lengths=None, reverse=False, dy=dy, direction=0, dh_n=None,
            dc_n=None, workspace=workspace, dx=dx, dh0=np.empty((B, H), dtype), dc0=None,
            dw_ih=np.empty_like(w_ih), dw_hh=np.empty_like(w_hh), db_ih=None, db_hh=None, accumulate_dx=accumulate,
        )  # fmt: skip
        return dx

    base = dx_after(np.zeros((T, B, I), dtype), True)
    assert np.abs(base).max() > 0
    np.testing.assert_array_equal(dx_after(np.full((T, B, I), np.nan, dtype), False), base)
    np.testing.assert_allclose(dx_after(np.ones((T, B, I), dtype), True), base + 1, rtol=1e-6)


def test_pack_buffer_checks():
    w = np.zeros((8, 2), np.float32)
    args = dict(
        mode="lstm",
        reset_after=True,
        nonlinearity="tanh",
        x=np.zeros((1, 1, 3), np.float32),
        w_ih=np.zeros((8, 3), np.float32),
        w_hh=w,
        b_ih=None,
        b_hh=None,
        h0=None,
        c0=None,
        lengths=None,
        reverse=False,
        y=np.zeros((1, 1, 2), np.float32),
        direction=0,
        h_n=np.zeros((1, 2), np.float32),
        c_n=None,
        workspace=None,
    )
    with pytest.raises(ValueError, match="pack"):
        _C.forward(**args, pack=np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="pack"):
        _C.forward(**args, pack=np.zeros(_C.pack_size("lstm", True, "tanh", 3, 2, "float32"), np.float64))
    _C.forward(**args, pack=np.zeros(_C.pack_size("lstm", True, "tanh", 3, 2, "float32"), np.float32))


def test_pack_follows_capability_changes():
    caps = capabilities()
    if len(caps) < 2:
        pytest.skip("one CPU capability only")
    layer = nn.GRU(3, 70, seed=4).eval()
    x = np.random.default_rng(2).standard_normal((3, 2, 3)).astype(np.float32)
    before = _C.cpu_capability()
    try:
        outs = []
        for cap in (caps[-1], caps[0], caps[-1]):
            _C.set_cpu_capability(cap)
            outs.append(layer(x)[0])
            _C.set_cpu_capability(cap)
            np.testing.assert_array_equal(outs[-1], fresh_output(layer, x))
    finally:
        _C.set_cpu_capability(before)


def _child_forward(seed):
    layer = nn.LSTM(6, 130, num_layers=2, seed=seed, num_threads=2).eval()
    x = np.random.default_rng(seed).standard_normal((7, 4, 6)).astype(np.float32)
    return layer(x)[0]


def test_kernels_work_in_forked_children():
    # The parent runs a kernel on a 2-thread team first; forked children then get a fresh team
    # instead of waiting forever for the parent's workers.
    parent = [_child_forward(s) for s in range(3)]
    ctx = multiprocessing.get_context("fork")
    with warnings.catch_warnings():
        # Python >= 3.12 warns on fork() from a process with threads (our team's workers are threads):
        # exactly the situation this test is about.
        warnings.simplefilter("ignore", DeprecationWarning)
        with ctx.Pool(2) as pool:
            children = pool.map_async(_child_forward, range(3)).get(timeout=120)
    for a, b in zip(parent, children):
        np.testing.assert_array_equal(a, b)


WORKER_WITHOUT_A_CORE = textwrap.dedent(
    """
    import json, os
    import numpy as np
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one CPU for the whole process
    from seqkernels import nn
    from seqkernels._backend import _C
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 8))
    out = {}
    for name, cls in (("lstm", nn.LSTM), ("gru", nn.GRU)):
        one = cls(8, 200, seed=2, num_threads=1, dtype="float64")
        two = cls(8, 200, seed=2, num_threads=2, dtype="float64")
        threads = set(os.listdir("/proc/self/task"))
        two(x)  # starts the team's worker
        for tid in set(os.listdir("/proc/self/task")) - threads:
            # the worker runs only when the caller sleeps, so it gets no core while the caller works
            os.sched_setscheduler(int(tid), os.SCHED_IDLE, os.sched_param(0))
        y1, _ = one(x)
        dx1, _ = one.backward(np.ones_like(y1), None)
        before = _C.team_jobs_withdrawn()
        same = True
        for _ in range(20):
            y2, _ = two(x)
            dx2, _ = two.backward(np.ones_like(y2), None)
            same = same and np.array_equal(y1, y2) and np.array_equal(dx1, dx2)
            same = same and all(np.array_equal(one.grads[k], two.grads[k]) for k in one.grads)
        out[name] = {"same": bool(same), "withdrawn": _C.team_jobs_withdrawn() - before}
    print(json.dumps(out))
    """
)


def test_a_worker_without_a_core_holds_up_nothing():
    # The caller finishes every piece itself and takes the job back from the worker that never
    # started (thread_team.h); the results keep every bit.
    if not hasattr(os, "sched_setscheduler") or not os.path.isdir("/proc/self/task"):
        pytest.skip("needs Linux scheduling policies")
    proc = subprocess.run(
        [sys.executable, "-c", WORKER_WITHOUT_A_CORE],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "SEQKERNELS_TEAM"},
    )
    if proc.returncode != 0 and "PermissionError" in proc.stderr:
        pytest.skip("this sandbox refuses SCHED_IDLE")
    assert proc.returncode == 0, proc.stderr
    for name, got in json.loads(proc.stdout).items():
        assert got["same"], name
        assert got["withdrawn"] > 0, name


def test_concurrent_callers_get_the_same_bits():
    layer_args = dict(seed=5, num_threads=2)
    x = np.random.default_rng(3).standard_normal((5, 3, 4)).astype(np.float32)
    expected = nn.GRU(4, 150, **layer_args).eval()(x)[0]
    results, errors = [], []

    def worker():
        try:
            layer = nn.GRU(4, 150, **layer_args).eval()
            for _ in range(5):
                results.append(layer(x)[0])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 20
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_team_size_follows_request():
    assert _C.team_size(3) == 3
    assert _C.team_size(0) >= 1
    assert sk.build_info()["team_threads"] >= 1


def test_torch_layer_pack_follows_in_place_updates():
    torch = pytest.importorskip("torch")
    import seqkernels.torch as skt

    torch.manual_seed(0)
    ours = skt.LSTM(4, 40, num_layers=2)
    ref = torch.nn.LSTM(4, 40, num_layers=2)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(5, 3, 4)
    with torch.no_grad():
        for step in range(3):  # an in-place update between calls, as an optimizer makes
            torch.testing.assert_close(ours(x)[0], ref(x)[0], rtol=1e-5, atol=1e-6)
            for a, b in zip(ours.parameters(), ref.parameters()):
                a.mul_(0.9).add_(0.01 * step)
                b.mul_(0.9).add_(0.01 * step)


def test_pooled_empty_returns_its_memory_to_the_pool():
    _C.pool_release()
    a = _C.pooled_empty([5, 7], np.dtype(np.float64))
    assert a.shape == (5, 7) and a.dtype == np.float64 and a.flags["C_CONTIGUOUS"]
    assert a.ctypes.data % 64 == 0
    address = a.ctypes.data
    view = a[1:]
    del a
    assert _C.pool_free_bytes() == 0  # the view still holds the block
    del view
    assert _C.pool_free_bytes() > 0
    b = _C.pooled_empty([7, 5], np.dtype(np.float64))  # the same size class: the same block again
    assert b.ctypes.data == address and _C.pool_free_bytes() == 0
    del b
    assert _C.pool_release() > 0 and _C.pool_free_bytes() == 0
    with pytest.raises(ValueError, match="dtype"):
        _C.pooled_empty([3], np.dtype(np.int32))
    with pytest.raises(ValueError, match="shape"):
        _C.pooled_empty([-1], np.dtype(np.float32))


def test_large_host_buffers_come_from_the_pool():
    """Workspaces, outputs and gradients of at least POOLED_MIN_BYTES come from the block pool (no
    fresh pages each call); smaller ones are plain NumPy arrays."""
    from seqkernels.nn import _layer_plan

    layer = nn.GRU(64, 256, seed=1)  # W_hh's gradient: 3·256·256 floats = 768 KiB
    x = np.random.default_rng(0).standard_normal((40, 8, 64)).astype(np.float32)  # y: 320 KiB
    y, _ = layer(x)
    layer.backward(np.ones_like(y))
    g = layer.grads
    assert g["weight_hh_l0"].nbytes >= _layer_plan.POOLED_MIN_BYTES and y.nbytes >= _layer_plan.POOLED_MIN_BYTES
    assert type(g["weight_hh_l0"].base).__name__ == "PyCapsule" and type(y.base).__name__ == "PyCapsule"
    assert g["bias_hh_l0"].base is None  # 3 KiB: np.empty
    _C.pool_release()
    before = _C.pool_free_bytes()
    del g, y
    layer.grads = {}
    assert _C.pool_free_bytes() > before  # freed: back to the pool, for the next call


def test_training_workspaces_are_reused_only_once_freed(monkeypatch):
    """A layer's workspace comes from the pool; a forward whose workspace is still held (here: two
    forwards before their backwards) never gets the other's memory, so both gradients are right."""
    from seqkernels.nn import _layer_plan

    monkeypatch.setattr(_layer_plan, "POOLED_MIN_BYTES", 0)  # every host buffer from the pool
    layer = nn.LSTM(6, 11, seed=3)
    rng = np.random.default_rng(4)
    x1, x2 = (rng.standard_normal((5, 3, 6)).astype(np.float32) for _ in range(2))
    dy = rng.standard_normal((5, 3, 11)).astype(np.float32)

    def grads(layer):
        return {k: v.copy() for k, v in layer.grads.items()}

    def alone(x):
        twin = copy.deepcopy(layer)
        twin(x)
        return twin.backward(dy)[0], grads(twin)

    want1, want2 = alone(x1), alone(x2)
    layer(x1)
    first = layer._cache
    layer(x2)  # the first forward's workspace is still held by `first`
    got2 = layer.backward(dy)[0], grads(layer)
    layer._cache = first
    got1 = layer.backward(dy)[0], grads(layer)
    for got, want in ((got1, want1), (got2, want2)):
        np.testing.assert_array_equal(got[0], want[0])
        for k in want[1]:
            np.testing.assert_array_equal(got[1][k], want[1][k])
    _C.pool_release()
