"""The C++ GloVe kernels (seqkernels._C.glove_*) against the Python reference, in every mode,
thread count, block size and memory plan (in-memory, spilled to disk, hierarchical merges)."""

from __future__ import annotations

import ctypes
import itertools
import math
import platform

import numpy as np
import pytest

from seqkernels import _C
from seqkernels.reference import glove as ref

from .corpora import CORPORA, WORDS

# Kernel variants: every one must give the reference's keys and values (up to summation order).
VARIANTS = {
    "1-thread": dict(threads=1),
    "2-threads": dict(threads=2),
    "3-threads-tiny-blocks": dict(threads=3, block_bytes=37),
    # Few hundred runs at most per call: creating a temporary file costs ~0.2 ms on ext4.
    "spill-sparse-only": dict(threads=2, max_product=0, overflow_length=96, max_open_runs=2, block_bytes=300),
    "spill-some-dense": dict(threads=2, max_product=6, overflow_length=128, max_open_runs=3),
}
MODES = [(sym, dw) for sym in (True, False) for dw in (True, False)]


def _vocab(data: bytes, min_count: int = 1, max_vocab: int = 0):
    return [w for w, _ in ref.build_vocab(ref.count_tokens(data), min_count, max_vocab)]


def _as_dict(rows, cols, values):
    keys = list(zip(rows.tolist(), cols.tolist()))
    assert keys == sorted(keys), "records not sorted by (row, col)"
    assert len(set(keys)) == len(keys), "duplicate keys"
    assert np.all(values > 0), "zero or negative values written"
    return dict(zip(keys, values.tolist()))


def assert_same_cooccurrence(got: dict, want: dict, window: int):
    """Bit-identical for windows <= 22, where the kernels add integer-scaled weights exactly (as the
    reference adds fractions). Above, both add float64 1/d in different orders: over the few
    thousand terms of a cell here, the relative difference stays below n * 2^-53 ~ 1e-13."""
    rtol = 0.0 if window <= 22 else 1e-13
    assert set(got) == set(want), f"keys differ: {len(set(got) ^ set(want))} of {len(want)}"
    worst = max((abs(got[k] - want[k]) / want[k] for k in want), default=0.0)
    assert worst <= rtol, f"max relative difference {worst:.3e} > {rtol:.0e}"


# ---- vocabulary --------------------------------------------------------------------------------
@pytest.mark.parametrize("corpus", sorted(CORPORA))
@pytest.mark.parametrize("threads, block", [(1, 0), (2, 0), (3, 29)])
def test_vocab_count_matches_reference(corpus, threads, block):
    data = CORPORA[corpus]()
    want = ref.build_vocab(ref.count_tokens(data))
    words, counts, tokens, distinct = _C.glove_vocab_count(data, 1, 0, threads, block)
    assert list(zip(words, counts.tolist())) == want
    assert tokens == sum(len(line) for line in ref.read_lines(data)) and distinct == len(want)


@pytest.mark.parametrize("min_count, max_vocab", [(2, 0), (1, 3), (3, 5), (1, 1), (100, 0)])
def test_vocab_limits_match_reference(min_count, max_vocab):
    data = CORPORA["zipf"]() + CORPORA["repeated"]()
    words, counts, _, _ = _C.glove_vocab_count(data, min_count, max_vocab, 2)
    assert list(zip(words, counts.tolist())) == ref.build_vocab(ref.count_tokens(data), min_count, max_vocab)


@pytest.mark.parametrize("seed", range(12))
def test_tokenizer_fuzz(seed):
    """Random byte soup without \r (the 64-byte mask path) and with it (the bytewise path): tokens
    cross chunk borders, runs of blanks and newlines, over-long tokens."""
    import random

    rng = random.Random(seed)
    pieces = [
        b"a",
        b"b",
        b"\xc3\xa9",
        b" ",
        b"  ",
        b"\t",
        b"\n",
        b"\n\n",
        b"ab" * 40,
        b"x" * rng.choice([63, 64, 65]),
        b"y" * rng.choice([998, 999, 1000, 1500]),
    ]
    data = b"".join(rng.choice(pieces) for _ in range(rng.randint(50, 900)))
    if seed % 3 == 0:
        data = data.replace(b"b", b"b\r", 5)
    want = ref.build_vocab(ref.count_tokens(data))
    for threads, block in ((1, 0), (2, 0), (3, 100)):
        words, counts, _, _ = _C.glove_vocab_count(data, 1, 0, threads, block)
        assert list(zip(words, counts.tolist())) == want
    vocab = [w for w, _ in want][:4]
    X = ref.cooccurrence_dict(data, vocab, 5, True, True)
    assert_same_cooccurrence(_as_dict(*_C.glove_cooccur(data, vocab, 5)[1:]), X, 5)


