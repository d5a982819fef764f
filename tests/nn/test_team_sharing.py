"""The kernels' thread team on torch's OpenMP pool (SEQKERNELS_TEAM, thread_team.h): it turns on once
torch is in the process (imported before or after seqkernels), never changes a bit of any result,
stays off in a child of fork() (where the parent's pool is gone) and in ``own`` mode, and a bad
setting is refused by name. Each case runs in a fresh interpreter, so the import order is its own."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("torch")

SCRIPT = textwrap.dedent(
    """
    import json, sys
    order, out = sys.argv[1], sys.argv[2]
    if order == "torch_first":
        import torch
    import numpy as np
    import seqkernels as sk
    if order == "torch_after":
        import torch
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 5, 6)).astype(np.float32)
    arrays = {}
    for name, cls in (("lstm", sk.nn.LSTM), ("gru", sk.nn.GRU)):
        layer = cls(6, 150, num_layers=2, bidirectional=True, seed=3, num_threads=2)
        y, _ = layer(x)
        dx, _ = layer.backward(np.ones_like(y), None)
        arrays[name + "_y"], arrays[name + "_dx"] = y, dx
        arrays[name + "_dw"] = layer.grads["weight_hh_l1"]
    np.savez(out, **arrays)
    print(json.dumps({"shared": sk.build_info()["team_shares_openmp_pool"]}))
    """
)


def run(tmp_path, order, mode=None, script=SCRIPT):
    env = dict(os.environ)
    env.pop("SEQKERNELS_TEAM", None)
    if mode is not None:
        env["SEQKERNELS_TEAM"] = mode
    out = tmp_path / f"{order}-{mode}.npz"
    proc = subprocess.run(
        [sys.executable, "-c", script, order, str(out)], capture_output=True, text=True, env=env, timeout=300
    )
    return proc, out


@pytest.mark.parametrize("order", ["torch_first", "torch_after"])
def test_sharing_turns_on_with_torch_and_keeps_every_bit(tmp_path, order):
    own, own_out = run(tmp_path, order, "own")
    auto, auto_out = run(tmp_path, order)
    assert own.returncode == 0 and auto.returncode == 0, own.stderr + auto.stderr
    assert json.loads(own.stdout)["shared"] is False
    assert json.loads(auto.stdout)["shared"] is True
    a, b = np.load(own_out), np.load(auto_out)
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_without_torch_the_team_is_our_own(tmp_path):
    proc, _ = run(tmp_path, "no_torch")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["shared"] is False


def test_bad_setting_is_refused_by_name(tmp_path):
    proc, _ = run(tmp_path, "no_torch", "threads")
    assert proc.returncode != 0
    assert "ValueError: SEQKERNELS_TEAM" in proc.stderr and "'threads'" in proc.stderr


FORK_SCRIPT = textwrap.dedent(
    """
    import json, multiprocessing, sys, warnings
    import torch
    import numpy as np
    import seqkernels as sk

    def forward(seed):
        x = np.random.default_rng(seed).standard_normal((6, 4, 5)).astype(np.float32)
        y = sk.nn.GRU(5, 130, seed=1, num_threads=2).eval()(x)[0]
        return y, sk.build_info()["team_shares_openmp_pool"]

    parent = [forward(s) for s in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with multiprocessing.get_context("fork").Pool(2) as pool:
            children = pool.map_async(forward, range(3)).get(timeout=120)
    same = all(np.array_equal(p[0], c[0]) for p, c in zip(parent, children))
    print(json.dumps({"parent": parent[0][1], "children": [c[1] for c in children], "same": same}))
    """
)


def test_forked_children_leave_the_parents_pool(tmp_path):
    """The parent ran on torch's pool; a forked child would hang there, so it gets a team of ours."""
    proc, _ = run(tmp_path, "fork", script=FORK_SCRIPT)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got == {"parent": True, "children": [False, False, False], "same": True}
