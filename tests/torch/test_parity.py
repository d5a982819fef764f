"""seqkernels.torch.LSTM/GRU/RNN against torch.nn.LSTM/GRU/RNN with the same weights: outputs,
final states and the gradients of the input, the initial states and every parameter agree within
1e-5 relative (float32) and 1e-12 (float64), on random configurations."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.torch.helpers import CELLS, REL, compare, make_input, make_pair  # noqa: E402

KINDS = ("tensor", "unbatched", "packed_sorted", "packed_unsorted")


def _random_configs(n, seed=2026):
    """Odd sizes, 1-2 layers, both directions, batch-first or not, with and without hx and bias."""
    r = np.random.default_rng(seed)
    configs = []
    for i in range(n):
        T, B = int(r.integers(1, 9)), int(r.integers(1, 6))
        kind = KINDS[i % len(KINDS)]
        if kind == "unbatched":
            B = 1
        if kind == "packed_sorted":
            lengths = sorted(r.integers(1, T + 1, B).tolist(), reverse=True)
            lengths[0] = T
        else:
            lengths = r.integers(1, T + 1, B).tolist()
            lengths[int(r.integers(B))] = T  # pad_packed_sequence's T is the longest length
        configs.append(
            dict(
                T=T,
                B=B,
                I=int(r.choice([1, 3, 7, 13])),
                H=int(r.choice([1, 5, 9, 17, 33])),
                L=int(r.integers(1, 3)),
                bidir=bool(r.integers(2)),
                batch_first=bool(r.integers(2)),
                bias=bool(r.random() < 0.75),
                with_hx=bool(r.random() < 0.6),
                kind=kind,
                lengths=lengths,
            )
        )
    return configs


CONFIGS = _random_configs(16)


def _check(cell, cfg, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    ours, ref = make_pair(
        cell,
        cfg["I"],
        cfg["H"],
        num_layers=cfg["L"],
        bidirectional=cfg["bidir"],
        batch_first=cfg["batch_first"],
        bias=cfg["bias"],
        dtype=dtype,
    )
    x, inp = make_input(cfg["kind"], cfg["T"], cfg["B"], cfg["I"], cfg["lengths"], cfg["batch_first"], dtype, gen)
    leaves, hx = {"x": x}, None
    if cfg["with_hx"]:
        D = 2 if cfg["bidir"] else 1
        shape = (cfg["L"] * D, cfg["H"]) if cfg["kind"] == "unbatched" else (cfg["L"] * D, cfg["B"], cfg["H"])
        h0 = torch.randn(shape, generator=gen, dtype=dtype).requires_grad_()
        leaves["h0"] = h0
        if cell == "lstm":
            c0 = torch.randn(shape, generator=gen, dtype=dtype).requires_grad_()
            leaves["c0"] = c0
            hx = (h0, c0)
        else:
            hx = h0
    compare(ours, ref, inp, hx, leaves, REL[dtype], gen)


@pytest.mark.parametrize("index", range(len(CONFIGS)), ids=lambda i: f"cfg{i}-{CONFIGS[i]['kind']}")
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_random_configs_float32(cell, index):
    _check(cell, CONFIGS[index], torch.float32, seed=index)


@pytest.mark.parametrize("index", range(0, len(CONFIGS), 2), ids=lambda i: f"cfg{i}-{CONFIGS[i]['kind']}")
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_random_configs_float64(cell, index):
    _check(cell, CONFIGS[index], torch.float64, seed=100 + index)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("kind", KINDS)
def test_bidirectional_two_layers_every_input_kind(cell, kind):
    """The configuration with the most moving parts, for every input kind, with hx, in float32."""
    lengths = [7, 5, 5, 2, 1] if kind == "packed_sorted" else [2, 7, 1, 5, 5]
    cfg = dict(
        T=7,
        B=1 if kind == "unbatched" else 5,
        I=6,
        H=19,
        L=2,
        bidir=True,
        batch_first=False,
        bias=True,
        with_hx=True,
        kind=kind,
        lengths=lengths,
    )
    _check(cell, cfg, torch.float32, seed=7)
    _check(cell, {**cfg, "batch_first": True, "with_hx": False}, torch.float32, seed=8)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_larger_hidden_size(cell):
    """H above the kernels' per-thread slice sizes, so the recurrence is split across threads."""
    cfg = dict(
        T=5,
        B=3,
        I=10,
        H=131,
        L=1,
        bidir=True,
        batch_first=False,
        bias=True,
        with_hx=True,
        kind="tensor",
        lengths=[5, 5, 5],
    )
    _check(cell, cfg, torch.float32, seed=11)