def test_word_order_and_bucket_match_reference():
    words = sorted(set(WORDS + [b"", b"\x7f", b"\x80", b"b\x00", b"b"]))
    for a, b in itertools.product(words, words):
        assert _C.glove_word_less(a, b) == (ref.stanford_word_key(a) < ref.stanford_word_key(b)), (a, b)
    for w in words:
        assert _C.glove_bucket(w) == ref.bitwise_hash(w)


def test_vocab_counts_a_file_and_a_descriptor(tmp_path):
    data = CORPORA["zipf"]()
    path = tmp_path / "corpus.txt"
    path.write_bytes(data)
    want = _C.glove_vocab_count(data)[0]
    assert _C.glove_vocab_count(str(path))[0] == want
    with open(path, "rb") as f:
        assert _C.glove_vocab_count(f.fileno())[0] == want


# ---- co-occurrence -----------------------------------------------------------------------------
@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("corpus", sorted(CORPORA))
@pytest.mark.parametrize("window", [1, 3, 22, 40])
def test_cooccur_matches_reference(corpus, variant, window):
    data = CORPORA[corpus]()
    vocab = _vocab(data, min_count=2)[:-2] or list(WORDS)  # drop the rarest words: they act as OOV
    for symmetric, weighting in MODES:
        want = ref.cooccurrence_dict(data, vocab, window, symmetric, weighting)
        stats, rows, cols, values = _C.glove_cooccur(
            data, vocab, window, symmetric, weighting, 0.05, **VARIANTS[variant]
        )
        assert_same_cooccurrence(_as_dict(rows, cols, values), want, window)
        assert stats["records"] == len(want)


def test_spill_path_equals_in_memory_path():
    data = b"\n".join(CORPORA[c]() for c in sorted(CORPORA))
    vocab = _vocab(data)
    _, r0, c0, v0 = _C.glove_cooccur(data, vocab, 7, True, True, 0.05, threads=1)
    stats, r1, c1, v1 = _C.glove_cooccur(
        data, vocab, 7, True, True, 0.05, threads=2, max_product=3, overflow_length=64, max_open_runs=2
    )
    assert stats["runs_spilled"] > 50 and stats["merge_passes"] >= 5, stats
    assert np.array_equal(r0, r1) and np.array_equal(c0, c1) and np.array_equal(v0, v1)


def test_tiny_memory_limit_forces_spills():
    data = CORPORA["one-long-line"]() * 30
    vocab = _vocab(data)
    stats, r, c, v = _C.glove_cooccur(data, vocab, 15, True, True, 0.003, threads=2, max_product=0)
    assert stats["runs_spilled"] > 0 and stats["peak_bytes"] <= stats["budget_bytes"]
    _, r0, c0, v0 = _C.glove_cooccur(data, vocab, 15, True, True, 1.0, threads=1)
    assert np.array_equal(r, r0) and np.array_equal(c, c0) and np.array_equal(v, v0)


@pytest.fixture(scope="module")
def big_corpus():
    """~1.5 MB: big enough that blocks, counting and merging really run on several threads."""
    from .corpora import zipf_lines

    data = b"\n".join(zipf_lines(seed, lines=2000, max_len=40) for seed in range(6))
    return data, _vocab(data, min_count=3)


@pytest.mark.parametrize("kwargs", [dict(), dict(max_product=4, overflow_length=20000)], ids=["in-memory", "spilled"])
def test_thread_counts_agree_on_a_big_corpus(big_corpus, kwargs):
    data, vocab = big_corpus
    _, r1, c1, v1 = _C.glove_cooccur(data, vocab, 10, True, True, 0.2, threads=1, **kwargs)
    for threads in (2, 3):
        stats, r, c, v = _C.glove_cooccur(data, vocab, 10, True, True, 0.2, threads=threads, **kwargs)
        assert stats["threads"] == threads
        assert np.array_equal(r, r1) and np.array_equal(c, c1) and np.array_equal(v, v1)
    # Above window 22 sums are float64 in order-dependent ways, but a fixed plan repeats its bits.
    a = _C.glove_cooccur(data, vocab, 30, True, True, 0.2, threads=3, **kwargs)
    b = _C.glove_cooccur(data, vocab, 30, True, True, 0.2, threads=3, **kwargs)
    assert np.array_equal(a[3], b[3])
    words, counts, _, _ = _C.glove_vocab_count(data, threads=1)
    for threads in (2, 3):
        w, c, _, _ = _C.glove_vocab_count(data, threads=threads)
        assert w == words and np.array_equal(c, counts)


