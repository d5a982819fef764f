"""word2vec's training rules (Mikolov et al.'s ``word2vec.c``), written out for reading (issue 15).

The C++ kernel behind :class:`seqkernels.word2vec.Word2Vec` is tested against this module: with one
thread it draws the same random numbers in the same order, so its parameters after an epoch equal
:func:`train_epoch`'s up to float32 rounding. With several threads the kernel is Hogwild as
word2vec.c (no locks; the pieces' order in time is not defined), except that each thread trains the
rows of the 8,192 most frequent words (fewer for D > 128) in its own copy during a piece of ~32k
tokens and adds what changed to the shared rows at the piece's end. Plain Python and slow on purpose.
Computation happens in the dtype of ``syn0`` (float64 normally; float32 for the tolerance rule of tests/tolerance.py).

Parameters
    ``syn0`` (V, D): input vectors, the word vectors one keeps; ``syn1neg`` (V, D): output vectors of
    negative sampling (zeros at the start).

One update step (:func:`output_step`, :func:`skipgram_step`, :func:`cbow_step`)
    A hidden vector ``h`` predicts the positive word ``w`` (label 1) and each negative ``n`` (label
    0): for each, in order, ``g = (label - sigmoid(h . u)) * lr``, the error of ``h`` gathers
    ``g * u`` (``u`` before it moves), then ``u += g * h``. This is one SGD step on
    ``-log sigmoid(h . u_w) - sum_n log sigmoid(-h . u_n)`` (rows updated one after the other, so a
    negative drawn twice sees its first update). Skip-gram (word2vec.c's form): ``h`` is the input
    vector of a *context* word and the positive is the centre word; ``h += error`` at the end. CBOW:
    ``h`` is the mean of the context words' input vectors and every one of them moves by the whole
    error (not divided by the count, as word2vec.c). Deliberate difference: the exact logistic is
    used, where word2vec.c reads a 1000-entry table over [-6, 6] and saturates beyond.

Random numbers (:func:`next_random`)
    word2vec.c's generator ``r = r * 25214903917 + 11 (mod 2**64)``; a run of the corpus (a thread's
    piece) starts at ``seed + piece``. Per sentence, first one draw per in-vocabulary word when
    subsampling is on: the word is discarded when ``keep[w] < (r & 0xFFFF) / 65536`` (``keep`` is
    word2vec.c's ``ran = (sqrt(c / (sample * T)) + 1) * sample * T / c`` for a word seen ``c`` times
    among ``T`` in-vocabulary tokens); discarded words take no position. Then per position one draw,
    ``b = r mod window``, giving the context positions ``pos - (window - b) .. pos + (window - b)``
    inside the sentence; skip-gram draws ``negative`` noise words for each context position, CBOW
    once per position (when it has a context); noise word ``table[((r >> 16) * len(table)) >> 48]``
    (a uniform slot from the generator's top 48 bits, where word2vec.c takes ``(r >> 16) mod
    len(table)``: the same distribution without a division), skipped when it is the positive word.

Learning rate
    ``lr = lr0 * (1 - done / (words_total + 1))``, floored at ``lr0 * 1e-4``, where ``done`` counts
    in-vocabulary words read (before subsampling) over all epochs. A thread refreshes it before a
    sentence once it has read more than ``REFRESH_WORDS`` words since its last refresh, from the
    words all threads have reported so far (word2vec.c's schedule).

Sentences
    A line of the corpus is a sentence; out-of-vocabulary tokens are dropped before windowing, and a
    line is cut every ``max_sentence`` kept tokens (10000, gensim's limit; word2vec.c cuts at 1000).
    Deliberate difference: word2vec.c also trains on a ``</s>`` token standing for each newline;
    here (as in gensim) a newline only ends the sentence.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MASK64",
    "REFRESH_WORDS",
    "next_random",
    "noise_slot",
    "sigmoid",
    "output_step",
    "skipgram_step",
    "cbow_step",
    "pair_loss",
    "learning_rate",
    "train_epoch",
]

MASK64 = (1 << 64) - 1
LCG_MULTIPLIER, LCG_INCREMENT = 25214903917, 11
REFRESH_WORDS = 10000


def next_random(r: int) -> int:
    return (r * LCG_MULTIPLIER + LCG_INCREMENT) & MASK64


def noise_slot(r: int, size: int) -> int:
    return ((r >> 16) * size) >> 48


def sigmoid(x):
    one = np.ones_like(x)
    return one / (one + np.exp(-x))


def output_step(h, syn1neg, word: int, negatives, lr) -> np.ndarray:
    """The positive word then each negative (None or -1 entries skipped) against hidden vector ``h``;
    updates the rows of ``syn1neg`` in place and returns the error for ``h`` (not yet added)."""
    dt = syn1neg.dtype.type
    lr = dt(lr)
    err = np.zeros_like(h)
    for target, label in [(word, dt(1))] + [(n, dt(0)) for n in negatives if n is not None and n >= 0]:
        u = syn1neg[target]
        g = (label - sigmoid(dt(h @ u))) * lr
        err += g * u
        syn1neg[target] = u + g * h
    return err


def skipgram_step(syn0, syn1neg, context: int, word: int, negatives, lr) -> None:
    """One skip-gram update: the input vector of ``context`` predicts ``word`` (in place)."""
    h = syn0[context].copy()
    syn0[context] = h + output_step(h, syn1neg, word, negatives, lr)


def cbow_step(syn0, syn1neg, contexts, word: int, negatives, lr) -> None:
    """One CBOW update: the mean of the context input vectors predicts ``word`` (in place); each
    context word (every occurrence) moves by the whole error."""
    h = np.zeros(syn0.shape[1], dtype=syn0.dtype)
    for c in contexts:
        h += syn0[c]
    h *= syn0.dtype.type(1) / syn0.dtype.type(len(contexts))
    err = output_step(h, syn1neg, word, negatives, lr)
    for c in contexts:
        syn0[c] += err


def pair_loss(h, syn1neg, word: int, negatives) -> float:
    """The loss one step descends: ``-log sigmoid(h . u_w) - sum_n log sigmoid(-h . u_n)``."""
    loss = -np.log(sigmoid(h @ syn1neg[word]))
    for n in negatives:
        loss -= np.log(sigmoid(-(h @ syn1neg[n])))
    return float(loss)


def learning_rate(lr0: float, done: int, words_total: int) -> float:
    r = lr0 * (1.0 - done / (words_total + 1.0))
    return max(r, lr0 * 1e-4)


def train_epoch(
    syn0,
    syn1neg,
    ids,
    offsets,
    keep,
    table,
    window: int,
    negative: int,
    cbow: bool,
    learning_rate0: float,
    words_before: int,
    words_total: int,
    seed: int,
) -> dict:
    """One epoch over the whole corpus as one piece (the kernel with ``threads=1``), in place.
    ``keep`` is None for no subsampling. Returns {"words", "trained", "learning_rate"}."""
    r = int(seed) & MASK64
    words = refreshed_at = trained = 0
    lr = learning_rate(learning_rate0, words_before, words_total)
    for s in range(len(offsets) - 1):
        if words - refreshed_at > REFRESH_WORDS:
            refreshed_at = words
            lr = learning_rate(learning_rate0, words_before + words, words_total)
        sentence = []
        for w in ids[offsets[s] : offsets[s + 1]]:
            w = int(w)
            words += 1
            if keep is not None:
                r = next_random(r)
                if keep[w] < (r & 0xFFFF) / 65536.0:
                    continue
            sentence.append(w)
        trained += len(sentence)
        for pos, word in enumerate(sentence):
            r = next_random(r)
            reach = window - r % window
            context = [c for c in range(pos - reach, pos + reach + 1) if c != pos and 0 <= c < len(sentence)]
            if cbow:
                if not context:
                    continue
                negatives = []
                for _ in range(negative):
                    r = next_random(r)
                    t = int(table[noise_slot(r, len(table))])
                    negatives.append(-1 if t == word else t)
                cbow_step(syn0, syn1neg, [sentence[c] for c in context], word, negatives, lr)
                continue
            for c in context:
                negatives = []
                for _ in range(negative):
                    r = next_random(r)
                    t = int(table[noise_slot(r, len(table))])
                    negatives.append(-1 if t == word else t)
                skipgram_step(syn0, syn1neg, sentence[c], word, negatives, lr)
    return {"words": words, "trained": trained, "learning_rate": lr}
