"""The Word2Vec model: vocabulary, noise table, subsampling thresholds and the epoch loop."""

from __future__ import annotations

import sys

import numpy as np

from .. import _C
from ..glove._files import corpus_argument, thread_count
from ..glove.vectors import WordVectors
from ..glove.vocabulary import Vocabulary

__all__ = ["Word2Vec", "noise_table", "subsample_thresholds"]

DEFAULT_TABLE_SIZE = 10_000_000  # word2vec.c uses 1e8 (400 MB); 1e7 resolves shares of 1e-7
MAX_SENTENCE = 10000  # gensim's cut of long lines (word2vec.c: 1000)


def noise_table(counts, size: int = DEFAULT_TABLE_SIZE, power: float = 0.75) -> np.ndarray:
    """The negative-sampling table: word i fills the slots [round(size * P_{i-1}), round(size * P_i))
    where P is the cumulative distribution of count^power, so a uniform slot draws word i with
    probability count_i^power / sum (to 1/size). int32 (size,)."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or np.any(counts <= 0):
        raise ValueError("counts: expected a non-empty 1-D array of positive word counts")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size: expected a positive integer, got {size!r}")
    weights = counts**power
    cumulative = np.cumsum(weights) / weights.sum()
    ends = np.floor(cumulative * size + 0.5).astype(np.int64)
    ends[-1] = size
    return np.repeat(np.arange(counts.size, dtype=np.int32), np.diff(ends, prepend=0))


def subsample_thresholds(counts, sample: float) -> np.ndarray | None:
    """word2vec.c's per-word threshold ``ran = (sqrt(c / (sample T)) + 1) * sample T / c`` (T = the
    summed counts): a word is kept when ``ran >= u`` for u uniform in [0, 1) (steps of 1/65536).
    None when ``sample`` is 0 (no subsampling)."""
    if sample == 0:
        return None
    counts = np.asarray(counts, dtype=np.float64)
    threshold = sample * counts.sum()
    return (np.sqrt(counts / threshold) + 1.0) * threshold / counts


def _positive_int(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


class Word2Vec:
    """Skip-gram (``sg=True``) or CBOW (``sg=False``) with negative sampling.

    Parameters follow word2vec.c's flags: ``vector_size`` (-size), ``window`` (-window), ``negative``
    (-negative, >= 1; hierarchical softmax is not implemented), ``sample`` (-sample; 0 = off),
    ``min_count`` (-min-count), ``max_vocab`` (keep the most frequent), ``learning_rate`` (-alpha;
    None = 0.025 for skip-gram, 0.05 for CBOW, word2vec.c's defaults), ``epochs`` (-iter),
    ``threads`` (-threads; None = all cores; 1 = deterministic), ``seed``. ``noise_table_size`` slots
    in the noise table (:func:`noise_table`).

    After :meth:`fit`: ``vocabulary`` (a :class:`seqkernels.glove.Vocabulary`, most frequent first),
    ``syn0`` (V, D) float32 word vectors, ``syn1neg`` (V, D) output vectors, ``wv`` the word vectors
    as :class:`seqkernels.glove.WordVectors`, ``stats_`` per-epoch words and seconds.
    """

    def __init__(
        self,
        vector_size: int = 100,
        sg: bool = True,
        window: int = 5,
        negative: int = 5,
        sample: float = 1e-3,
        min_count: int = 5,
        max_vocab: int | None = None,
        learning_rate: float | None = None,
        epochs: int = 5,
        threads: int | None = None,
        seed: int = 1,
        noise_table_size: int = DEFAULT_TABLE_SIZE,
    ):
        self.vector_size = _positive_int("vector_size", vector_size)
        if not isinstance(sg, (bool, np.bool_, int)) or sg not in (0, 1):
            raise ValueError(f"sg: expected True (skip-gram) or False (CBOW), got {sg!r}")
        self.sg = bool(sg)
        self.window = _positive_int("window", window)
        self.negative = _positive_int("negative", negative)
        if (
            isinstance(sample, bool)
            or not isinstance(sample, (int, float, np.floating))
            or not np.isfinite(sample)
            or sample < 0
        ):
            raise ValueError(f"sample: expected a number >= 0 (0 = no subsampling), got {sample!r}")
        self.sample = float(sample)
        self.min_count = _positive_int("min_count", min_count)
        self.max_vocab = None if max_vocab is None else _positive_int("max_vocab", max_vocab)
        if learning_rate is None:
            learning_rate = 0.025 if self.sg else 0.05
        if (
            isinstance(learning_rate, bool)
            or not isinstance(learning_rate, (int, float, np.floating))
            or not np.isfinite(learning_rate)
            or learning_rate <= 0
        ):
            raise ValueError(f"learning_rate: expected a positive number, got {learning_rate!r}")
        self.learning_rate = float(learning_rate)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs: expected a non-negative integer, got {epochs!r}")
        self.epochs = int(epochs)
        self.threads = thread_count(threads)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
            raise ValueError(f"seed: expected an integer in [0, 2**63), got {seed!r}")
        self.seed = int(seed)
        self.noise_table_size = _positive_int("noise_table_size", noise_table_size)
        self.vocabulary: Vocabulary | None = None
        self.syn0: np.ndarray | None = None
        self.syn1neg: np.ndarray | None = None
        self.stats_: list[dict] = []

    # ---- training ----
    def build_vocab(self, corpus, vocabulary: Vocabulary | None = None) -> Word2Vec:
        """Counts the vocabulary of ``corpus`` (or takes ``vocabulary``, e.g. ``Vocabulary.load``),
        and draws the initial parameters: syn0 uniform in [-0.5/D, 0.5/D) (word2vec.c's range),
        syn1neg zero."""
        if vocabulary is None:
            vocabulary = Vocabulary.from_corpus(
                corpus, min_count=self.min_count, max_vocab=self.max_vocab, threads=self.threads or None
            )
        elif not isinstance(vocabulary, Vocabulary):
            raise TypeError(f"vocabulary: expected a seqkernels.glove.Vocabulary, got {type(vocabulary).__name__}")
        if len(vocabulary) == 0:
            raise ValueError(f"corpus: no word occurs at least min_count={self.min_count} times")
        self.vocabulary = vocabulary
        V, D = len(vocabulary), self.vector_size
        rng = np.random.default_rng(self.seed)
        self.syn0 = ((rng.random((V, D), dtype=np.float32) - np.float32(0.5)) / np.float32(D)).astype(np.float32)
        self.syn1neg = np.zeros((V, D), dtype=np.float32)
        return self

    def encode(self, corpus):
        """The corpus as (ids int32, sentence offsets int64, tokens read) for the vocabulary."""
        self._check_vocab()
        return _C.word2vec_encode(corpus_argument(corpus), self.vocabulary.encoded(), MAX_SENTENCE)

    def fit(self, corpus, vocabulary: Vocabulary | None = None, progress: bool = True, callback=None) -> Word2Vec:
        """Builds the vocabulary (unless given) and trains ``epochs`` passes over ``corpus`` (a path,
        bytes, or an iterable of lines; a line is a sentence). ``callback(epoch, stats)`` runs after
        every epoch (epochs from 1)."""
        source = corpus_argument(corpus)
        self.build_vocab(source, vocabulary)
        ids, offsets, _tokens = self.encode(source)
        return self.train(ids, offsets, progress=progress, callback=callback)

    def train(self, ids, offsets, progress: bool = True, callback=None) -> Word2Vec:
        """Trains on an encoded corpus (:meth:`encode`) from the current parameters."""
        import time

        self._check_vocab()
        ids = np.ascontiguousarray(ids, dtype=np.int32)
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        if len(ids) == 0:
            raise ValueError("corpus: none of its tokens is in the vocabulary")
        counts = self.vocabulary.counts
        keep = subsample_thresholds(counts, self.sample)
        table = noise_table(counts, self.noise_table_size)
        total = self.epochs * len(ids)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.epochs, desc="word2vec", unit="epoch", file=sys.stderr, dynamic_ncols=True)
        self.stats_ = []
        try:
            for epoch in range(self.epochs):
                seed = int(np.random.default_rng([self.seed, epoch]).integers(0, 2**62))
                t0 = time.perf_counter()
                words, trained, lr = _C.word2vec_train_epoch(
                    self.syn0,
                    self.syn1neg,
                    ids,
                    offsets,
                    keep,
                    table,
                    self.window,
                    self.negative,
                    not self.sg,
                    self.learning_rate,
                    epoch * len(ids),
                    total,
                    seed,
                    self.threads,
                )
                seconds = time.perf_counter() - t0
                stats = {
                    "epoch": epoch + 1,
                    "words": words,
                    "trained": trained,
                    "learning_rate": lr,
                    "seconds": seconds,
                    "words_per_second": words / seconds if seconds > 0 else float("inf"),
                }
                self.stats_.append(stats)
                if bar is not None:
                    bar.set_postfix(words_s=f"{stats['words_per_second'] / 1e3:.0f}k", lr=f"{lr:.5f}")
                    bar.update(1)
                if callback is not None:
                    callback(epoch + 1, stats)
        finally:
            if bar is not None:
                bar.close()
        return self

    def _check_vocab(self) -> None:
        if self.vocabulary is None or self.syn0 is None:
            raise RuntimeError("Word2Vec: call fit() (or build_vocab()) first")

    # ---- results ----
    @property
    def wv(self) -> WordVectors:
        """The word vectors (a copy of syn0) with their words."""
        self._check_vocab()
        return WordVectors(self.vocabulary.words, self.syn0.copy())

    def save(self, path, binary: bool = False) -> None:
        """Writes the word vectors in word2vec's format (gensim's ``KeyedVectors.load_word2vec_format``
        reads it): a "V D" line, then one word per line, as text or (``binary=True``) float32 bytes."""
        self.wv.save(path, header=True, binary=binary)