def test_cooccur_writes_stanford_records_to_a_descriptor(tmp_path):
    data = CORPORA["zipf"]()
    vocab = _vocab(data)
    _, rows, cols, values = _C.glove_cooccur(data, vocab, 5)
    path = tmp_path / "cooccurrence.bin"
    with open(path, "wb") as f:
        stats, *rest = _C.glove_cooccur(data, vocab, 5, output_fd=f.fileno())
    assert rest == [None, None, None]
    raw = np.fromfile(path, dtype=np.dtype([("w1", "<i4"), ("w2", "<i4"), ("v", "<f8")]))
    assert path.stat().st_size == 16 * len(rows) == 16 * stats["records"]
    assert np.array_equal(raw["w1"], rows + 1) and np.array_equal(raw["w2"], cols + 1)
    assert np.array_equal(raw["v"], values)


def test_no_temporary_files_are_left(tmp_path):
    data = CORPORA["zipf"]() * 3
    vocab = _vocab(data)
    _C.glove_cooccur(data, vocab, 5, temp_dir=str(tmp_path), max_product=0, overflow_length=64, max_open_runs=2)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError):
        _C.glove_cooccur(data, vocab + [b"the"], 5, temp_dir=str(tmp_path))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(window_size=0), ValueError, "window_size: expected >= 1"),
        (dict(memory_gb=0.0), ValueError, "memory: expected a positive"),
        (dict(memory_gb=float("nan")), ValueError, "memory: expected a positive"),
        (dict(memory_gb=1e-5), ValueError, "too small to hold one run"),
        (
            dict(memory_gb=0.01, max_product=10**9, words=[b"w%d" % i for i in range(2000)]),
            ValueError,
            "cannot hold the requested tables",
        ),
        (dict(threads=-1), ValueError, "threads: expected >= 0"),
        (dict(max_open_runs=1), ValueError, "max_open_runs"),
        (dict(overflow_length=0), ValueError, "overflow_length"),
        (dict(words=[]), ValueError, "vocabulary: is empty"),
        (dict(words=[b"a", b"b", b"a"]), ValueError, r"word 2 \('a'\) repeats word 0"),
        (dict(words=[b"a", b"<unk>"]), ValueError, "reserved token <unk>"),
        (dict(words=[b"a b"]), ValueError, "contains a blank"),
        (dict(words=[b""]), ValueError, "word 0 is empty"),
        (dict(corpus=1.5), TypeError, "corpus: expected a path"),
        (dict(corpus="/nonexistent/corpus.txt"), RuntimeError, "cannot open corpus file"),
    ],
)
def test_cooccur_errors(kwargs, exc, match):
    args = dict(corpus=b"a b c\n", words=[b"a", b"b"], window_size=3)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        _C.glove_cooccur(**args)


def test_unk_in_corpus_is_an_error_for_vocab_count():
    with pytest.raises(ValueError, match="reserved token <unk>"):
        _C.glove_vocab_count(b"a b\nc <unk> d\n", threads=2)
    with pytest.raises(ValueError, match="min_count"):
        _C.glove_vocab_count(b"a", min_count=0)


# ---- training ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 42, 2**32 - 1])
def test_stanford_init_matches_reference(seed):
    assert np.array_equal(_C.glove_stanford_init(4, 5, seed), ref.stanford_init(4, 5, seed))


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="needs glibc's rand()")
def test_stanford_init_uses_glibcs_rand():
    libc = ctypes.CDLL("libc.so.6")
    libc.srand(ctypes.c_uint(7))
    want = [(libc.rand() / ref.RAND_MAX - 0.5) / 3 for _ in range(2 * 50 * 4)]
    assert np.array_equal(_C.glove_stanford_init(50, 3, 7).ravel(), want)


def _records(rng, V, N):
    return (rng.integers(0, V, N).astype(np.int32), rng.integers(0, V, N).astype(np.int32), rng.uniform(0.2, 300.0, N))


