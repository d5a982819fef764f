"""Character- and word-level vocabularies with ``<PAD>``, ``<UNK>``, ``<BOS>`` and ``<EOS>``
(docs/ops.md §2)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

__all__ = ["Vocab"]

LEVELS = ("char", "word")


class Vocab:
    """Token <-> id mapping. Ids 0..3 are ``<PAD>``, ``<UNK>``, ``<BOS>``, ``<EOS>``; the
    ``tokens`` given follow in order.

    ``level="char"``: a string is split into characters and ids are joined back with ``""``;
    ``level="word"``: split on whitespace (``str.split()``), joined with ``" "``. Anywhere a text is
    expected, an already tokenised list of str is accepted as well.
    """

    PAD, UNK, BOS, EOS = "<PAD>", "<UNK>", "<BOS>", "<EOS>"
    SPECIALS = (PAD, UNK, BOS, EOS)

    def __init__(self, tokens: Iterable[str], level: str = "char"):
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        self.level = level
        self.tokens: list[str] = list(self.SPECIALS)
        for tok in tokens:
            if not isinstance(tok, str):
                raise TypeError(f"tokens: expected str tokens, got {type(tok).__name__}")
            if tok in self.SPECIALS:
                continue
            self.tokens.append(tok)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            dup = [t for t, c in Counter(self.tokens).items() if c > 1]
            raise ValueError(f"tokens: duplicate entries {dup[:5]}")

    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3

    @classmethod
    def build(cls, texts, level: str = "char", min_count: int = 1, max_size: int | None = None) -> Vocab:
        """Count tokens over ``texts`` (an iterable of strings or token lists), keep those seen at
        least ``min_count`` times, most frequent first (ties in code-point order), at most
        ``max_size`` of them (specials not counted)."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        if isinstance(texts, str):
            raise TypeError("texts: expected a list of strings (one per line or document), got a single str")
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be an int >= 1, got {min_count!r}")
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0):
            raise ValueError(f"max_size must be an int >= 0 or None, got {max_size!r}")
        counts: Counter = Counter()
        probe = cls([], level)
        for text in texts:
            counts.update(probe.tokenize(text))
        kept = sorted(
            (t for t, c in counts.items() if c >= min_count and t not in cls.SPECIALS), key=lambda t: (-counts[t], t)
        )
        return cls(kept[:max_size] if max_size is not None else kept, level)

    def __len__(self):
        return len(self.tokens)

    def __contains__(self, token):
        return token in self.index

    def __eq__(self, other):
        return isinstance(other, Vocab) and other.level == self.level and other.tokens == self.tokens

    def __repr__(self):
        return f"Vocab({len(self)} tokens, level={self.level!r})"

    def tokenize(self, text) -> list[str]:
        if isinstance(text, str):
            return list(text) if self.level == "char" else text.split()
        if isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
            return list(text)
        raise TypeError(f"text: expected a str or a list of str tokens, got {type(text).__name__}")

    def encode(self, text, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Token ids of ``text``; unknown tokens map to ``<UNK>``."""
        ids = [self.index.get(t, self.unk_id) for t in self.tokenize(text)]
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, ids, stop_at_eos: bool = True) -> str:
        """Text of token ids: ``<PAD>``/``<BOS>`` are dropped, decoding stops at ``<EOS>`` (or drops
        it with ``stop_at_eos=False``); ``<UNK>`` is written ``\ufffd`` at the character level and
        ``<UNK>`` at the word level."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"ids: {i} is outside the vocabulary [0, {len(self.tokens)})")
            if i == self.eos_id:
                if stop_at_eos:
                    break
                continue
            if i in (self.pad_id, self.bos_id):
                continue
            out.append("\ufffd" if (i == self.unk_id and self.level == "char") else self.tokens[i])
        return self.join(out)

    def join(self, tokens) -> str:
        return ("" if self.level == "char" else " ").join(tokens)

    def to_dict(self) -> dict:
        return {"level": self.level, "tokens": self.tokens[len(self.SPECIALS) :]}

    @classmethod
    def from_dict(cls, d) -> Vocab:
        return cls(d["tokens"], d["level"])
