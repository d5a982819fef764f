"""The word2vec kernel (seqkernels._C.word2vec_*) against seqkernels.reference.word2vec: one update
step against finite differences of its loss, whole epochs (skip-gram and CBOW, with and without
subsampling, odd sizes) against the reference in single-thread mode, the encoder, the noise table
and subsampling thresholds against their definitions, and Hogwild threads for sanity."""

from __future__ import annotations

import numpy as np
import pytest

from seqkernels import _C
from seqkernels.reference import word2vec as ref
from seqkernels.word2vec import noise_table, subsample_thresholds

from ..tolerance import assert_within_rule, numerical_grad


# ---- the reference step is SGD on the negative-sampling loss -----------------------------------
@pytest.mark.parametrize("D", [1, 7])
def test_reference_step_is_a_gradient_step(D, rng):
    V, lr = 9, 0.3
    syn1 = rng.standard_normal((V, D)) * 0.5
    h = rng.standard_normal(D) * 0.5
    word, negatives = 2, [5, 0, 7]  # distinct rows: the step then equals one gradient step
    grad_h = numerical_grad(lambda: ref.pair_loss(h, syn1, word, negatives), h)
    grad_u = numerical_grad(lambda: ref.pair_loss(h, syn1, word, negatives), syn1)
    syn1_after = syn1.copy()
    err = ref.output_step(h, syn1_after, word, negatives, lr)
    np.testing.assert_allclose(err, -lr * grad_h, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(syn1_after - syn1, -lr * grad_u, rtol=1e-6, atol=1e-9)


def test_reference_cbow_step_moves_every_context_word_by_the_error(rng):
    V, D = 6, 5
    syn0, syn1 = rng.standard_normal((V, D)), rng.standard_normal((V, D))
    h = (syn0[1] + syn0[3] + syn0[3]) / 3
    s1 = syn1.copy()
    err = ref.output_step(h, s1, 4, [0, 2], 0.1)
    after0, after1 = syn0.copy(), syn1.copy()
    ref.cbow_step(after0, after1, [1, 3, 3], 4, [0, 2], 0.1)
    np.testing.assert_allclose(after1, s1)
    np.testing.assert_allclose(after0[1] - syn0[1], err)
    np.testing.assert_allclose(after0[3] - syn0[3], 2 * err)  # two occurrences, two moves


# ---- a small corpus --------------------------------------------------------------------------
def _corpus(rng, V=23, sentences=40, max_len=17):
    """Zipf-like ids in sentences of odd lengths (some of length 1), as the encoder returns them."""
    p = 1.0 / np.arange(1, V + 1)
    p /= p.sum()
    lengths = rng.integers(1, max_len + 1, size=sentences)
    ids = rng.choice(V, size=int(lengths.sum()), p=p).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    counts = np.maximum(np.bincount(ids, minlength=V), 1)
    return ids, offsets, counts


def _run_kernel(syn0, syn1, ids, offsets, keep, table, **kw):
    s0, s1 = syn0.astype(np.float32), syn1.astype(np.float32)
    out = _C.word2vec_train_epoch(
        s0,
        s1,
        ids,
        offsets,
        keep,
        table,
        kw["window"],
        kw["negative"],
        kw["cbow"],
        kw["lr"],
        kw["before"],
        kw["total"],
        kw["seed"],
        1,
        kw.get("private_rows", -1),
    )
    return s0, s1, out


def _run_reference(syn0, syn1, ids, offsets, keep, table, dtype, **kw):
    s0, s1 = syn0.astype(dtype), syn1.astype(dtype)
    out = ref.train_epoch(
        s0,
        s1,
        ids,
        offsets,
        keep,
        table,
        kw["window"],
        kw["negative"],
        kw["cbow"],
        kw["lr"],
        kw["before"],
        kw["total"],
        kw["seed"],
    )
    return s0, s1, out


@pytest.mark.parametrize("cbow", [False, True], ids=["skipgram", "cbow"])
@pytest.mark.parametrize("sample", [0.0, 1e-2], ids=["no-subsampling", "subsampling"])
@pytest.mark.parametrize("D,window,negative", [(7, 3, 2), (33, 5, 5), (1, 1, 1)])
def test_epoch_equals_reference(cbow, sample, D, window, negative, rng, cpu_capability):
    ids, offsets, counts = _corpus(rng)
    V = len(counts)
    syn0 = (rng.random((V, D)) - 0.5) / D
    syn1 = rng.standard_normal((V, D)) * 0.1  # not zero: every term of the step matters from the start
    keep = subsample_thresholds(counts, sample)
    table = noise_table(counts, 1000)
    kw = dict(window=window, negative=negative, cbow=cbow, lr=0.05, before=len(ids), total=3 * len(ids), seed=77)
    k0, k1, out = _run_kernel(syn0, syn1, ids, offsets, keep, table, **kw)
    r0, r1, want = _run_reference(syn0, syn1, ids, offsets, keep, table, np.float64, **kw)
    q0, q1, _ = _run_reference(syn0, syn1, ids, offsets, keep, table, np.float32, **kw)
    assert out[0] == want["words"] == len(ids)
    assert out[1] == want["trained"]  # the same subsampling draws
    if sample:
        assert want["trained"] < len(ids)
    assert out[2] == pytest.approx(want["learning_rate"], rel=1e-15)
    assert not np.allclose(r0, syn0)  # the epoch did train
    assert_within_rule("syn0", k0, r0, q0)
    assert_within_rule("syn1neg", k1, r1, q1)


@pytest.mark.parametrize("slots", [17, 64, 4099], ids=["fewer-slots-than-words", "some-words-without-slots", "many"])
def test_noise_draws_equal_the_tables(slots, rng):
    """The kernel finds each draw's word from bucketed run ends, not by reading the table: with
    tables where some words have no slot and buckets straddle several words, the epoch still equals
    the reference (which reads table[slot])."""
    ids, offsets, counts = _corpus(rng, V=40, sentences=60)
    V, D = len(counts), 16
    table = noise_table(counts, slots)
    assert len(np.unique(table)) < V or slots > 1000
    syn0 = (rng.random((V, D)) - 0.5) / D
    syn1 = rng.standard_normal((V, D)) * 0.1
    kw = dict(window=4, negative=6, cbow=False, lr=0.05, before=0, total=len(ids), seed=5)
    k0, k1, _ = _run_kernel(syn0, syn1, ids, offsets, None, table, **kw)
    r0, r1, _ = _run_reference(syn0, syn1, ids, offsets, None, table, np.float64, **kw)
    q0, q1, _ = _run_reference(syn0, syn1, ids, offsets, None, table, np.float32, **kw)
    assert_within_rule("syn0", k0, r0, q0)
    assert_within_rule("syn1neg", k1, r1, q1)


@pytest.mark.parametrize("cbow", [False, True], ids=["skipgram", "cbow"])
@pytest.mark.parametrize("share", [0.5, 1.0])
def test_private_rows_train_as_the_shared_ones(cbow, share, rng):
    """The most frequent words' rows trained in a thread's own copy and added back at the piece's
    end: with one thread (one piece) that is the same epoch as the reference's."""
    ids, offsets, counts = _corpus(rng, V=30, sentences=50)
    V, D = len(counts), 19
    syn0 = (rng.random((V, D)) - 0.5) / D
    syn1 = rng.standard_normal((V, D)) * 0.1
    table = noise_table(counts, 3000)
    kw = dict(window=3, negative=4, cbow=cbow, lr=0.05, before=0, total=len(ids), seed=11)
    k0, k1, _ = _run_kernel(syn0, syn1, ids, offsets, None, table, private_rows=int(V * share), **kw)
    r0, r1, _ = _run_reference(syn0, syn1, ids, offsets, None, table, np.float64, **kw)
    q0, q1, _ = _run_reference(syn0, syn1, ids, offsets, None, table, np.float32, **kw)
    assert_within_rule("syn0", k0, r0, q0)
    assert_within_rule("syn1neg", k1, r1, q1)


def test_threads_take_pieces_of_a_long_corpus(rng):
    """More tokens than several pieces: with two threads the pieces are handed out as threads free
    up; every word is still read and trained exactly once per epoch."""
    ids, offsets, counts = _corpus(rng, V=300, sentences=18000, max_len=15)
    assert len(ids) > 4 * 32768
    V, D = len(counts), 8
    syn0 = ((rng.random((V, D)) - 0.5) / D).astype(np.float32)
    syn1 = np.zeros((V, D), np.float32)
    words, trained, lr = _C.word2vec_train_epoch(
        syn0, syn1, ids, offsets, None, noise_table(counts, 10_000), 3, 2, False, 0.025, 0, len(ids), 4, 2
    )
    assert words == trained == len(ids)
    assert 0 < lr < 0.025
    assert np.all(np.isfinite(syn0)) and np.all(np.isfinite(syn1))


@pytest.mark.parametrize("private_rows", [40, 300], ids=["some-private", "all-private"])
def test_private_rows_carried_between_pieces_keep_every_change(private_rows, rng):
    """Two threads, several pieces each, with private rows carried from piece to piece and their
    changes added back at each piece's end: the parameters move as with every row shared (the same
    pieces and random numbers; only what each thread sees of the other's changes differs, which at
    this small rate moves the result by a few per cent, about as much as two shared runs differ).
    A lost or repeated piece of changes would be a fifth of the movement or more."""
    ids, offsets, counts = _corpus(rng, V=300, sentences=18000, max_len=15)
    V, D = len(counts), 8
    syn0 = ((rng.random((V, D)) - 0.5) / D).astype(np.float32)
    syn1 = (rng.standard_normal((V, D)) * 0.1).astype(np.float32)
    table = noise_table(counts, 10_000)

    def change(private):
        s0, s1 = syn0.copy(), syn1.copy()
        args = (s0, s1, ids, offsets, None, table, 3, 2, False, 1e-4, 0, len(ids), 4, 2, private)
        assert _C.word2vec_train_epoch(*args)[0] == len(ids)
        return np.concatenate([(s0 - syn0).ravel(), (s1 - syn1).ravel()])

    shared, private = change(0), change(private_rows)
    assert len(ids) > 4 * 32768  # several pieces per thread
    assert np.linalg.norm(private - shared) < 0.12 * np.linalg.norm(shared)


def test_learning_rate_schedule_refreshes_every_10000_words(rng):
    """A corpus longer than REFRESH_WORDS: the rate changes during the epoch, as in the reference."""
    ids, offsets, counts = _corpus(rng, V=50, sentences=2800, max_len=15)
    assert len(ids) > 2 * ref.REFRESH_WORDS
    V, D = len(counts), 4
    syn0 = (rng.random((V, D)) - 0.5) / D
    syn1 = np.zeros((V, D))
    table = noise_table(counts, 5000)
    kw = dict(window=1, negative=1, cbow=False, lr=0.025, before=0, total=len(ids), seed=3)
    k0, k1, out = _run_kernel(syn0, syn1, ids, offsets, None, table, **kw)
    r0, r1, want = _run_reference(syn0, syn1, ids, offsets, None, table, np.float64, **kw)
    q0, q1, _ = _run_reference(syn0, syn1, ids, offsets, None, table, np.float32, **kw)
    assert want["learning_rate"] < 0.025 * 0.5
    assert out[2] == pytest.approx(want["learning_rate"], rel=1e-15)
    assert_within_rule("syn0", k0, r0, q0)
    assert_within_rule("syn1neg", k1, r1, q1)


def test_threads_train_every_word_and_stay_finite(rng):
    ids, offsets, counts = _corpus(rng, V=40, sentences=400)
    V, D = len(counts), 16
    syn0 = ((rng.random((V, D)) - 0.5) / D).astype(np.float32)
    syn1 = np.zeros((V, D), np.float32)
    table = noise_table(counts, 4000)
    words, trained, lr = _C.word2vec_train_epoch(
        syn0, syn1, ids, offsets, None, table, 5, 5, False, 0.025, 0, len(ids), 9, 3
    )
    assert words == trained == len(ids)
    assert np.all(np.isfinite(syn0)) and np.all(np.isfinite(syn1)) and np.any(syn1 != 0)


# ---- sampling tables ---------------------------------------------------------------------------
def test_noise_table_follows_unigram_to_the_three_quarters(rng):
    counts = rng.integers(1, 5000, size=300)
    size = 100_003
    table = noise_table(counts, size)
    assert table.dtype == np.int32 and table.shape == (size,)
    assert np.all(np.diff(table) >= 0)  # word i's slots are contiguous, in id order
    share = np.bincount(table, minlength=len(counts)) / size
    want = counts**0.75 / np.sum(counts**0.75)
    assert np.max(np.abs(share - want)) <= 1.0 / size + 1e-12


def test_subsample_thresholds_are_word2vec_c_formula():
    counts = np.array([1000, 100, 10, 1])
    sample, total = 1e-2, counts.sum()
    keep = subsample_thresholds(counts, sample)
    for c, k in zip(counts, keep):
        assert k == pytest.approx((np.sqrt(c / (sample * total)) + 1) * (sample * total) / c, rel=1e-15)
    assert subsample_thresholds(counts, 0) is None


# ---- the encoder -------------------------------------------------------------------------------
def test_encode_drops_unknown_words_and_cuts_sentences():
    words = [b"the", b"cat", b"sat"]
    ids, offsets, tokens = _C.word2vec_encode(b"the cat  sat\n\nzzz\nthe\tzzz cat\r\ncat cat cat cat cat", words, 3)
    assert tokens == 12
    assert ids.tolist() == [0, 1, 2, 0, 1, 1, 1, 1, 1, 1]
    assert offsets.tolist() == [0, 3, 5, 8, 10]  # the 'zzz' line has no sentence; the last is cut at 3


# ---- bad input ---------------------------------------------------------------------------------
def test_bad_arguments_raise_value_errors(rng):
    ids, offsets, counts = _corpus(rng)
    V, D = len(counts), 4
    syn0, syn1 = np.zeros((V, D), np.float32), np.zeros((V, D), np.float32)
    table = noise_table(counts, 100)

    def call(**over):
        a = dict(
            syn0=syn0,
            syn1neg=syn1,
            ids=ids,
            offsets=offsets,
            keep=None,
            table=table,
            window=5,
            negative=5,
            cbow=False,
            learning_rate=0.025,
            words_before=0,
            words_total=len(ids),
            seed=1,
            threads=1,
        )
        a.update(over)
        return _C.word2vec_train_epoch(**a)

    with pytest.raises(ValueError, match="ids: token 3 has id"):
        bad = ids.copy()
        bad[3] = V
        call(ids=bad)
    with pytest.raises(ValueError, match="syn0: expected dtype float32"):
        call(syn0=syn0.astype(np.float64))
    with pytest.raises(ValueError, match="window"):
        call(window=0)
    with pytest.raises(ValueError, match="negative"):
        call(negative=0)
    with pytest.raises(ValueError, match="offsets"):
        call(offsets=offsets[:-1])
    with pytest.raises(ValueError, match="table: entry"):
        call(table=np.full(10, V, np.int32))
    with pytest.raises(ValueError, match="keep: expected shape"):
        call(keep=np.ones(V + 1))
    with pytest.raises(ValueError, match="private_rows"):
        call(private_rows=-2)
    with pytest.raises(ValueError, match="table: expected non-decreasing ids"):
        call(table=table[::-1].copy())
