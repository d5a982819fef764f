"""Vocabulary: Stanford ``vocab_count`` and ``vocab.txt``."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np

from .. import _C
from ._files import atomic_path, corpus_argument, decode_word, encode_word, progress_callback, thread_count

__all__ = ["Vocabulary"]


class Vocabulary:
    """Words with their counts, in Stanford's order (count descending, ties by signed-byte order).

    A word's id is its index here (0-based) and its line number in ``vocab.txt`` (1-based). Words are
    str (UTF-8, with ``surrogateescape`` for bytes that are not UTF-8); :meth:`encoded` gives the
    bytes.

    >>> vocab = Vocabulary.from_corpus(b"the cat sat on the mat")
    >>> vocab.words[:2], int(vocab.counts[0])
    (['the', 'cat'], 2)
    """

    def __init__(self, words: Sequence, counts: Sequence[int] | None = None):
        self._bytes = [encode_word(w) for w in words]
        self.words = [decode_word(w) for w in self._bytes]
        if counts is None:
            counts = np.ones(len(self.words), dtype=np.int64)
        self.counts = np.asarray(counts, dtype=np.int64)
        if self.counts.shape != (len(self.words),):
            raise ValueError(f"counts: expected {len(self.words)} counts (one per word), got shape {self.counts.shape}")
        self._index = {w: i for i, w in enumerate(self.words)}
        if len(self._index) != len(self.words):
            seen = set()
            dup = next(w for w in self.words if w in seen or seen.add(w))
            raise ValueError(f"words: '{dup}' appears more than once")
        self.tokens: int | None = None  # tokens in the corpus it was counted from
        self.distinct: int | None = None  # distinct tokens before min_count / max_vocab

    # ---- building ----
    @classmethod
    def from_corpus(
        cls, corpus, min_count: int = 1, max_vocab: int | None = None, threads: int | None = None, progress=False
    ) -> Vocabulary:
        """Counts the tokens of ``corpus`` (a path, bytes, or an iterable of lines) as Stanford's
        ``vocab_count -min-count min_count -max-vocab max_vocab`` does; multithreaded.

        Raises ValueError if the corpus contains ``<unk>`` (Stanford reserves it) or no tokens."""
        if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
            raise ValueError(f"min_count: expected a positive integer, got {min_count!r}")
        if max_vocab is not None and (
            isinstance(max_vocab, bool) or not isinstance(max_vocab, (int, np.integer)) or max_vocab < 1
        ):
            raise ValueError(f"max_vocab: expected a positive integer or None (no limit), got {max_vocab!r}")
        source = corpus_argument(corpus)
        words, counts, tokens, distinct = _C.glove_vocab_count(
            source,
            int(min_count),
            int(max_vocab or 0),
            thread_count(threads),
            progress=progress_callback(progress, "vocab_count"),
        )
        if tokens == 0:
            raise ValueError("corpus: contains no tokens (only blanks and newlines)")
        vocab = cls(words, counts)
        vocab.tokens, vocab.distinct = int(tokens), int(distinct)
        return vocab

    # ---- vocab.txt ----
    @classmethod
    def load(cls, path) -> Vocabulary:
        """Reads Stanford's ``vocab.txt`` ("word count" per line). Any line that does not parse, a
        repeated word, ``<unk>`` or an empty file is a ValueError naming the file and line."""
        path = os.fspath(path)
        with open(path, "rb") as f:
            data = f.read()
        if not data.strip():
            raise ValueError(f"vocab file '{path}' is empty")
        words, counts, seen = [], [], {}
        lines = data.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        for number, line in enumerate(lines, 1):
            fields = line.rstrip(b"\r").split()
            if len(fields) != 2 or not fields[1].isdigit():
                raise ValueError(f"vocab file '{path}', line {number}: expected 'word count', got {line[:80]!r}")
            word = fields[0]
            if word == b"<unk>":
                raise ValueError(f"vocab file '{path}', line {number}: <unk> is reserved and cannot be a word")
            if word in seen:
                raise ValueError(f"vocab file '{path}', line {number}: '{decode_word(word)}' repeats line {seen[word]}")
            seen[word] = number
            words.append(word)
            counts.append(int(fields[1]))
        return cls(words, counts)

    def save(self, path) -> None:
        """Writes ``vocab.txt`` (all or nothing: a temporary file renamed at the end)."""
        text = b"".join(w + b" %d\n" % c for w, c in zip(self._bytes, self.counts.tolist()))
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(text)

    # ---- lookups ----
    def encoded(self) -> list[bytes]:
        """The words as bytes, as they appear in the corpus and in vocab.txt."""
        return list(self._bytes)

    def index(self, word) -> int:
        """0-based id of ``word`` (str or bytes); KeyError if absent."""
        key = decode_word(word) if isinstance(word, bytes) else word
        try:
            return self._index[key]
        except KeyError:
            raise KeyError(f"'{key}' is not in the vocabulary") from None

    def __len__(self) -> int:
        return len(self.words)

    def __iter__(self) -> Iterator[str]:
        return iter(self.words)

    def __contains__(self, word) -> bool:
        return (decode_word(word) if isinstance(word, bytes) else word) in self._index

    def __getitem__(self, i: int) -> str:
        return self.words[i]

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words and np.array_equal(self.counts, other.counts)

    def __repr__(self) -> str:
        head = ", ".join(self.words[:5]) + (", ..." if len(self) > 5 else "")
        return f"Vocabulary({len(self)} words: {head})"
