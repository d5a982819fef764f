"""Co-occurrence counts: Stanford ``cooccur`` and ``cooccurrence.bin``."""

from __future__ import annotations

import os
import tempfile

import numpy as np

from .. import _C
from ._files import atomic_path, corpus_argument, progress_callback, thread_count
from .vocabulary import Vocabulary

__all__ = ["Cooccurrence", "cooccurrence", "write_cooccurrence", "RECORD"]

# One record of cooccurrence.bin: little-endian int32 word1, int32 word2 (1-based), float64 value.
RECORD = np.dtype([("word1", "<i4"), ("word2", "<i4"), ("value", "<f8")])


class Cooccurrence:
    """A sparse co-occurrence matrix X as 0-based COO arrays (``rows``, ``cols``: int32; ``values``:
    float64 > 0), with the vocabulary size ``vocab_size`` (its shape is (V, V)).

    ``stats`` holds what the counting kernel reports (tokens, records, runs spilled, timings) when
    the matrix was counted here."""

    def __init__(self, rows, cols, values, vocab_size: int | None = None, vocabulary: Vocabulary | None = None):
        self.rows = np.ascontiguousarray(rows, dtype=np.int32)
        self.cols = np.ascontiguousarray(cols, dtype=np.int32)
        self.values = np.ascontiguousarray(values, dtype=np.float64)
        if not (
            self.rows.ndim == self.cols.ndim == self.values.ndim == 1
            and len(self.rows) == len(self.cols) == len(self.values)
        ):
            raise ValueError(
                f"rows, cols, values: expected three 1-D arrays of one length, got shapes "
                f"{self.rows.shape}, {self.cols.shape}, {self.values.shape}"
            )
        if vocabulary is not None:
            vocab_size = len(vocabulary) if vocab_size is None else vocab_size
            if vocab_size != len(vocabulary):
                raise ValueError(f"vocab_size: {vocab_size} disagrees with the vocabulary's {len(vocabulary)} words")
        biggest = int(max(self.rows.max(initial=-1), self.cols.max(initial=-1)))
        if vocab_size is None:
            vocab_size = biggest + 1
        if len(self.rows) and (min(int(self.rows.min()), int(self.cols.min())) < 0 or biggest >= vocab_size):
            bad = biggest if biggest >= vocab_size else -1
            raise ValueError(f"rows, cols: ids must be in [0, {vocab_size}), found {bad}")
        if len(self.values) and not (np.all(np.isfinite(self.values)) and self.values.min() > 0):
            raise ValueError("values: every co-occurrence value must be finite and > 0 (training takes log X)")
        self.vocab_size = int(vocab_size)
        self.vocabulary = vocabulary
        self.stats: dict | None = None

    def __len__(self) -> int:
        return len(self.values)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.vocab_size, self.vocab_size)

    def __repr__(self) -> str:
        return f"Cooccurrence({len(self)} records, vocab_size={self.vocab_size})"

    # ---- cooccurrence.bin ----
    def save(self, path) -> None:
        """Writes Stanford's cooccurrence.bin (1-based ids; all or nothing)."""
        records = np.empty(len(self), dtype=RECORD)
        records["word1"] = self.rows + 1
        records["word2"] = self.cols + 1
        records["value"] = self.values
        with atomic_path(path) as tmp:
            records.tofile(tmp)

    @classmethod
    def load(cls, path, vocab_size: int | None = None, vocabulary: Vocabulary | None = None) -> Cooccurrence:
        """Reads a cooccurrence.bin (sorted as ``cooccur`` writes it, or shuffled). A size that is not a
        multiple of 16 bytes, ids outside 1..V, non-positive or non-finite values, or an empty file are
        ValueErrors naming the file."""
        path = os.fspath(path)
        size = os.path.getsize(path)  # FileNotFoundError names the path
        if size == 0:
            raise ValueError(f"co-occurrence file '{path}' is empty")
        if size % RECORD.itemsize:
            raise ValueError(
                f"co-occurrence file '{path}' is truncated or corrupt: its size ({size} bytes) is not "
                f"a multiple of the {RECORD.itemsize}-byte record"
            )
        records = np.fromfile(path, dtype=RECORD)
        w1, w2, values = records["word1"], records["word2"], records["value"]
        limit = vocab_size if vocab_size is not None else (len(vocabulary) if vocabulary is not None else None)
        low = int(min(w1.min(), w2.min()))
        high = int(max(w1.max(), w2.max()))
        if low < 1 or (limit is not None and high > limit):
            bad = np.flatnonzero((w1 < 1) | (w2 < 1) | ((w1 > limit) | (w2 > limit) if limit else False))[0]
            raise ValueError(
                f"co-occurrence file '{path}' is corrupt: record {bad} has word ids "
                f"({int(w1[bad])}, {int(w2[bad])}) outside 1..{limit if limit else 'V'}"
            )
        finite = np.isfinite(values) & (values > 0)
        if not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            raise ValueError(
                f"co-occurrence file '{path}' is corrupt: record {bad} has value {values[bad]!r} "
                "(values must be finite and > 0)"
            )
        return cls(w1 - 1, w2 - 1, values, vocab_size=limit if limit is not None else high, vocabulary=vocabulary)

    # ---- conversions ----
    def to_scipy(self):
        """The matrix as ``scipy.sparse.coo_matrix`` of shape (V, V) (needs SciPy)."""
        try:
            import scipy.sparse
        except ImportError as e:
            raise ImportError("Cooccurrence.to_scipy needs SciPy: pip install scipy") from e
        return scipy.sparse.coo_matrix((self.values, (self.rows, self.cols)), shape=self.shape)

    def to_dense(self) -> np.ndarray:
        """The matrix as a dense (V, V) float64 array (small vocabularies only)."""
        X = np.zeros(self.shape)
        X[self.rows, self.cols] = self.values
        return X


