"""The GloVe reference (seqkernels.reference.glove) against hand-worked examples, glibc and
finite differences. Everything else in tests/glove is checked against this module."""

from __future__ import annotations

import ctypes
import itertools
import platform

import numpy as np
import pytest

from seqkernels.reference import glove as ref


# ---- tokens ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data, lines",
    [
        (b"a b\tc\n", [[b"a", b"b", b"c"], []]),
        (b"  a  \t b \n\n c", [[b"a", b"b"], [], [b"c"]]),
        (b"a\r\nb\rc d\r", [[b"a"], [b"bc", b"d"]]),  # \r is dropped even inside a token
        (b"\xc3\xa9t\xc3\xa9 x", [[b"\xc3\xa9t\xc3\xa9", b"x"]]),
        (b"", [[]]),
    ],
)
def test_read_lines(data, lines):
    assert ref.read_lines(data) == lines


@pytest.mark.parametrize(
    "token, kept",
    [
        (b"a" * 999, b"a" * 999),
        (b"a" * 1500, b"a" * 999),
        (b"a" * 998 + b"\xc3\xa9", b"a" * 998),  # lead byte at the cut: dropped
        (b"a" * 996 + b"\xe2\x82\xac", b"a" * 996 + b"\xe2\x82\xac"),  # a complete 3-byte char stays
        (b"a" * 997 + b"\xe2\x82\xac", b"a" * 997),  # cut inside a 3-byte char
        (b"a" * 996 + b"\xf0\x9f\x98\x80", b"a" * 996),  # cut inside a 4-byte char
        (b"a" * 997 + b"\xc3\xa9", b"a" * 997 + b"\xc3\xa9"),  # a complete 2-byte char stays
    ],
)
def test_long_tokens_are_cut_like_stanford(token, kept):
    assert ref.read_lines(token + b" x") == [[kept, b"x"]]


def test_unk_in_corpus_is_an_error():
    with pytest.raises(ValueError, match="<unk>"):
        ref.count_tokens(b"a <unk> b")
    assert ref.count_tokens(b"a <unk>x b a") == {b"a": 2, b"<unk>x": 1, b"b": 1}


# ---- vocabulary --------------------------------------------------------------------------------
def test_signed_char_order():
    words = [b"b", b"ab", b"abc", b"ab\xc3\xa9", b"A", b"\xc3\xa9", b"a"]
    assert sorted(words, key=ref.stanford_word_key) == [b"\xc3\xa9", b"A", b"a", b"ab\xc3\xa9", b"ab", b"abc", b"b"]


def test_bitwise_hash_pinned():
    # Values from a C rendering of the formula (signed char, seed 1159241, table 2^20).
    assert [ref.bitwise_hash(w) for w in [b"the", b"a", b"zebra", "été".encode(), b"<unk>", b"x\xff"]] == [
        985692,
        771546,
        406113,
        823484,
        265237,
        550964,
    ]


def test_build_vocab_order_and_limits():
    counts = {b"the": 5, b"cat": 2, b"bat": 2, b"\xc3\xa9": 2, b"on": 1, b"mat": 1}
    assert ref.build_vocab(counts) == [(b"the", 5), (b"\xc3\xa9", 2), (b"bat", 2), (b"cat", 2), (b"mat", 1), (b"on", 1)]
    assert ref.build_vocab(counts, min_count=2) == [(b"the", 5), (b"\xc3\xa9", 2), (b"bat", 2), (b"cat", 2)]
    # max_vocab first keeps the 3 most frequent; ties at the cut go by hash bucket (Stanford on glibc).
    tied = sorted([b"cat", b"bat", b"\xc3\xa9"], key=ref.bitwise_hash)
    expect = sorted([b"the"] + tied[:2], key=lambda w: (-counts[w], ref.stanford_word_key(w)))
    assert [w for w, _ in ref.build_vocab(counts, max_vocab=3)] == expect
    assert ref.build_vocab(counts, min_count=3, max_vocab=3) == [(b"the", 5)]


# ---- co-occurrence -----------------------------------------------------------------------------
VOCAB = [b"a", b"b", b"c"]


def test_cooccurrence_by_hand():
    # "a x b a" with x out of vocabulary: kept = a b a (x takes no position).
    X = ref.cooccurrence_dict(b"a x b a\n", VOCAB, window_size=2, symmetric=False)
    assert X == {(0, 1): 1.0, (1, 0): 1.0, (0, 0): 0.5}
    X = ref.cooccurrence_dict(b"a x b a\n", VOCAB, window_size=2, symmetric=True)
    assert X == {(0, 1): 2.0, (1, 0): 2.0, (0, 0): 1.0}  # self pair: 2/d on the diagonal
    X = ref.cooccurrence_dict(b"a x b a\n", VOCAB, window_size=1, symmetric=True, distance_weighting=False)
    assert X == {(0, 1): 2.0, (1, 0): 2.0}


