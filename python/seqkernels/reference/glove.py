"""Stanford GloVe's counting rules and training step, written out for reading (docs/ops.md §5).

This module is the executable statement of what ``seqkernels.glove`` computes; the C++ kernels are
tested against it on small corpora. It is plain Python and slow on purpose: every rule is one
visible step. Stanford GloVe (``vocab_count``, ``cooccur``, ``glove``) is the compatibility target;
where this module deliberately differs from it, the docstring says so.

Tokens (``read_lines``)
    The corpus is bytes. Tokens are separated by spaces and tabs; ``\\r`` is dropped wherever it
    appears (also inside a token); ``\\n`` ends a line, and a line is a document: no context window
    crosses it. A token keeps at most ``MAX_TOKEN_BYTES`` (999) bytes; when the kept part is exactly
    999 bytes long Stanford also backs off an incomplete UTF-8 sequence at its end (below).
    Deliberate difference: a NUL byte is an ordinary byte here (Stanford's C strings end at it).

Vocabulary (``build_vocab``)
    Count every token; ``<unk>`` in the corpus is an error. Order: count descending, ties by
    Stanford's ``scmp``, which compares ``char`` values - signed on x86-64 - so bytes >= 0x80
    sort before ASCII and a word sorts after its extensions that continue with such a byte.
    ``max_vocab`` first keeps the most frequent words; ties at the cut are broken the way Stanford
    breaks them on glibc (a stable sort over its hash table, i.e. by ``bitwise_hash`` bucket),
    then by the byte order above where two tied words share a bucket (Stanford: access order).
    Then words with count < ``min_count`` are dropped. A word's id is its 0-based rank here and
    its 1-based line number in ``vocab.txt`` and in ``cooccurrence.bin``.

Co-occurrence (``cooccurrence_dict``)
    Out-of-vocabulary tokens are dropped before windowing (they take no position). For each token
    R and each of the <= ``window_size`` previous kept tokens L on the same line at distance d,
    X[L, R] += 1/d (1 without distance weighting), and when ``symmetric`` also X[R, L] += 1/d
    (so a word next to itself adds 2/d to the diagonal). Keys are 0-based ids here; the file
    format stores them 1-based, sorted by (row, column), one record per key, nonzeros only.
    Values are the exact sums, rounded once to float64 (for windows up to 22; beyond, float64
    additions in corpus order). Stanford adds float64 values in its own order, so its files
    differ from these in the last bits (relative differences ~1e-13 on heavy cells).
    Deliberate difference: Stanford's merge step adds one record twice when an overflow file is
    empty (it re-uses the previous read); that bug is not reproduced.

Training (``stanford_init``, ``adagrad_step``, ``train_epoch``)
    Parameters ``W`` have Stanford's layout: shape (2V, D + 1); row i < V is word i's vector with
    its bias in the last column, row V + j is context word j's. Loss per record (i, j, x):
    ``0.5 * f(x) * diff**2`` with ``diff = w_i . c_j + b_i + b~_j - log x`` and
    ``f(x) = min(1, (x / x_max) ** alpha)``. The AdaGrad step is Stanford's current ``glove.c``:
    accumulators start at 1; vector gradients are clipped to ``[-grad_clip, grad_clip]`` and
    multiplied by ``eta`` before both the update ``g / sqrt(G)`` and the accumulation ``G += g**2``;
    the biases use ``fdiff / sqrt(G)`` and ``G += fdiff**2`` without ``eta`` (as Stanford does);
    a record whose diff is not finite is skipped, and a vector update that is not finite is
    dropped. The cost Stanford prints per iteration is the sum of the per-record losses (computed
    before each record's update) divided by the number of records.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np

__all__ = [
    "MAX_TOKEN_BYTES",
    "UNK",
    "RAND_MAX",
    "read_lines",
    "count_tokens",
    "stanford_word_key",
    "bitwise_hash",
    "build_vocab",
    "cooccurrence_dict",
    "glibc_rand",
    "stanford_init",
    "weighting",
    "glove_loss",
    "adagrad_step",
    "train_epoch",
]

MAX_TOKEN_BYTES = 999  # Stanford's MAX_STRING_LENGTH - 1
UNK = b"<unk>"
RAND_MAX = 2147483647  # glibc


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------
def _truncate_token(token: bytes) -> bytes:
    """Stanford's length cap: keep 999 bytes; if exactly 999 are kept and the last one has its
    high bit set, drop a trailing incomplete UTF-8 sequence (a lead byte at the end, a 3/4-byte
    lead two bytes from the end, or a 4-byte lead three bytes from the end)."""
    token = token[:MAX_TOKEN_BYTES]
    n = len(token)
    if n == MAX_TOKEN_BYTES and token[n - 1] & 0x80:
        if token[n - 1] & 0xC0 == 0xC0:
            return token[: n - 1]
        if token[n - 2] & 0xE0 == 0xE0:
            return token[: n - 2]
        if token[n - 3] & 0xF8 == 0xF0:
            return token[: n - 3]
    return token


def read_lines(data: bytes) -> list[list[bytes]]:
    """Split a corpus into lines of tokens by Stanford's ``get_word`` rules (module docstring)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data: expected bytes, got {type(data).__name__}")
    data = bytes(data).replace(b"\r", b"")
    lines = []
    for line in data.split(b"\n"):
        tokens = [t for t in line.replace(b"\t", b" ").split(b" ") if t]
        lines.append([_truncate_token(t) for t in tokens])
    return lines