def _vocabulary_argument(vocabulary) -> tuple[list[bytes], Vocabulary | None]:
    if isinstance(vocabulary, Vocabulary):
        return vocabulary.encoded(), vocabulary
    if isinstance(vocabulary, (str, os.PathLike)):
        v = Vocabulary.load(vocabulary)
        return v.encoded(), v
    if isinstance(vocabulary, (list, tuple)):
        v = Vocabulary(vocabulary)
        return v.encoded(), v
    raise TypeError(
        f"vocabulary: expected a Vocabulary, a path to vocab.txt or a list of words, got {type(vocabulary).__name__}"
    )


def _options(window_size, symmetric, distance_weighting, memory, threads, temp_dir, max_product, overflow_length):
    if isinstance(window_size, bool) or not isinstance(window_size, (int, np.integer)) or window_size < 1:
        raise ValueError(f"window_size: expected a positive integer, got {window_size!r}")
    if isinstance(memory, bool) or not isinstance(memory, (int, float)) or not memory > 0 or memory == float("inf"):
        raise ValueError(f"memory: expected a positive number of GB, got {memory!r}")
    if temp_dir is not None and not os.path.isdir(temp_dir):
        raise FileNotFoundError(f"temp_dir: no such directory: '{temp_dir}'")
    for name, value in (("max_product", max_product), ("overflow_length", overflow_length)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0):
            raise ValueError(f"{name}: expected a non-negative integer or None (derived from memory), got {value!r}")
    return dict(
        window_size=int(window_size),
        symmetric=bool(symmetric),
        distance_weighting=bool(distance_weighting),
        memory_gb=float(memory),
        threads=thread_count(threads),
        temp_dir=os.fspath(temp_dir) if temp_dir is not None else tempfile.gettempdir(),
        max_product=-1 if max_product is None else int(max_product),
        overflow_length=-1 if overflow_length is None else max(1, int(overflow_length)),
    )


