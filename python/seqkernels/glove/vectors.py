"""Word vectors: Stanford's text format (glove.6B.50d.txt), cosine similarity, analogies."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .. import _C
from ._files import atomic_path, decode_word, encode_word

__all__ = ["WordVectors"]


class WordVectors:
    """Named vectors with cosine similarity (``u·v / (‖u‖‖v‖)``, docs/ops.md §5).

    >>> wv = WordVectors(["a", "b"], [[1.0, 0.0], [0.6, 0.8]])
    >>> round(wv.similarity("a", "b"), 3)
    0.6
    """

    def __init__(self, words: Sequence, vectors):
        self.words = [decode_word(w) if isinstance(w, bytes) else w for w in words]
        for w in self.words:
            if not isinstance(w, str):
                raise TypeError(f"words: expected str or bytes, got {type(w).__name__}")
        self.vectors = np.asarray(vectors)
        if self.vectors.dtype.kind != "f":
            self.vectors = self.vectors.astype(np.float64)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.words):
            raise ValueError(f"vectors: expected shape ({len(self.words)}, dim), got {self.vectors.shape}")
        self._index = {}
        for i, w in enumerate(self.words):
            if w in self._index:
                raise ValueError(f"words: '{w}' appears more than once")
            self._index[w] = i
        self._unit = None  # rows scaled to unit length, computed on first use

    # ---- files ----
    @classmethod
    def load(cls, path, dtype=np.float64, max_words: int | None = None) -> "WordVectors":
        """Reads the text format "word v1 ... vd" per line (Stanford's vectors.txt, glove.6B.*.txt),
        with or without a "count dim" header line (word2vec / ``-write-header 1``). Lines with the
        wrong number of values are a ValueError naming the line."""
        path = os.fspath(path)
        words, rows = [], []
        dim = None
        with open(path, "rb") as f:
            for number, line in enumerate(f, 1):
                fields = line.rstrip(b"\r\n").split(b" ")
                if fields and fields[-1] == b"":
                    fields.pop()  # a trailing blank
                if number == 1 and len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
                    continue  # header
                if len(fields) < 2:
                    raise ValueError(f"vectors file '{path}', line {number}: expected 'word v1 ... vd', "
                                     f"got {line[:80]!r}")
                if dim is None:
                    dim = len(fields) - 1
                elif len(fields) - 1 != dim:
                    raise ValueError(f"vectors file '{path}', line {number}: {len(fields) - 1} values, expected {dim}")
                words.append(fields[0])
                rows.append(b" ".join(fields[1:]))
                if max_words is not None and len(words) >= max_words:
                    break
        if not words:
            raise ValueError(f"vectors file '{path}' has no vectors")
        try:
            values = np.array(b" ".join(rows).split(), dtype=dtype)
        except ValueError as e:
            raise ValueError(f"vectors file '{path}': a value is not a number ({e})") from None
        return cls(words, values.reshape(len(words), dim))

    def save(self, path, header: bool = False) -> None:
        """Writes the text format with Stanford's "%lf" numbers (all or nothing)."""
        with atomic_path(path) as tmp:
            _C.glove_write_text_vectors(tmp, [encode_word(w) for w in self.words],
                                        np.ascontiguousarray(self.vectors, dtype=np.float64),
                                        f"{len(self)} {self.dim}" if header else "")

    # ---- lookups ----
    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word) -> bool:
        return word in self._index

    def __getitem__(self, word) -> np.ndarray:
        return self.vectors[self.index(word)]

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def index(self, word) -> int:
        if isinstance(word, bytes):
            word = decode_word(word)
        try:
            return self._index[word]
        except KeyError:
            raise KeyError(f"'{word}' is not in the vocabulary of these vectors") from None

    def __repr__(self) -> str:
        return f"WordVectors({len(self)} words, dim {self.dim})"

    # ---- similarity ----
    def unit_vectors(self) -> np.ndarray:
        """The vectors scaled to unit length (float64; a zero vector stays zero)."""
        if self._unit is None:
            v = self.vectors.astype(np.float64)
            norms = np.linalg.norm(v, axis=1, keepdims=True)
            self._unit = v / np.where(norms > 0, norms, 1.0)
        return self._unit

    def similarity(self, a, b) -> float:
        """Cosine similarity of two words."""
        u = self.unit_vectors()
        return float(u[self.index(a)] @ u[self.index(b)])

    def _rank(self, query: np.ndarray, exclude: set[int], topn: int) -> list[tuple[str, float]]:
        norm = np.linalg.norm(query)
        scores = self.unit_vectors() @ (query / norm if norm > 0 else query)
        if exclude:
            scores[list(exclude)] = -np.inf
        topn = min(topn, len(self) - len(exclude))
        if topn <= 0:
            return []
        best = np.argpartition(-scores, topn - 1)[:topn]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(self.words[i], float(scores[i])) for i in best]

    def most_similar(self, word_or_vector, topn: int = 10, exclude: Sequence = ()) -> list[tuple[str, float]]:
        """The ``topn`` words with the highest cosine similarity to a word (itself excluded) or to a
        vector, as (word, similarity), best first."""
        _check_topn(topn)
        skip = {self.index(w) for w in exclude}
        if isinstance(word_or_vector, (str, bytes)):
            i = self.index(word_or_vector)
            return self._rank(self.unit_vectors()[i], skip | {i}, topn)
        query = np.asarray(word_or_vector, dtype=np.float64)
        if query.shape != (self.dim,):
            raise ValueError(f"word_or_vector: expected a word or a vector of shape ({self.dim},), got {query.shape}")
        return self._rank(query, skip, topn)

    def analogy(self, a, b, c, topn: int = 1):
        """"a is to b as c is to ?": the word d maximising cos(d, b - a + c) over unit vectors,
        a, b and c excluded (3CosAdd, as Stanford's evaluate.py and word2vec do), so
        ``analogy("man", "king", "woman")`` is "queen" when king − man + woman ≈ queen.
        Returns the word for ``topn=1``, else a list of (word, similarity)."""
        _check_topn(topn)
        u = self.unit_vectors()
        ia, ib, ic = self.index(a), self.index(b), self.index(c)
        ranked = self._rank(u[ib] - u[ia] + u[ic], {ia, ib, ic}, topn)
        return ranked[0][0] if topn == 1 and ranked else ranked

    def evaluate_analogies(self, path, case_insensitive: bool = True, restrict_vocab: int | None = None,
                           batch_size: int = 256) -> dict:
        """Accuracy on an analogy file in the word2vec questions-words format (": section" lines,
        then "a b c d" questions meaning a:b = c:d). A question counts as answered only if all four
        words are among the first ``restrict_vocab`` words (all by default); the prediction is
        :meth:`analogy`'s. Sections whose name starts with "gram" are syntactic, the rest semantic.

        Returns {"accuracy", "correct", "total", "skipped", "semantic", "syntactic", "sections":
        {name: {"correct", "total", "accuracy"}}} (accuracies are None when nothing was answered)."""
        path = os.fspath(path)
        limit = len(self) if restrict_vocab is None else min(int(restrict_vocab), len(self))
        lookup = {}
        for i, w in enumerate(self.words[:limit]):
            key = w.lower() if case_insensitive else w
            lookup.setdefault(key, i)  # the most frequent spelling wins
        sections: dict[str, list[tuple[int, int, int, int]]] = {}
        section, skipped = "(none)", 0
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                if line.startswith(":"):
                    section = line[1:].strip()
                    sections.setdefault(section, [])
                    continue
                fields = line.split()
                if len(fields) != 4:
                    raise ValueError(f"analogy file '{path}', line {number}: expected 4 words, got {line[:80]!r}")
                ids = [lookup.get(w.lower() if case_insensitive else w) for w in fields]
                if None in ids:
                    skipped += 1
                    continue
                sections.setdefault(section, []).append(tuple(ids))
        u = self.unit_vectors()[:limit]
        report = {"sections": {}, "skipped": skipped}
        totals = {"semantic": [0, 0], "syntactic": [0, 0]}
        for name, questions in sections.items():
            correct = 0
            q = np.array(questions, dtype=np.int64).reshape(-1, 4)
            for start in range(0, len(q), batch_size):
                part = q[start:start + batch_size]
                scores = (u[part[:, 1]] - u[part[:, 0]] + u[part[:, 2]]) @ u.T
                rows = np.arange(len(part))
                for k in range(3):
                    scores[rows, part[:, k]] = -np.inf
                correct += int(np.sum(np.argmax(scores, axis=1) == part[:, 3]))
            kind = "syntactic" if name.startswith("gram") else "semantic"
            totals[kind][0] += correct
            totals[kind][1] += len(q)
            report["sections"][name] = {"correct": correct, "total": len(q),
                                        "accuracy": correct / len(q) if len(q) else None}
        correct = totals["semantic"][0] + totals["syntactic"][0]
        total = totals["semantic"][1] + totals["syntactic"][1]
        report.update(correct=correct, total=total, accuracy=correct / total if total else None,
                      semantic=totals["semantic"][0] / totals["semantic"][1] if totals["semantic"][1] else None,
                      syntactic=totals["syntactic"][0] / totals["syntactic"][1] if totals["syntactic"][1] else None)
        return report


def _check_topn(topn) -> None:
    if isinstance(topn, bool) or not isinstance(topn, (int, np.integer)) or topn < 1:
        raise ValueError(f"topn: expected a positive integer, got {topn!r}")