def count_tokens(data: bytes) -> dict[bytes, int]:
    """Occurrences of every token; ``<unk>`` is an error (Stanford reserves it)."""
    counts: dict[bytes, int] = {}
    for line in read_lines(data):
        for token in line:
            if token == UNK:
                raise ValueError("corpus: contains the reserved token <unk>")
            counts[token] = counts.get(token, 0) + 1
    return counts


# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------
def stanford_word_key(word: bytes) -> tuple[int, ...]:
    """Sort key equal to Stanford's ``scmp``: bytes read as signed chars, then the terminating 0
    (so ``b"ab"`` < ``b"abc"`` but ``b"ab\\xc3"`` < ``b"ab"``)."""
    return tuple(b - 256 if b >= 128 else b for b in word) + (0,)


def bitwise_hash(word: bytes, tsize: int = 1048576, seed: int = 1159241) -> int:
    """Stanford's ``bitwisehash`` (the bucket of ``word`` in its vocabulary hash table)."""
    h = seed
    for b in word:
        c = b - 256 if b >= 128 else b  # char is signed
        h = (h ^ (((h << 5) + c + (h >> 2)) & 0xFFFFFFFF)) & 0xFFFFFFFF
    return (h & 0x7FFFFFFF) % tsize


def build_vocab(counts: dict[bytes, int], min_count: int = 1, max_vocab: int = 0) -> list[tuple[bytes, int]]:
    """``vocab.txt`` as a list of ``(word, count)``: Stanford's order, ``max_vocab`` (0 = no limit)
    applied before ``min_count``."""
    items = list(counts.items())
    if 0 < max_vocab < len(items):
        # Stanford: a stable sort by count alone over its hash-table order, then keep the head.
        items.sort(key=lambda wc: (bitwise_hash(wc[0]), stanford_word_key(wc[0])))
        items.sort(key=lambda wc: -wc[1])
        items = items[:max_vocab]
    items.sort(key=lambda wc: (-wc[1], stanford_word_key(wc[0])))
    return [(w, c) for w, c in items if c >= min_count]


# ---------------------------------------------------------------------------------------------
# Co-occurrence
# ---------------------------------------------------------------------------------------------
def cooccurrence_dict(
    data: bytes,
    vocab_words: list[bytes],
    window_size: int = 15,
    symmetric: bool = True,
    distance_weighting: bool = True,
) -> dict[tuple[int, int], float]:
    """X as ``{(row, col): value}`` with 0-based ids (rank in ``vocab_words``), walking the corpus
    as Stanford does; each value is the exact sum rounded once (module docstring)."""
    if window_size < 1:
        raise ValueError("window_size: must be >= 1")
    exact = window_size <= 22
    ids = {w: i for i, w in enumerate(vocab_words)}
    X: dict = {}
    for line in read_lines(data):
        kept = [ids[t] for t in line if t in ids]  # OOV tokens take no position
        for pos, right in enumerate(kept):
            for d in range(1, min(window_size, pos) + 1):
                left = kept[pos - d]
                if not distance_weighting:
                    value = 1
                else:
                    value = Fraction(1, d) if exact else 1.0 / d
                X[left, right] = X.get((left, right), 0) + value
                if symmetric:
                    X[right, left] = X.get((right, left), 0) + value
    return {key: float(value) for key, value in X.items()}


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
def glibc_rand(seed: int):
    """glibc's ``srand(seed); rand(); rand(); ...`` (the TYPE_3 additive generator) as an
    infinite iterator, so that ``stanford_init`` reproduces Stanford's initial parameters."""
    seed &= 0xFFFFFFFF
    if seed == 0:
        seed = 1  # glibc treats srand(0) as srand(1)
    word = seed - (1 << 32) if seed >= 1 << 31 else seed  # int32_t word = seed
    r = [word & 0xFFFFFFFF]
    for _ in range(30):
        hi = abs(word) // 127773 * (1 if word >= 0 else -1)  # C division truncates toward zero
        lo = word - hi * 127773
        word = 16807 * lo - 2836 * hi
        if word < 0:
            word += 2147483647
        r.append(word & 0xFFFFFFFF)
    r += r[0:3]  # r[31..33] = r[0..2]
    for k in itertools.count(34):  # r[k] = r[k-31] + r[k-3]; outputs start at k = 344
        r.append((r[-31] + r[-3]) & 0xFFFFFFFF)
        del r[0]  # keep the last 34 values
        if k >= 344:
            yield r[-1] >> 1