def test_train_epoch_matches_reference(rng, cpu_capability):
    V, D = 30, 11  # D not a multiple of any vector width
    rows, cols, vals = _records(rng, V, 600)
    W = _C.glove_stanford_init(V, D, 3)
    G = np.ones_like(W)
    W_ref, G_ref = W.copy(), G.copy()
    for _ in range(3):
        cost, skipped = _C.glove_train_epoch(W, G, rows, cols, vals, 0.05, 100.0, 0.75, 100.0, threads=1)
        cost_ref = ref.train_epoch(W_ref, G_ref, rows, cols, vals, 0.05, 100.0, 0.75, 100.0)
        assert skipped == 0
        assert cost == pytest.approx(cost_ref, rel=1e-12)
        np.testing.assert_allclose(W, W_ref, rtol=0, atol=1e-13)
        np.testing.assert_allclose(G, G_ref, rtol=1e-12)


def test_precomputed_log_and_weight_give_the_same_bits(rng):
    V, D = 20, 9
    rows, cols, vals = _records(rng, V, 500)
    vals[::7] = 100.0  # x == x_max: f = 1 either way
    log_x, f_x = _C.glove_record_terms(vals, 100.0, 0.75)
    assert np.array_equal(log_x, [math.log(v) for v in vals])
    assert np.array_equal(f_x, [1.0 if v > 100.0 else math.pow(v / 100.0, 0.75) for v in vals])
    W0 = _C.glove_stanford_init(V, D, 4)
    results = []
    for terms in ((None, None), (log_x, f_x)):
        W, G = W0.copy(), np.ones_like(W0)
        cost = _C.glove_train_epoch(W, G, rows, cols, vals, 0.05, 100.0, 0.75, 100.0, 1, *terms)[0]
        results.append((cost, W, G))
    assert results[0][0] == results[1][0]
    assert np.array_equal(results[0][1], results[1][1]) and np.array_equal(results[0][2], results[1][2])
    with pytest.raises(ValueError, match="give both or neither"):
        _C.glove_train_epoch(W, G, rows, cols, vals, 0.05, 100.0, 0.75, 100.0, 1, log_x, None)


def test_train_epoch_clips_and_skips_like_the_reference():
    V, D = 3, 4
    W = np.zeros((2 * V, D + 1))
    W[0, :D], W[V + 1, :D], W[0, D] = 100.0, 100.0, 1e6  # huge gradients: clipped
    W[1, 0], W[V + 2, 0] = 1e200, 1e200  # overflowing diff: skipped
    G = np.ones_like(W)
    rows, cols, vals = np.array([0, 1], np.int32), np.array([1, 2], np.int32), np.array([5.0, 5.0])
    W_ref, G_ref = W.copy(), G.copy()
    cost, skipped = _C.glove_train_epoch(W, G, rows, cols, vals, 0.1, 100.0, 0.75, 2.0, threads=1)
    cost_ref = ref.train_epoch(W_ref, G_ref, rows, cols, vals, 0.1, 100.0, 0.75, 2.0)
    assert skipped == 1 and cost == pytest.approx(cost_ref, rel=1e-12)
    np.testing.assert_array_equal(W, W_ref)


def test_hogwild_threads_train(rng):
    V, D = 40, 8
    rows, cols, vals = _records(rng, V, 3000)
    W = _C.glove_stanford_init(V, D, 5)
    G = np.ones_like(W)
    costs = [_C.glove_train_epoch(W, G, rows, cols, vals, 0.05, 100.0, 0.75, 100.0, threads=3)[0] for _ in range(10)]
    assert np.all(np.isfinite(W)) and costs[-1] < 0.5 * costs[0]


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda W, G, r, c, v: _C.glove_train_epoch(W, G, r + 100, c, v, 0.05, 100.0, 0.75, 100.0),
            ValueError,
            r"outside \[0, 3\)",
        ),
        (
            lambda W, G, r, c, v: _C.glove_train_epoch(W.astype(np.float32), G, r, c, v, 0.05, 100.0, 0.75, 100.0),
            ValueError,
            "W: expected dtype float64",
        ),
        (
            lambda W, G, r, c, v: _C.glove_train_epoch(W, G[:2], r, c, v, 0.05, 100.0, 0.75, 100.0),
            ValueError,
            r"gradsq: expected shape \(6, 5\)",
        ),
        (
            lambda W, G, r, c, v: _C.glove_train_epoch(W, G, r, c, v[:1], 0.05, 100.0, 0.75, 100.0),
            ValueError,
            r"values: expected shape \(2,\)",
        ),
        (
            lambda W, G, r, c, v: _C.glove_train_epoch(W, G, r, c, v, -1.0, 100.0, 0.75, 100.0),
            ValueError,
            "learning_rate: expected a positive",
        ),
        (lambda W, G, r, c, v: _C.glove_train_epoch(W, G, r, c, v, 0.05, 0.0, 0.75, 100.0), ValueError, "x_max"),
    ],
)
def test_train_epoch_errors(call, exc, match):
    W, G = np.zeros((6, 5)), np.ones((6, 5))
    with pytest.raises(exc, match=match):
        call(W, G, np.array([0, 1], np.int32), np.array([1, 2], np.int32), np.array([1.0, 2.0]))