def test_windows_stop_at_newlines_and_line_ends():
    X = ref.cooccurrence_dict(b"a b\nc\n\na", VOCAB, window_size=10, symmetric=False, distance_weighting=False)
    assert X == {(0, 1): 1.0}
    X = ref.cooccurrence_dict(b"a b c", VOCAB, window_size=10, symmetric=False)
    assert X == {(0, 1): 1.0, (0, 2): 0.5, (1, 2): 1.0}
    with pytest.raises(ValueError, match="window_size"):
        ref.cooccurrence_dict(b"a", VOCAB, window_size=0)


# ---- training ----------------------------------------------------------------------------------
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="needs glibc's rand()")
@pytest.mark.parametrize("seed", [1, 42, 2**31 + 5])
def test_glibc_rand_matches_libc(seed):
    libc = ctypes.CDLL("libc.so.6")
    libc.srand(ctypes.c_uint(seed))
    assert list(itertools.islice(ref.glibc_rand(seed), 400)) == [libc.rand() for _ in range(400)]


def test_stanford_init_layout():
    W = ref.stanford_init(3, 4, seed=7)
    gen = ref.glibc_rand(7)
    first = [(next(gen) / ref.RAND_MAX - 0.5) / 4 for _ in range(6)]
    assert W.shape == (6, 5) and np.allclose(W.ravel()[:6], first, rtol=0, atol=0)
    assert np.abs(W).max() <= 0.5 / 4


def _record_setup(rng, V=4, D=3):
    W = rng.normal(0, 0.3, (2 * V, D + 1))
    return W, np.ones_like(W)


@pytest.mark.parametrize("x", [0.5, 3.0, 250.0])  # below x_max (f < 1) and above it (f = 1)
def test_first_step_is_the_loss_gradient(rng, x):
    """With accumulators at 1 the first step is -eta * gradient for the vectors and -gradient for
    the biases (Stanford applies no eta there); the gradient comes from finite differences."""
    W, G = _record_setup(rng)
    V, D, i, j, eta = 4, 3, 1, 2, 0.05
    W0 = W.copy()
    cost = ref.adagrad_step(W, G, i, j, x, eta=eta, x_max=100.0, alpha=0.75)
    assert cost == pytest.approx(ref.glove_loss(W0, [i], [j], [x]), rel=1e-12)
    grad = np.zeros_like(W0)
    for idx in [(i, b) for b in range(D + 1)] + [(V + j, b) for b in range(D + 1)]:
        Wp, Wm = W0.copy(), W0.copy()
        Wp[idx] += 1e-6
        Wm[idx] -= 1e-6
        grad[idx] = (ref.glove_loss(Wp, [i], [j], [x]) - ref.glove_loss(Wm, [i], [j], [x])) / 2e-6
    step = W - W0
    scale = np.r_[np.full(D, eta), 1.0]
    np.testing.assert_allclose(step[i], -scale * grad[i], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(step[V + j], -scale * grad[V + j], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.delete(step, [i, V + j], axis=0), 0.0)
    # Accumulators grow by the squared steps taken (eta included for the vectors).
    np.testing.assert_allclose(G[i, :D] - 1.0, (eta * grad[i, :D]) ** 2, rtol=1e-5, atol=1e-15)


def test_gradient_clipping():
    V, D = 2, 2
    W = np.zeros((2 * V, D + 1))
    W[0, :D] = [1000.0, -1000.0]
    W[V + 1, :D] = [1000.0, 1000.0]  # diff ~ 0 - log(x) small... make it huge via the bias
    W[0, D] = 1e6
    G = np.ones_like(W)
    ref.adagrad_step(W, G, 0, 1, 200.0, eta=0.1, grad_clip=5.0)
    assert np.allclose(np.abs(W[0, :D] - [1000.0, -1000.0]), 0.5)  # clip * eta / sqrt(1)


def test_non_finite_record_is_skipped():
    W = np.zeros((4, 3))
    W[0, 0], W[2, 0] = 1e200, 1e200  # dot product overflows to inf
    G = np.ones_like(W)
    W0 = W.copy()
    assert ref.adagrad_step(W, G, 0, 0, 2.0) == 0.0
    assert np.array_equal(W, W0) and np.all(G == 1.0)


def test_epoch_cost_decreases(rng):
    V, D = 6, 4
    rows, cols = np.meshgrid(np.arange(V), np.arange(V), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    vals = rng.uniform(1.0, 50.0, rows.size)
    W = ref.stanford_init(V, D, seed=3)
    G = np.ones_like(W)
    costs = [ref.train_epoch(W, G, rows, cols, vals, eta=0.05) for _ in range(30)]
    assert costs[-1] < 0.2 * costs[0]
    assert all(b < a for a, b in zip(costs[3:], costs[4:]))