def stanford_init(vocab_size: int, vector_size: int, seed: int) -> np.ndarray:
    """Stanford's initial W, shape (2V, D + 1): ``(rand() / RAND_MAX - 0.5) / D`` in memory order."""
    gen = glibc_rand(seed)
    n = 2 * vocab_size * (vector_size + 1)
    flat = np.array([(next(gen) / RAND_MAX - 0.5) / vector_size for _ in range(n)], dtype=np.float64)
    return flat.reshape(2 * vocab_size, vector_size + 1)


def weighting(x, x_max: float = 100.0, alpha: float = 0.75):
    """f(x) = min(1, (x / x_max) ** alpha)."""
    return np.minimum(1.0, (np.asarray(x, dtype=np.float64) / x_max) ** alpha)


def glove_loss(W: np.ndarray, rows, cols, values, x_max: float = 100.0, alpha: float = 0.75) -> float:
    """Sum over records of 0.5 * f(x) * (w_i . c_j + b_i + b~_j - log x)**2 at fixed W."""
    V, D = W.shape[0] // 2, W.shape[1] - 1
    rows, cols, values = np.asarray(rows), np.asarray(cols), np.asarray(values, dtype=np.float64)
    w, c = W[rows], W[V + cols]
    diff = np.einsum("nd,nd->n", w[:, :D], c[:, :D]) + w[:, D] + c[:, D] - np.log(values)
    return float(np.sum(0.5 * weighting(values, x_max, alpha) * diff * diff))


def adagrad_step(
    W: np.ndarray,
    gradsq: np.ndarray,
    i: int,
    j: int,
    x: float,
    eta: float = 0.05,
    x_max: float = 100.0,
    alpha: float = 0.75,
    grad_clip: float = 100.0,
) -> float:
    """One Stanford update for record (i, j, x) with 0-based ids, in place. Returns the record's
    cost 0.5 * f * diff**2 computed before the update (0 when the record is skipped)."""
    V, D = W.shape[0] // 2, W.shape[1] - 1
    w, c = W[i].tolist(), W[V + j].tolist()  # Python floats: overflow gives inf, as in C
    gw, gc = gradsq[i].tolist(), gradsq[V + j].tolist()
    diff = 0.0
    for b in range(D):
        diff += w[b] * c[b]
    diff += w[D] + c[D] - math.log(x)
    fdiff = diff if x > x_max else math.pow(x / x_max, alpha) * diff
    if not (math.isfinite(diff) and math.isfinite(fdiff)):
        return 0.0
    cost = 0.5 * fdiff * diff
    update_w, update_c = [0.0] * D, [0.0] * D
    for b in range(D):
        g_w = min(max(fdiff * c[b], -grad_clip), grad_clip) * eta  # gradient w.r.t. w[b], times eta
        g_c = min(max(fdiff * w[b], -grad_clip), grad_clip) * eta
        update_w[b] = g_w / math.sqrt(gw[b])
        update_c[b] = g_c / math.sqrt(gc[b])
        gw[b] += g_w * g_w
        gc[b] += g_c * g_c
    if math.isfinite(sum(update_w)) and math.isfinite(sum(update_c)):
        for b in range(D):
            w[b] -= update_w[b]
            c[b] -= update_c[b]
    for row, g in ((w, gw), (c, gc)):
        step = fdiff / math.sqrt(g[D])
        row[D] -= step if math.isfinite(step) else 0.0
    gw[D] += fdiff * fdiff
    gc[D] += fdiff * fdiff
    W[i], W[V + j], gradsq[i], gradsq[V + j] = w, c, gw, gc
    return cost