def cooccurrence(
    corpus,
    vocabulary,
    window_size: int = 15,
    symmetric: bool = True,
    distance_weighting: bool = True,
    memory: float = 4.0,
    threads: int | None = None,
    temp_dir=None,
    progress=False,
    max_product: int | None = None,
    overflow_length: int | None = None,
    client=None,
    work_dir=None,
    shard_bytes: int = 64 << 20,
) -> Cooccurrence:
    """Counts X over ``corpus`` as Stanford's ``cooccur`` does and returns it in memory.

    ``corpus``: a path, bytes or an iterable of lines. ``vocabulary``: a :class:`Vocabulary`, a path
    to vocab.txt or a list of words (word i has id i). Counting keeps its tables and buffers within
    ``memory`` GB, spilling sorted runs to unnamed temporary files in ``temp_dir`` when needed (the
    returned arrays, 16 bytes per record, are extra). ``threads=None`` uses every core.
    ``max_product`` / ``overflow_length`` override the sizes derived from ``memory`` (Stanford's
    flags of the same names). ``progress=True`` shows a progress bar on stderr.

    Runs on the CPU: GPU co-occurrence counting is not written (``cooccur -device cuda`` in the CLI
    raises an error).

    ``client`` (a ``distributed.Client`` or a scheduler address; needs ``seqkernels[dask]``):
    count on a Dask cluster instead (:mod:`seqkernels.glove.distributed`). ``corpus`` is then one
    or more paths or fsspec URLs that every worker can read, cut into shards of about
    ``shard_bytes`` at line ends; ``work_dir`` is a directory (or URL) every worker can write, for
    the intermediate runs (default: a temporary directory here, enough for a cluster on this
    machine); ``memory`` and ``threads`` apply per task. The result is byte for byte what the
    local count of the files' concatenation gives."""
    if client is not None:
        with tempfile.TemporaryFile() as f:
            stats = write_cooccurrence(
                corpus,
                vocabulary,
                f.fileno(),
                window_size,
                symmetric,
                distance_weighting,
                memory,
                threads,
                temp_dir,
                progress,
                max_product,
                overflow_length,
                client=client,
                work_dir=work_dir,
                shard_bytes=shard_bytes,
            )
            f.seek(0)
            records = np.fromfile(f, dtype=RECORD)
        words, vocab = _vocabulary_argument(vocabulary)
        result = Cooccurrence(
            records["word1"] - 1, records["word2"] - 1, records["value"], vocab_size=len(words), vocabulary=vocab
        )
        result.stats = stats
        return result
    words, vocab = _vocabulary_argument(vocabulary)
    opts = _options(window_size, symmetric, distance_weighting, memory, threads, temp_dir, max_product, overflow_length)
    stats, rows, cols, values = _C.glove_cooccur(
        corpus_argument(corpus), words, **opts, progress=progress_callback(progress, "cooccur")
    )
    result = Cooccurrence(rows, cols, values, vocabulary=vocab)
    result.stats = dict(stats)
    return result


def write_cooccurrence(
    corpus,
    vocabulary,
    path,
    window_size: int = 15,
    symmetric: bool = True,
    distance_weighting: bool = True,
    memory: float = 4.0,
    threads: int | None = None,
    temp_dir=None,
    progress=False,
    max_product: int | None = None,
    overflow_length: int | None = None,
    client=None,
    work_dir=None,
    shard_bytes: int = 64 << 20,
) -> dict:
    """Like :func:`cooccurrence`, but streams the records to Stanford's cooccurrence.bin at ``path``
    (an int is taken as an open file descriptor, e.g. 1 for stdout) without holding them in memory.
    A path is written all or nothing. Returns the kernel's statistics. ``client``, ``work_dir``,
    ``shard_bytes``: count on a Dask cluster (see :func:`cooccurrence`)."""
    words, vocab = _vocabulary_argument(vocabulary)
    opts = _options(window_size, symmetric, distance_weighting, memory, threads, temp_dir, max_product, overflow_length)
    if client is not None:
        from .distributed import cooccurrence_on_dask

        counts = vocab.counts if vocab is not None and vocab.counts is not None else np.ones(len(words))

        def run(fd):
            return cooccurrence_on_dask(
                corpus, words, counts, opts, client, fd, shard_bytes=shard_bytes, work_dir=work_dir
            )

        if isinstance(path, int) and not isinstance(path, bool):
            return run(path)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                return run(f.fileno())
    source = corpus_argument(corpus)
    callback = progress_callback(progress, "cooccur")
    if isinstance(path, int) and not isinstance(path, bool):
        return dict(_C.glove_cooccur(source, words, **opts, output_fd=path, progress=callback)[0])
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            stats = _C.glove_cooccur(source, words, **opts, output_fd=f.fileno(), progress=callback)[0]
    return dict(stats)
