"""Word vectors: Stanford's text format (glove.6B.50d.txt), cosine similarity, analogies."""

from __future__ import annotations

import os
from collections.abc import Sequence

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
    def load(cls, path, dtype=np.float64, max_words: int | None = None, binary: bool = False) -> WordVectors:
        """Reads the text format "word v1 ... vd" per line (Stanford's vectors.txt, glove.6B.*.txt),
        with or without a "count dim" header line (word2vec / ``-write-header 1``). Lines with the
        wrong number of values are a ValueError naming the line. ``binary=True`` reads word2vec's
        binary format instead (what word2vec.c's ``-binary 1`` and gensim write)."""
        path = os.fspath(path)
        if binary:
            return cls._load_binary(path, dtype, max_words)
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
                    raise ValueError(
                        f"vectors file '{path}', line {number}: expected 'word v1 ... vd', got {line[:80]!r}"
                    )
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

    @classmethod
    def _load_binary(cls, path: str, dtype, max_words: int | None) -> WordVectors:
        """word2vec's binary format: a "V D" line, then per word its bytes, a blank and D
        little-endian float32 (word2vec.c ends each with a newline, gensim does not: both read)."""
        with open(path, "rb") as f:
            data = f.read()
        end = data.find(b"\n")
        fields = data[:end].split() if end >= 0 else []
        if len(fields) != 2 or not fields[0].isdigit() or not fields[1].isdigit():
            raise ValueError(f"vectors file '{path}': expected a 'count dim' first line in the binary format")
        count, dim = int(fields[0]), int(fields[1])
        if max_words is not None:
            count = min(count, int(max_words))
        words, rows, pos, width = [], [], end + 1, 4 * dim
        for number in range(1, count + 1):
            while pos < len(data) and data[pos : pos + 1] in (b"\n", b"\r"):
                pos += 1
            blank = data.find(b" ", pos)
            if blank < 0 or blank + 1 + width > len(data):
                raise ValueError(f"vectors file '{path}': truncated at word {number} of {count}")
            words.append(data[pos:blank])
            rows.append(data[blank + 1 : blank + 1 + width])
            pos = blank + 1 + width
        if not words:
            raise ValueError(f"vectors file '{path}' has no vectors")
        values = np.frombuffer(b"".join(rows), dtype="<f4").reshape(len(words), dim)
        return cls(words, values.astype(dtype))

    def save(self, path, header: bool = False, binary: bool = False) -> None:
        """Writes the text format with Stanford's "%lf" numbers (all or nothing); ``binary=True``
        writes word2vec's binary format (float32, with its "V D" line whatever ``header`` says)."""
        encoded = [encode_word(w) for w in self.words]
        for w in encoded:
            if not w or any(c in w for c in b" \t\n\r"):
                raise ValueError(
                    f"words: {decode_word(w)!r} cannot be written: a word in these formats is "
                    "non-empty and has no blanks or line breaks"
                )
        if binary:
            rows = np.ascontiguousarray(self.vectors, dtype="<f4")
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    f.write(b"%d %d\n" % (len(self), self.dim))
                    f.write(b"".join(w + b" " + rows[i].tobytes() + b"\n" for i, w in enumerate(encoded)))
            return
        with atomic_path(path) as tmp:
            _C.glove_write_text_vectors(
                tmp,
                encoded,
                np.ascontiguousarray(self.vectors, dtype=np.float64),
                f"{len(self)} {self.dim}" if header else "",
            )

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
        """ "a is to b as c is to ?": the word d maximising cos(d, b - a + c) over unit vectors,
        a, b and c excluded (3CosAdd, as Stanford's evaluate.py and word2vec do), so
        ``analogy("man", "king", "woman")`` is "queen" when king − man + woman ≈ queen.
        Returns the word for ``topn=1``, else a list of (word, similarity)."""
        _check_topn(topn)
        u = self.unit_vectors()
        ia, ib, ic = self.index(a), self.index(b), self.index(c)
        ranked = self._rank(u[ib] - u[ia] + u[ic], {ia, ib, ic}, topn)
        return ranked[0][0] if topn == 1 and ranked else ranked

    def evaluate_analogies(
        self, path, case_insensitive: bool = True, restrict_vocab: int | None = None, batch_size: int = 256
    ) -> dict:
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
                part = q[start : start + batch_size]
                scores = (u[part[:, 1]] - u[part[:, 0]] + u[part[:, 2]]) @ u.T
                rows = np.arange(len(part))
                for k in range(3):
                    scores[rows, part[:, k]] = -np.inf
                correct += int(np.sum(np.argmax(scores, axis=1) == part[:, 3]))
            kind = "syntactic" if name.startswith("gram") else "semantic"
            totals[kind][0] += correct
            totals[kind][1] += len(q)
            report["sections"][name] = {
                "correct": correct,
                "total": len(q),
                "accuracy": correct / len(q) if len(q) else None,
            }
        correct = totals["semantic"][0] + totals["syntactic"][0]
        total = totals["semantic"][1] + totals["syntactic"][1]
        report.update(
            correct=correct,
            total=total,
            accuracy=correct / total if total else None,
            semantic=totals["semantic"][0] / totals["semantic"][1] if totals["semantic"][1] else None,
            syntactic=totals["syntactic"][0] / totals["syntactic"][1] if totals["syntactic"][1] else None,
        )
        return report

    # ---- pictures ----
    def plot(
        self,
        words: Sequence | None = None,
        method: str = "tsne",
        path=None,
        groups=None,
        perplexity: float | None = None,
        seed: int = 0,
        title: str | None = None,
    ):
        """A 2-D picture of some words' vectors, each point labelled with its word, written as a PNG
        to ``path`` (returns the path) or, without ``path``, returned as a matplotlib Figure.

        ``method``: "tsne" (scikit-learn's t-SNE on cosine distances; ``perplexity`` defaults to
        min(30, (n - 1) / 3)) or "pca" (the two principal axes of the unit vectors). ``groups``
        colours related words: a mapping {group name: [words]} (then ``words`` may be omitted: the
        groups' words are drawn) or one label per word. Needs the ``[plot]`` extra (scikit-learn,
        matplotlib)."""
        try:
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError(
                "WordVectors.plot needs matplotlib (and scikit-learn for t-SNE): pip install 'seqkernels[plot]'"
            ) from None
        if method not in ("tsne", "pca"):
            raise ValueError(f"method: expected 'tsne' or 'pca', got {method!r}")
        if isinstance(groups, dict):
            labels_of = {}
            for name, members in groups.items():
                for w in members:
                    labels_of.setdefault(decode_word(w) if isinstance(w, bytes) else w, str(name))
            if words is None:
                words = list(labels_of)
            labels = [labels_of.get(decode_word(w) if isinstance(w, bytes) else w) for w in words]
        elif groups is not None:
            if words is None:
                raise ValueError("words: needed when groups is a list of labels (one per word)")
            labels = [None if g is None else str(g) for g in groups]
            if len(labels) != len(words):
                raise ValueError(f"groups: expected one label per word ({len(words)}), got {len(labels)}")
        else:
            if words is None:
                raise ValueError("words: give the words to draw (or groups={name: [words]})")
            labels = [None] * len(words)
        words = [decode_word(w) if isinstance(w, bytes) else w for w in words]
        if len(words) < 3:
            raise ValueError(f"words: expected at least 3 words to draw, got {len(words)}")
        points = self.unit_vectors()[[self.index(w) for w in words]]
        if method == "tsne":
            try:
                from sklearn.manifold import TSNE
            except ImportError:
                raise ImportError(
                    "WordVectors.plot(method='tsne') needs scikit-learn: pip install 'seqkernels[plot]' "
                    "(or use method='pca')"
                ) from None
            if perplexity is None:
                perplexity = min(30.0, (len(words) - 1) / 3.0)
            if not 0 < perplexity < len(words):
                raise ValueError(f"perplexity: expected a number in (0, {len(words)}), got {perplexity!r}")
            from threadpoolctl import threadpool_limits

            # One thread: for the few points of a picture, scikit-learn's OpenMP team only adds
            # waits (measured 27 s against 1 s for 31 points on a busy 2-core machine).
            with threadpool_limits(1):
                xy = TSNE(
                    n_components=2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed
                ).fit_transform(points)
        else:
            centred = points - points.mean(axis=0)
            _, _, vt = np.linalg.svd(centred, full_matrices=False)
            xy = centred @ vt[:2].T
        fig, ax = plt.subplots(figsize=(9, 7), dpi=100)
        names = [g for g in dict.fromkeys(labels) if g is not None]
        colours = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
        for k, name in enumerate(names + [None]):
            pick = [i for i, g in enumerate(labels) if g == name]
            if not pick:
                continue
            ax.scatter(
                xy[pick, 0], xy[pick, 1], s=18, color="0.5" if name is None else colours(k % colours.N), label=name
            )
        for (x, y), w in zip(xy, words):
            ax.annotate(w, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=8)
        if names:
            ax.legend(loc="best", fontsize=8)
        ax.set_title(title or f"{len(words)} words, {'t-SNE' if method == 'tsne' else 'PCA'} of {self.dim}-d vectors")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.tight_layout()
        if path is None:
            return fig
        with atomic_path(os.fspath(path)) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        return os.fspath(path)


def _check_topn(topn) -> None:
    if isinstance(topn, bool) or not isinstance(topn, (int, np.integer)) or topn < 1:
        raise ValueError(f"topn: expected a positive integer, got {topn!r}")