def train_epoch(
    W: np.ndarray,
    gradsq: np.ndarray,
    rows,
    cols,
    values,
    eta: float = 0.05,
    x_max: float = 100.0,
    alpha: float = 0.75,
    grad_clip: float = 100.0,
) -> float:
    """One pass over the records in the given order (one thread); returns the summed cost
    (Stanford prints it divided by the number of records)."""
    total = 0.0
    for i, j, x in zip(rows, cols, values):
        total += adagrad_step(W, gradsq, int(i), int(j), float(x), eta, x_max, alpha, grad_clip)
    return total


def hogwild_epoch(
    W: np.ndarray,
    gradsq: np.ndarray,
    rows,
    cols,
    values,
    concurrency: int,
    eta: float = 0.05,
    x_max: float = 100.0,
    alpha: float = 0.75,
    grad_clip: float = 100.0,
) -> float:
    """A model of the lock-free GPU epoch (cuda/glove/train.cu) with ``concurrency`` records in
    flight: the records go in waves of ``concurrency`` consecutive ones; every record of a wave
    reads the parameters as they were when the wave began, then writes its updated rows back, so
    when two records of a wave share a row only the later one's update survives (a lost
    read-modify-write). ``concurrency=1`` is :func:`train_epoch`. In place; returns the summed cost.
    Vectorised per wave (NumPy), since it exists to study schedules on realistic sizes."""
    if concurrency < 1:
        raise ValueError(f"concurrency: expected >= 1, got {concurrency!r}")
    V, D = W.shape[0] // 2, W.shape[1] - 1
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64) + V
    values = np.asarray(values, dtype=np.float64)
    log_x, f = np.log(values), weighting(values, x_max, alpha)
    total = 0.0
    with np.errstate(all="ignore"):
        for lo in range(0, len(values), concurrency):
            i, j = rows[lo : lo + concurrency], cols[lo : lo + concurrency]
            w, c, gw, gc = W[i], W[j], gradsq[i], gradsq[j]  # copies: the wave's snapshot
            diff = np.einsum("nd,nd->n", w[:, :D], c[:, :D]) + w[:, D] + c[:, D] - log_x[lo : lo + concurrency]
            fdiff = f[lo : lo + concurrency] * diff
            ok = np.isfinite(diff) & np.isfinite(fdiff)
            total += float(np.sum(0.5 * fdiff[ok] * diff[ok]))
            fd = fdiff[:, None]
            g_w = np.clip(fd * c[:, :D], -grad_clip, grad_clip) * eta
            g_c = np.clip(fd * w[:, :D], -grad_clip, grad_clip) * eta
            up_w, up_c = g_w / np.sqrt(gw[:, :D]), g_c / np.sqrt(gc[:, :D])
            apply = (ok & np.isfinite(up_w.sum(axis=1)) & np.isfinite(up_c.sum(axis=1)))[:, None]
            w_new, c_new, gw_new, gc_new = w.copy(), c.copy(), gw.copy(), gc.copy()
            w_new[:, :D] -= np.where(apply, up_w, 0.0)
            c_new[:, :D] -= np.where(apply, up_c, 0.0)
            gw_new[:, :D] += np.where(ok[:, None], g_w * g_w, 0.0)
            gc_new[:, :D] += np.where(ok[:, None], g_c * g_c, 0.0)
            for new, g, gnew in ((w_new, gw, gw_new), (c_new, gc, gc_new)):
                step = fdiff / np.sqrt(g[:, D])
                new[:, D] -= np.where(ok & np.isfinite(step), step, 0.0)
                gnew[:, D] += np.where(ok, fdiff * fdiff, 0.0)
            # Writes in record order (a skipped record writes nothing): a row written twice keeps
            # the later record's values.
            for idx, new, gnew in ((i[ok], w_new[ok], gw_new[ok]), (j[ok], c_new[ok], gc_new[ok])):
                last = len(idx) - 1 - np.unique(idx[::-1], return_index=True)[1]
                W[idx[last]], gradsq[idx[last]] = new[last], gnew[last]
    return total
