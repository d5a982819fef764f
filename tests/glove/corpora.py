"""Small generated corpora for the GloVe tests: a registry of generators, each covering the input
quirks Stanford's tokenizer handles (OOV tokens, blank lines, repeated words, lines shorter than
the window, bytes >= 0x80, \\r, tabs, runs of blanks, a missing final newline, over-long tokens)."""

from __future__ import annotations

import random

WORDS = [
    b"the",
    b"a",
    b"of",
    b"cat",
    b"dog",
    "\u00e9t\u00e9".encode(),
    "na\u00efve".encode(),
    b"x\xff",
    b"\xe2\x82\xac",
    "\u65e5\u672c".encode(),
    b"A",
    b"ab",
    b"abc",
    b"ab\xc3\xa9",
]


def _line(rng: random.Random, words, length: int) -> bytes:
    out = []
    for _ in range(length):
        out.append(rng.choice(words))
        out.append(rng.choice([b" ", b" ", b" ", b"\t", b"  ", b" \r", b"\r "]))
    if out and rng.random() < 0.3:
        out.pop()  # no blank after the last token
    return (b"\t " if rng.random() < 0.1 else b"") + b"".join(out)


def zipf_lines(seed: int, lines: int = 120, max_len: int = 25) -> bytes:
    """Mostly Zipf-like word choice, some OOV tokens, blank lines and very short lines."""
    rng = random.Random(seed)
    weights = [1.0 / (k + 1) for k in range(len(WORDS))]
    vocab = WORDS + [b"oov%d" % k for k in range(6)]
    weights += [0.05] * 6
    out = []
    for _ in range(lines):
        r = rng.random()
        n = 0 if r < 0.1 else 1 if r < 0.2 else rng.randint(2, max_len)
        toks = rng.choices(vocab, weights, k=n)
        out.append(_line(rng, toks, n) if n else rng.choice([b"", b"  ", b"\r", b"\t"]))
    return b"\n".join(out) + (b"\n" if rng.random() < 0.5 else b"")


def repeated(seed: int) -> bytes:
    """Long runs of one word (diagonal cells, 2/d in symmetric mode) and alternations."""
    rng = random.Random(seed)
    return (
        b"\n".join(
            [
                b" ".join([b"the"] * rng.randint(1, 40)),
                b"a b a b a b a b",
                b"cat cat dog cat",
                b"the\r\n",
                b"\xe2\x82\xac " * 7,
            ]
        )
        + b"\n"
    )


def one_long_line(seed: int) -> bytes:
    """A single line (like text8): windows never reset."""
    rng = random.Random(seed)
    return b" ".join(rng.choice(WORDS[:8] + [b"zz"]) for _ in range(1500))


def long_tokens(seed: int) -> bytes:
    """Tokens over Stanford's 999-byte cap, with UTF-8 sequences cut at the cap."""
    rng = random.Random(seed)
    toks = [b"a" * 999, b"a" * 1200, b"b" * 998 + "\u00e9".encode(), b"b" * 997 + b"\xe2\x82\xac", b"c" * 3000]
    return b"\n".join(b" ".join(rng.choice(toks + WORDS[:4]) for _ in range(rng.randint(1, 8))) for _ in range(30))


CORPORA = {
    "zipf": lambda: zipf_lines(1),
    "zipf-short-lines": lambda: zipf_lines(2, lines=300, max_len=4),
    "repeated": lambda: repeated(3),
    "one-long-line": lambda: one_long_line(4),
    "long-tokens": lambda: long_tokens(5),
    "empty": lambda: b"",
    "blank-only": lambda: b"\n\n \t\r\n",
}