# ---- vectors.txt -------------------------------------------------------------------------------
def test_text_vectors_use_printf_lf_formatting(tmp_path, rng):
    M = np.concatenate([rng.normal(0, 1, (5, 7)), [[1e-9, -1e-9, 0.5e-6, 2.5e-6, -0.0, 123456.789, 1e20]]])
    words = [b"a", b"b", b"\xc3\xa9", b"d", b"e", b"f"]
    path = tmp_path / "v.txt"
    _C.glove_write_text_vectors(str(path), words, M, header="6 7")
    want = b"6 7\n" + b"".join(w + b"".join(b" %f" % x for x in row) + b"\n" for w, row in zip(words, M))
    assert path.read_bytes() == want


@pytest.mark.parametrize("window", [7, 30])  # 30: weights not integers after scaling, raw values spilled
def test_spilled_runs_are_compact_and_exact(window):
    data = b"\n".join(CORPORA[c]() for c in sorted(CORPORA)) * 3
    vocab = _vocab(data)
    _, r0, c0, v0 = _C.glove_cooccur(data, vocab, window, True, True, 1.0, threads=1)
    stats, r1, c1, v1 = _C.glove_cooccur(
        data, vocab, window, True, True, 0.05, threads=2, max_product=3, overflow_length=300, max_open_runs=3
    )
    assert stats["runs_spilled"] > 10 and stats["merge_passes"] >= 1, stats
    assert np.array_equal(r0, r1) and np.array_equal(c0, c1)
    if window <= 22:  # exact sums: the same bits whatever was spilled
        assert v0.tobytes() == v1.tobytes()
        # delta-coded keys and integer values: well under the 16 bytes a record takes in memory
        assert stats["spilled_bytes"] < 0.6 * 16 * stats["spilled_records"], stats
    else:
        np.testing.assert_allclose(v1, v0, rtol=1e-13)
        assert stats["spilled_bytes"] < 16 * stats["spilled_records"], stats


def test_dense_buckets_give_the_direct_updates_bits():
    """A table of over a million cells takes its updates through buckets (applied when full and at
    the end); the records must be those of the same count with a small table and direct updates.
    3,000 words with Zipf frequencies: the first bucket (rows of the most frequent words) fills and
    is applied many times during the count."""
    rng = np.random.default_rng(5)
    p = 1.0 / np.arange(1, 3001)
    ids = rng.choice(3000, size=300_000, p=p / p.sum())
    cuts = np.cumsum(rng.integers(1, 40, size=20_000))
    lines = np.split(ids, cuts[cuts < len(ids)])
    data = b"\n".join(b" ".join(b"w%d" % i for i in line) for line in lines)
    vocab = _vocab(data)
    V = len(vocab)
    assert V * (V + 1) // 2 >= 1 << 20
    for threads in (1, 2):
        stats, r, c, v = _C.glove_cooccur(data, vocab, 10, True, True, 0.2, threads=threads, max_product=V * V)
        assert stats["dense_bucket_capacity"] >= 4096 and stats["peak_bytes"] <= stats["budget_bytes"], stats
        direct, r0, c0, v0 = _C.glove_cooccur(data, vocab, 10, True, True, 0.2, threads=threads, max_product=1000)
        assert direct["dense_bucket_capacity"] == 0
        assert np.array_equal(r, r0) and np.array_equal(c, c0) and np.array_equal(v, v0)
    # Asymmetric counting (Stanford's full-row layout) through buckets as well.
    stats, r, c, v = _C.glove_cooccur(data, vocab, 6, False, True, 0.2, threads=2, max_product=V * V)
    assert stats["dense_bucket_capacity"] > 0
    _, r0, c0, v0 = _C.glove_cooccur(data, vocab, 6, False, True, 0.2, threads=2, max_product=1000)
    assert np.array_equal(r, r0) and np.array_equal(c, c0) and np.array_equal(v, v0)
