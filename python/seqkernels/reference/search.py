"""Beam search in float64 NumPy: the executable form of docs/ops.md §3.1–§3.2.

Two pieces, both written for reading rather than speed:

* :func:`beam_step` - one fused expansion step for ``N`` source items x ``B`` beams. This is the
  contract a C++ / CUDA kernel must reproduce exactly (same candidates, same order, same ties).
* :func:`beam_search` - a plain driver around :func:`beam_step`: bookkeeping of live and finished
  hypotheses, length normalisation and the stopping rules. ``seqkernels.search.beam_search`` is
  the production driver (NumPy or CuPy); this one is its independent, NumPy-only twin.

Notation: ``N`` source items, ``B`` beams per item, ``V`` vocabulary size. Row ``n*B + b`` of a
``(N*B, ...)`` array belongs to beam ``b`` of item ``n``. A candidate is one (beam ``b``, token
``v``) extension of an item; its *flat index* is ``b*V + v``.

Scores
------
A hypothesis' raw score is ``s = sum_t log P(y_t | x, y_<t)``. Its length ``T_y`` counts the
generated tokens *including* ``<EOS>`` and *excluding* ``<BOS>``. Finished hypotheses are ranked by
the normalised score ``s / lp(T_y)`` with

* ``penalty="average"`` (the default):   ``lp(T) = T**alpha``
* ``penalty="gnmt"`` (Wu et al. 2016):    ``lp(T) = ((5 + T) / 6)**alpha``

``alpha = length_penalty`` (0.7 by default); ``alpha = 0`` gives ``lp = 1``, the raw sum.

Decoding controls
-----------------
Every control acts on one row (one beam) and on that row's *history*: the tokens it has
generated so far, forced prefix included, ``<BOS>`` and any prompt excluded. They are applied in
this order, in the dtype of the computation:

1. ``repetition_penalty = p`` (CTRL, Keskar et al. 2019): every distinct token of the history has
   its score ``x`` replaced by ``x * p`` if ``x < 0`` else ``x / p`` - on the scores the step is
   given: raw logits (then normalised, as CTranslate2 does and as Hugging Face's greedy search
   and sampling do) or log-probs (not renormalised, as Hugging Face's beam search does, which
   applies its processors after ``log_softmax``). ``p = 1`` is off.
2. Normalisation (``log_softmax``) unless the scores are already log-probs.
3. Masks, *after* normalisation (the other tokens are not renormalised, so a candidate's
   log-prob stays the model's and equals :func:`seqkernels.search.score` of its tokens): a
   forbidden ``<EOS>`` (``min_len``), the per-row ``banned`` tokens (suppressed tokens and bad
   words, see :func:`bad_word_bans`) and, with ``no_repeat_ngram_size = n``, every token that would
   complete an ``n``-gram already in the history (:func:`ngram_bans`).
4. A forced token (a target prefix) replaces all of that: the row's only finite candidate is the
   forced token, with its log-prob from step 2 (masks do not apply to it).

Hugging Face counts ``<BOS>`` and the prompt (its ``input_ids``) in the history of its repetition
penalty and n-gram blocking and in ``min_length``; here they are not (a generated token is judged
against generated tokens only, so a prompt does not change what may follow it). Its
``min_length`` is ``min_len + len(input_ids) - 1``, i.e. ``min_len`` for a bare ``<BOS>``, and the
other settings agree whenever the prompt's tokens are not generated (e.g. ``<BOS>`` suppressed).
With those settings, tiny random GPT-2 models give the same tokens under ``generate`` (greedy with
``repetition_penalty`` on raw logits, beam search with ``no_repeat_ngram_size``, ``min_length``,
``length_penalty = 0``, ``early_stopping=True``) as under :mod:`seqkernels.search`.

Diverse beam search
-------------------
``num_beam_groups = G`` (dividing ``B``) and ``diversity_penalty = lambda`` (Vijayakumar et al.
2018, with Hugging Face's ``num_beam_groups`` / ``diversity_penalty`` semantics): the ``B`` beams
of an item form ``G`` groups of ``B/G`` consecutive rows (group ``g`` holds beams
``g*B/G .. (g+1)*B/G - 1``), each an independent beam search of ``B/G`` beams - its own step 0
from its first beam, its own finished hypotheses and stopping rule (``K = max(1, ceil(patience *
B/G))``) - except that at every step the groups choose in order and group ``g``'s log-probs, before
any other control, lose ``lambda * c_v`` for every token ``v`` the item's earlier groups took at
this step (``c_v`` times; their new live beams' tokens, Hamming diversity,
:func:`hamming_diversity`). The penalty is part of the scores the search ranks and of the
hypotheses' ``log_prob`` and ``score`` (as in Hugging Face; a repetition penalty does the same), so
:func:`seqkernels.search.score` gives the model's own log-prob. An item ends when all its groups
have; it returns the best ``n_best`` of the union of each group's best ``B/G`` hypotheses.
Differences: rows whose token is forced (``prefix``) are not penalised (every group must take the
prefix); a group that has ended takes no tokens (Hugging Face feeds it padding, which counts in
the later groups' penalty, and so penalises ``<EOS>`` when padding is ``<EOS>``).

Coverage penalty
----------------
``coverage_penalty = beta`` (GNMT, Wu et al. 2016, eq. 14): the step returns the attention
``(N*B, S)`` over the source positions that produced each row's log-probs, and every hypothesis
accumulates the attention of its steps (``<EOS>``'s included) per source position. A finished
hypothesis ranks by ``log_prob / lp(T_y) + beta * sum_i log(min(c_i, 1))`` over the item's
``source_lengths[n]`` first positions (all ``S`` when not given): :func:`coverage_penalty`. The
candidates of a step are ranked by raw score as before; the penalty only reorders finished
hypotheses (the GNMT paper's rescoring; OpenNMT-py's ``stepwise_penalty`` is not offered).
Since the penalty is ``<= 0``, :func:`best_possible_score` stays an upper bound for ``"exact"``.
Neither Hugging Face nor CTranslate2 has it.

Sampling inside beam search
---------------------------
``sampling_topk = k`` with ``sampling_temperature = tau`` (CTranslate2's names, kept with
``B > 1``): each step, per item (per group), the pool is the top ``max(k, 2B)`` candidates of
:func:`beam_step` (ranked by running score after every control, ties by flat index). With
``k <= 2B`` that is plain beam search (``k = 1``, the default, is off). Otherwise ``2B`` distinct
candidates are drawn from the top ``k`` with probabilities ``softmax(score / tau)`` without
replacement (:func:`draw_candidates`, one uniform number per draw: ``2B`` per item per step from
:func:`uniform_draws`, so per-item seeds make an item's search independent of the batch), and the
drawn ones, in rank order, go through the usual rules (``<EOS>`` among the first ``B`` finishes,
the first ``B`` others stay alive). The names and ``k``'s meaning (``1`` = off) are
CTranslate2's; its draw (its own generator, order and whether it draws with replacement) was not
compared with this one, and no token-level agreement is claimed: the semantics above are ours.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "BeamStep",
    "Hypothesis",
    "PENALTIES",
    "bad_word_bans",
    "beam_search",
    "coverage_penalty",
    "draw_candidates",
    "hamming_diversity",
    "uniform_draws",
    "beam_step",
    "best_possible_score",
    "control_scores",
    "ngram_bans",
    "ngram_hash_column",
    "ngram_hashes",
    "gather_rows",
    "length_penalty_factor",
    "log_softmax",
    "normalised_score",
    "penalise",
    "top_p_mask",
]

#: Accepted values of ``penalty``.
PENALTIES = ("average", "gnmt")


# ---------------------------------------------------------------------------------------------
# Length normalisation
# ---------------------------------------------------------------------------------------------


def length_penalty_factor(length: int, alpha: float, penalty: str = "average") -> float:
    """``lp(T_y)``: ``T_y**alpha`` ("average") or ``((5 + T_y)/6)**alpha`` ("gnmt").

    Positive for every ``T_y >= 1``; monotone in ``T_y`` (increasing for ``alpha > 0``,
    decreasing for ``alpha < 0``, constant 1 for ``alpha = 0``).
    """
    if penalty == "average":
        return float(length) ** alpha
    if penalty == "gnmt":
        return ((5.0 + length) / 6.0) ** alpha
    raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}")


def normalised_score(log_prob: float, length: int, alpha: float, penalty: str = "average") -> float:
    """The ranking score ``log_prob / lp(length)`` of a hypothesis (``log_prob`` = raw sum)."""
    return float(log_prob) / length_penalty_factor(length, alpha, penalty)


def best_possible_score(
    log_prob: float,
    length: int,
    *,
    max_len: int,
    min_len: int = 0,
    alpha: float,
    penalty: str = "average",
) -> float:
    """Upper bound on the normalised score of any finished descendant of a live hypothesis.

    The live hypothesis has raw score ``s = log_prob`` and ``length`` generated tokens (no
    ``<EOS>`` yet), ``length < max_len``. Every descendant adds at least one token, so it finishes
    with a length ``L`` in ``[L_lo, L_hi]``, ``L_lo = max(length + 1, min_len)`` (``<EOS>`` is
    forbidden before ``min_len``; ``min_len <= max_len``), ``L_hi = max_len`` (at ``max_len``
    every live hypothesis is finished as it stands). Its raw score ``s'`` satisfies ``s' <= s``
    because every log-prob is ``<= 0``. Hence, as ``lp(L) > 0``::

        s' / lp(L)  <=  s / lp(L)  <=  max( s / lp(L_lo), s / lp(L_hi) )

    The last step holds because ``lp`` is monotone in ``L`` for both penalty forms (see
    :func:`length_penalty_factor`), so ``s / lp(L)`` is monotone in ``L`` and its maximum over the
    interval sits at one end. With ``s <= 0`` and ``alpha > 0`` that end is ``L_hi = max_len``
    (a larger divisor brings a non-positive number closer to 0); with ``alpha = 0`` both ends give
    ``s`` itself (the raw sum can only fall); with ``alpha < 0`` it is ``L_lo``. Taking the max of
    both ends covers every case without a branch on the sign of ``alpha``.

    The bound relies on log-probs being ``<= 0``, which holds for any normalised distribution.
    """
    lo = max(length + 1, min_len)
    hi = max_len
    lo = min(lo, hi)
    return max(
        normalised_score(log_prob, lo, alpha, penalty),
        normalised_score(log_prob, hi, alpha, penalty),
    )


# ---------------------------------------------------------------------------------------------
# Decoding controls (module docstring, "Decoding controls")
# ---------------------------------------------------------------------------------------------


def penalise(x, penalty: float):
    """CTRL's repetition penalty of scores ``x``: ``x * penalty`` where ``x < 0``, else
    ``x / penalty`` (``-inf`` stays ``-inf``), in the dtype of ``x``. ``penalty > 1`` discourages a
    token whatever the sign of its score; ``penalty < 1`` encourages it."""
    x = np.asarray(x)
    return np.where(x < 0, x * penalty, x / penalty).astype(x.dtype)


def ngram_bans(history, n: int) -> list[int]:
    """Tokens ``v`` such that ``history + [v]`` would repeat an ``n``-gram of ``history``, found by
    brute force: every ``n``-gram ``history[i:i+n]`` whose first ``n - 1`` tokens equal the last
    ``n - 1`` tokens of ``history`` bans its last token. ``n = 1`` bans every token of the
    history; ``n = 0`` bans nothing. Sorted, without repeats."""
    h = [int(v) for v in history]
    if n <= 0:
        return []
    if n == 1:
        return sorted(set(h))
    L = len(h)
    if L < n - 1:
        return []
    tail = h[L - n + 1 :]
    return sorted({h[i + n - 1] for i in range(L - n + 1) if h[i : i + n - 1] == tail})


def bad_word_bans(history, bad_words) -> list[int]:
    """Tokens banned by a list of bad words (token sequences): a one-token word always bans its
    token; a longer word bans its last token when the history ends with the word's other tokens.
    Sorted, without repeats."""
    h = [int(v) for v in history]
    out = set()
    for w in bad_words:
        w = [int(v) for v in w]
        k = len(w) - 1
        if k == 0 or (len(h) >= k and h[len(h) - k :] == w[:-1]):
            out.add(w[-1])
    return sorted(out)


#: Multiplier and offset of the 64-bit FNV-1a hash behind :func:`ngram_hashes`.
_FNV_PRIME, _FNV_OFFSET = np.uint64(1099511628211), np.uint64(14695981039346656037)


def ngram_hashes(history, n: int) -> np.ndarray:
    """``(R, L)`` uint64: entry ``j`` is a 64-bit FNV-1a hash of the ``n - 1`` tokens
    ``history[:, j-n+2 : j+1]`` (the ``(n-1)``-gram ending at ``j``); 0 where ``j < n - 2`` and
    for ``n < 2``. The fused step compares these to the hash of a row's last ``n - 1`` tokens and
    confirms a match on the tokens, so a collision costs a comparison, never a wrong ban. A
    driver keeps them per hypothesis, appends one column per step and reorders them with the
    beams (:func:`ngram_hash_column`)."""
    history = np.asarray(history, dtype=np.int64)
    R, L = history.shape
    out = np.zeros((R, L), dtype=np.uint64)
    for j in range(n - 2, L):
        if n >= 2:
            out[:, j] = ngram_hash_column(history[:, : j + 1], n)
    return out


def ngram_hash_column(history, n: int) -> np.ndarray:
    """``(R,)`` uint64: the hash of each row's last ``n - 1`` tokens (``history`` ``(R, L)``,
    ``L >= n - 1``), as in :func:`ngram_hashes`."""
    history = np.asarray(history, dtype=np.int64)
    h = np.full(history.shape[0], _FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(history.shape[1] - (n - 1), history.shape[1]):
            h = (h ^ history[:, k].astype(np.uint64)) * _FNV_PRIME
    return h


def control_scores(
    scores,
    *,
    log_probs: bool,
    eos_id: int,
    forbid_eos: bool = False,
    history=None,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    banned=None,
    forced=None,
) -> np.ndarray:
    """The log-probs ``(R, V)`` a step ranks, after every control (module docstring, in that
    order), in the dtype of ``scores``. ``history`` ``(R, L)`` ints in ``[0, V)`` (``L`` may be 0);
    ``banned`` ``(R, W)`` ints, entries ``< 0`` ignored; ``forced`` ``(R,)`` ints, ``< 0`` = none.
    """
    x = np.array(scores)  # a copy
    R = x.shape[0]
    hist = np.zeros((R, 0), dtype=np.int64) if history is None else np.asarray(history)
    if repetition_penalty != 1.0:
        for r in range(R):
            seen = np.unique(hist[r])
            x[r, seen] = penalise(x[r, seen], repetition_penalty)
    logp = x if log_probs else log_softmax(x)
    kept = logp.copy()
    if forbid_eos:
        logp[:, eos_id] = -np.inf
    for r in range(R):
        if banned is not None:
            row = np.asarray(banned[r])
            logp[r, row[row >= 0]] = -np.inf
        if no_repeat_ngram_size > 0:
            logp[r, ngram_bans(hist[r], no_repeat_ngram_size)] = -np.inf
        if forced is not None and forced[r] >= 0:
            f = int(forced[r])
            logp[r] = -np.inf
            logp[r, f] = kept[r, f]
    return logp


def top_p_mask(probs, top_p: float) -> np.ndarray:
    """Nucleus (Holtzman et al. 2020) of one distribution ``probs`` ``(V,)`` (need not sum to 1;
    it is normalised here): the boolean mask of the smallest set of most likely tokens whose
    probability reaches ``top_p`` - tokens are taken in order of probability, descending (ties:
    the lower id first), while the mass taken *before* each one is ``< top_p``. Always keeps the
    most likely token; ``top_p >= 1`` keeps every token of non-zero probability."""
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum()
    order = np.argsort(-p, kind="stable")
    before = np.concatenate([[0.0], np.cumsum(p[order])[:-1]])
    keep = np.zeros(p.size, dtype=bool)
    keep[order[before < top_p]] = True
    return keep & (p > 0) | (np.arange(p.size) == order[0])


# ---------------------------------------------------------------------------------------------
# The fused step
# ---------------------------------------------------------------------------------------------


class BeamStep(NamedTuple):
    """Output of :func:`beam_step` for ``N`` items x ``B`` beams (``K = 2B`` candidates per item).

    * ``cand_score``    ``(N, 2B)`` float (dtype of the computation): running raw score
      ``beam_scores[n, b] + logp[n*B + b, v]`` of the top ``2B`` candidates, sorted by score
      descending, ties by lowest flat index ``b*V + v``.
    * ``cand_beam``     ``(N, 2B)`` int32: source beam ``b`` of each candidate.
    * ``cand_token``    ``(N, 2B)`` int32: token ``v`` of each candidate.
    * ``cand_logp``     ``(N, 2B)`` float: the token's log-prob ``logp[n*B + b, v]``.
    * ``cand_finished`` ``(N, 2B)`` bool: ``cand_token == eos_id`` and rank ``< B``.
    * ``alive``         ``(N, B)`` int32: positions (into the ``2B`` list, ascending) of the first
      ``B`` candidates whose token is not ``eos_id``, padded with ``-1`` if there are fewer.
    """

    cand_score: np.ndarray
    cand_beam: np.ndarray
    cand_token: np.ndarray
    cand_logp: np.ndarray
    cand_finished: np.ndarray
    alive: np.ndarray


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise ``log softmax`` over the last axis, numerically stable, in the dtype of ``x``.

    Exactly ``(x - m) - log(sum(exp(x - m)))`` with ``m`` the row maximum, so ``exp`` never
    overflows. A row that is entirely ``-inf`` stays ``-inf`` (instead of NaN).
    """
    x = np.asarray(x)
    m = np.max(x, axis=-1, keepdims=True)
    empty = np.isneginf(m)
    m = np.where(empty, np.zeros_like(m), m)
    z = x - m
    with np.errstate(divide="ignore", invalid="ignore"):  # only in the all -inf rows, replaced below
        lse = np.log(np.sum(np.exp(z), axis=-1, keepdims=True))
        out = z - lse
    return np.where(empty, np.full_like(z, -np.inf), out)


def beam_step(
    scores,
    beam_scores,
    *,
    eos_id: int,
    log_probs: bool = False,
    forbid_eos: bool = False,
    history=None,
    history_hash=None,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    banned=None,
    forced=None,
    candidates: int | None = None,
) -> BeamStep:
    """One beam-search expansion step for ``N`` items x ``B`` beams (the fused-kernel contract).

    Inputs
        ``scores`` ``(N*B, V)``: raw logits of the next token for every beam (``log_softmax`` is
        applied here, see :func:`log_softmax`), or log-probs when ``log_probs=True`` (used as
        given). ``beam_scores`` ``(N, B)``: raw running sums ``sum log P`` of the beams, ``-inf``
        for dead or unused beams (step 0: ``[0, -inf, ..., -inf]``, so only beam 0 expands).
        ``forbid_eos``: set the log-prob of ``eos_id`` to ``-inf`` in every row, *after*
        normalisation (the other tokens are not renormalised); used while ``T_y < min_len``.
        Decoding controls, per row (module docstring, "Decoding controls"; all off by default):
        ``history`` ``(N*B, L)`` the row's generated tokens, ``repetition_penalty``,
        ``no_repeat_ngram_size``, ``banned`` ``(N*B, W)`` (``-1`` pads) and ``forced`` ``(N*B,)``
        (``-1`` = none). ``history_hash`` (:func:`ngram_hashes`) is the fused kernels' shortcut
        and is ignored here: n-grams are compared token by token. ``candidates``: ``K >= 2B``
        candidates per item instead of ``2B`` (the pool of sampling inside beam search); every
        output with ``2B`` columns then has ``K``, and the rules below read ``K`` for ``2B``.

    Computation, per item ``n``, in the dtype of ``scores`` (``beam_scores`` cast to it):
        1. ``logp = log_softmax(scores)`` (or ``scores``); ``logp[:, eos_id] = -inf`` if
           ``forbid_eos``; with controls, ``logp =`` :func:`control_scores`.
        2. For every beam ``b`` and token ``v``: ``total[b*V + v] = beam_scores[n, b] +
           logp[n*B + b, v]`` (a single addition, ``-inf`` propagates).
        3. Sort the ``B*V`` candidates by ``total`` descending, ties by lowest flat index
           ``b*V + v`` (a stable sort of ``-total``), and keep the first ``2B``. Candidates with
           score ``-inf`` are kept in that order too; nothing is filtered.
        4. ``cand_finished[r] = cand_token[r] == eos_id and r < B``.
        5. ``alive`` = the first ``B`` positions ``r`` (ascending) with ``cand_token[r] != eos_id``.

    Each beam contributes exactly one ``<EOS>`` candidate, so the top ``2B`` always hold at least
    ``B`` non-EOS candidates when ``B*V >= 2B``, i.e. ``V >= 2``. Only when ``V == 1`` (the
    vocabulary is ``<EOS>`` alone) do fewer than ``2B`` candidates exist: the missing positions are
    padded with ``cand_score = cand_logp = -inf``, ``cand_beam = cand_token = -1``,
    ``cand_finished = False``, and ``alive`` is padded with ``-1``.

    The step does not judge ``-inf`` scores: a driver must ignore finished candidates whose score
    is ``-inf`` and treat alive candidates with score ``-inf`` as dead beams.

    Returns a :class:`BeamStep`.
    """
    scores = np.asarray(scores)
    dtype = scores.dtype if np.issubdtype(scores.dtype, np.floating) else np.dtype(np.float64)
    scores = scores.astype(dtype)  # a copy: the caller's array is never modified
    beam_scores = np.asarray(beam_scores, dtype=dtype)
    if scores.ndim != 2 or beam_scores.ndim != 2:
        raise ValueError(f"scores must be (N*B, V) and beam_scores (N, B), got {scores.shape} and {beam_scores.shape}")
    n_items, n_beams = beam_scores.shape
    vocab = scores.shape[1]
    if scores.shape[0] != n_items * n_beams:
        raise ValueError(f"scores has {scores.shape[0]} rows, expected N*B = {n_items * n_beams}")
    if not 0 <= eos_id < vocab:
        raise ValueError(f"eos_id {eos_id} outside the vocabulary [0, {vocab})")

    # 1. log-probs
    logp = control_scores(
        scores,
        log_probs=log_probs,
        eos_id=eos_id,
        forbid_eos=forbid_eos,
        history=history,
        repetition_penalty=repetition_penalty,
        no_repeat_ngram_size=no_repeat_ngram_size,
        banned=banned,
        forced=forced,
    )

    # 2. running scores of all B*V candidates of each item, in flat order b*V + v
    logp = logp.reshape(n_items, n_beams * vocab)
    total = np.repeat(beam_scores, vocab, axis=1) + logp

    # 3. top 2B (or `candidates`) by score, ties by lowest flat index
    n_cand = 2 * n_beams if candidates is None else int(candidates)
    if n_cand < 2 * n_beams:
        raise ValueError(f"candidates must be >= 2B = {2 * n_beams}, got {n_cand}")
    order = np.argsort(-total, axis=1, kind="stable")[:, :n_cand]
    k = order.shape[1]  # min(2B, B*V)

    cand_score = np.full((n_items, n_cand), -np.inf, dtype=dtype)
    cand_logp = np.full((n_items, n_cand), -np.inf, dtype=dtype)
    cand_beam = np.full((n_items, n_cand), -1, dtype=np.int32)
    cand_token = np.full((n_items, n_cand), -1, dtype=np.int32)
    cand_score[:, :k] = np.take_along_axis(total, order, axis=1)
    cand_logp[:, :k] = np.take_along_axis(logp, order, axis=1)
    cand_beam[:, :k] = order // vocab
    cand_token[:, :k] = order % vocab

    # 4. finished: <EOS> within the top B
    rank = np.arange(n_cand)
    cand_finished = (cand_token == eos_id) & (rank < n_beams)[None, :]

    # 5. alive: the first B real non-EOS candidates
    alive = np.full((n_items, n_beams), -1, dtype=np.int32)
    for n in range(n_items):
        keep = np.flatnonzero((cand_token[n] != eos_id) & (cand_token[n] >= 0))[:n_beams]
        alive[n, : keep.size] = keep
    return BeamStep(cand_score, cand_beam, cand_token, cand_logp, cand_finished, alive)


# ---------------------------------------------------------------------------------------------
# Hypotheses and state reordering
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hypothesis:
    """One search result.

    * ``tokens``: the generated tokens, without ``<BOS>``; ends in ``<EOS>`` when the hypothesis
      finished by emitting it, and has ``max_len`` tokens without ``<EOS>`` when it was cut at
      ``max_len``. ``len(tokens)`` is its length ``T_y``.
    * ``score``: the normalised score used for ranking, ``log_prob / lp(T_y)``.
    * ``log_prob``: the raw sum ``sum_t log P(y_t | x, y_<t)``.
    * ``step_log_probs``: the per-token log-probs (same length as ``tokens``).
    """

    tokens: tuple
    score: float
    log_prob: float
    step_log_probs: tuple

    def __len__(self) -> int:
        return len(self.tokens)


def gather_rows(state: Any, index) -> Any:
    """The default state reordering: ``x[index]`` along axis 0 of every array in ``state``.

    ``state`` is an array, ``None``, or a (nested) tuple / list of those; the structure is kept.
    """
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(gather_rows(s, index) for s in state)
    return state[index]


# ---------------------------------------------------------------------------------------------
# Diverse beam search, coverage penalty, sampling inside beam search (module docstring)
# ---------------------------------------------------------------------------------------------


def hamming_diversity(log_probs, earlier_tokens, penalty: float) -> np.ndarray:
    """The log-probs ``(rows, V)`` of one group's beams of one item, less ``penalty`` times the
    number of times each token occurs in ``earlier_tokens`` (the tokens the item's earlier groups
    took at this step), in the dtype of ``log_probs``: Hugging Face's Hamming diversity."""
    x = np.array(log_probs)  # a copy
    counts = np.bincount(np.asarray(earlier_tokens, dtype=np.int64), minlength=x.shape[1])
    return x - penalty * counts.astype(x.dtype)


def coverage_penalty(coverage, beta: float) -> float:
    """GNMT's coverage penalty (Wu et al. 2016, eq. 14) of one hypothesis:
    ``beta * sum_i log(min(coverage_i, 1))``, ``coverage_i`` the attention source position ``i``
    received, summed over the hypothesis' steps. ``<= 0``; ``-inf`` if a position got none."""
    c = np.minimum(np.asarray(coverage, dtype=np.float64), 1.0)
    with np.errstate(divide="ignore"):
        return float(beta * np.sum(np.log(c))) if beta else 0.0


_coverage_penalty = coverage_penalty  # the driver's argument of the same name hides it


def draw_candidates(pool_scores, n_draws: int, uniforms, temperature: float) -> np.ndarray:
    """Positions of ``n_draws`` distinct candidates drawn from ``pool_scores`` ``(K,)`` (one
    item's running scores, best first), without replacement: draw ``i`` takes, among the
    candidates not yet drawn, the first one whose cumulative weight
    ``exp((score - max) / temperature)`` (in pool order) exceeds ``uniforms[i]`` times the total.
    Candidates of score ``-inf`` weigh nothing; once only they are left, they are taken in pool
    order. Returned ascending (pool order, i.e. by score, ties by flat index)."""
    s = np.asarray(pool_scores, dtype=np.float64)
    left = list(range(s.size))
    out = []
    for i in range(min(n_draws, s.size)):
        finite = [k for k in left if s[k] > -np.inf]
        if not finite:
            out.append(left.pop(0))
            continue
        m = max(s[k] for k in finite)
        w = np.exp((s[finite] - m) / temperature)
        cdf = np.cumsum(w)
        j = min(int(np.searchsorted(cdf, uniforms[i] * cdf[-1], side="right")), len(finite) - 1)
        out.append(finite[j])
        left.remove(finite[j])
    return np.array(sorted(out), dtype=np.int64)


def uniform_draws(seed, n_items: int, per_item: int):
    """``draw() -> (n_items, per_item)`` uniforms in ``[0, 1)``, one call per step: one
    ``numpy.random.default_rng(seed)`` for the batch, or, when ``seed`` is a sequence of
    ``n_items`` seeds, one generator per item drawing its own row (an item's draws then do not
    depend on the rest of the batch)."""
    if isinstance(seed, (list, tuple)) or (isinstance(seed, np.ndarray) and seed.ndim == 1):
        if len(seed) != n_items:
            raise ValueError(f"seed: expected one seed per item ({n_items}), got {len(seed)}")
        rngs = [np.random.default_rng(s) for s in seed]
        return lambda: np.stack([g.random(per_item) for g in rngs]) if rngs else np.zeros((0, per_item))
    rng = np.random.default_rng(seed)
    return lambda: rng.random((n_items, per_item))


# ---------------------------------------------------------------------------------------------
# The plain driver
# ---------------------------------------------------------------------------------------------


def beam_search(
    step: Callable,
    state: Any,
    *,
    batch_size: int,
    beam_size: int,
    bos_id: int,
    eos_id: int,
    max_len: int,
    min_len: int = 0,
    length_penalty: float = 0.7,
    penalty: str = "average",
    early_stopping=True,
    n_best: int = 1,
    reorder: Callable | None = None,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    suppress_tokens=(),
    bad_words=(),
    prefix=None,
    patience: float = 1.0,
    num_beam_groups: int = 1,
    diversity_penalty: float = 0.0,
    coverage_penalty: float = 0.0,
    source_lengths=None,
    sampling_topk: int = 1,
    sampling_temperature: float = 1.0,
    seed=None,
) -> list[list[Hypothesis]]:
    """Batched beam search, NumPy only, float64 (the readable twin of ``seqkernels.search``).

    ``step(tokens, state) -> (log_probs, state)`` with ``tokens`` an int64 array ``(N*B,)`` of the
    last token of every beam (``bos_id`` at the start) and ``log_probs`` ``(N*B, V)``. Between
    steps the state is reordered with ``reorder(state, index)`` (default :func:`gather_rows`),
    ``index`` the ``(N*B,)`` flat source row of every new beam.

    Each step, for each unfinished item (see :func:`beam_step`): ``<EOS>`` candidates ranked
    ``< B`` (and with a finite score) are finished, in rank order; the ``B`` alive candidates
    become the new beams. At ``max_len`` the live beams are finished as they stand. Stopping:
    ``early_stopping=True`` ends an item once it has ``B`` finished hypotheses; ``"exact"`` ends it
    once it has ``B`` and no live beam's :func:`best_possible_score` exceeds the ``B``-th best
    finished score. An item with no live beam left also ends. Results are the ``n_best`` finished
    hypotheses of each item by normalised score, best first (ties: the one finished first).

    Controls (module docstring, "Decoding controls"): every beam's history is its generated
    tokens; ``suppress_tokens`` and ``bad_words`` (:func:`bad_word_bans`) give each row's
    ``banned`` tokens; ``prefix`` - one token sequence (or ``None``) per item - forces the first
    tokens of every hypothesis of that item (``forced`` at step ``t < len(prefix[n])``; the
    forced tokens count in ``T_y`` and in the score with their own log-probs, as in CTranslate2's
    ``target_prefix``). ``patience`` (CTranslate2, Kasai et al. 2022): an item needs
    ``K = max(1, ceil(patience * B))`` finished hypotheses instead of ``B`` before it stops
    (``"exact"`` compares the bound with the ``K``-th best).

    Diverse beam search, the coverage penalty and sampling inside beam search: module docstring.
    With ``G = num_beam_groups`` every rule above holds per group (``B/G`` beams, its own
    finished hypotheses, ``K = max(1, ceil(patience * B/G))``); an item ends when all its groups
    have. With ``coverage_penalty`` the step returns ``(log_probs, state, attention)``.
    """
    if early_stopping is not True and early_stopping != "exact":
        raise ValueError(f"early_stopping must be True or 'exact', got {early_stopping!r}")
    N, B, G = batch_size, beam_size, num_beam_groups
    if B % G:
        raise ValueError(f"num_beam_groups must divide beam_size, got {G} and {B}")
    gs, U = B // G, N * G  # beams per group; units = (item, group) pairs, unit n*G + g
    alpha, beta = length_penalty, coverage_penalty
    target = max(1, math.ceil(patience * gs))
    pool = max(sampling_topk, 2 * gs)
    sampling = sampling_topk > 2 * gs
    draw = uniform_draws(seed, N, G * 2 * gs)
    scores = np.full((U, gs), -np.inf)
    scores[:, 0] = 0.0
    tokens = [[() for _ in range(gs)] for _ in range(U)]  # generated tokens per beam
    logps = [[() for _ in range(gs)] for _ in range(U)]  # their log-probs
    covs = [[0.0 for _ in range(gs)] for _ in range(U)]  # attention each source position got
    finished = [[] for _ in range(U)]
    done = [False] * U
    last = np.full(N * B, bos_id, dtype=np.int64)

    def finish(u, toks, lps, log_prob, cov):
        score = normalised_score(log_prob, len(toks), alpha, penalty)
        if beta:
            n = u // G
            score += _coverage_penalty(cov[: None if source_lengths is None else source_lengths[n]], beta)
        finished[u].append(Hypothesis(tuple(toks), score, float(log_prob), tuple(lps)))

    for t in range(max_len):
        length = t + 1  # T_y of every candidate made in this step
        out = step(last, state)
        log_probs, state = out[0], out[1]
        attention = np.asarray(out[2], dtype=np.float64) if beta else np.zeros((N * B, 1))
        log_probs = np.asarray(log_probs, dtype=np.float64)
        # dead beams and finished items have no tokens: their rows are never ranked, pad with EOS
        history = np.array(
            [tuple(tokens[u][j]) + (eos_id,) * (t - len(tokens[u][j])) for u in range(U) for j in range(gs)],
            dtype=np.int64,
        ).reshape(N * B, t)
        banned = [sorted(set(suppress_tokens) | set(bad_word_bans(history[r], bad_words))) for r in range(N * B)]
        width = max(1, max(len(x) for x in banned))
        banned = np.array([x + [-1] * (width - len(x)) for x in banned], dtype=np.int64)
        forced = np.array(
            [
                prefix[r // B][t]
                if prefix is not None and prefix[r // B] is not None and t < len(prefix[r // B])
                else -1
                for r in range(N * B)
            ]
        )
        uniforms = draw().reshape(N, G, 2 * gs)

        index = np.arange(N * B)
        last = np.full(N * B, eos_id, dtype=np.int64)
        new_scores = np.full((U, gs), -np.inf)
        new_tokens = [[() for _ in range(gs)] for _ in range(U)]
        new_logps = [[() for _ in range(gs)] for _ in range(U)]
        new_covs = [[0.0 for _ in range(gs)] for _ in range(U)]
        taken = [[] for _ in range(N)]  # tokens the item's groups took at this step, in group order
        for g in range(G):
            rows = np.array([(n * G + g) * gs + j for n in range(N) for j in range(gs)])
            lp = log_probs[rows]
            if diversity_penalty and g > 0:
                for n in range(N):
                    for j in range(gs):  # forced rows all take the prefix: no penalty there
                        r = n * gs + j
                        if forced[rows[r]] < 0:
                            lp[r] = hamming_diversity(lp[r][None, :], taken[n], diversity_penalty)[0]
            c = beam_step(
                lp,
                scores[g::G],
                eos_id=eos_id,
                log_probs=True,
                forbid_eos=length < min_len,
                history=history[rows],
                repetition_penalty=repetition_penalty,
                no_repeat_ngram_size=no_repeat_ngram_size,
                banned=banned[rows],
                forced=forced[rows],
                candidates=pool,
            )
            for n in range(N):
                u = n * G + g
                if done[u]:
                    continue
                picked = (
                    draw_candidates(c.cand_score[n, :sampling_topk], 2 * gs, uniforms[n, g], sampling_temperature)
                    if sampling
                    else np.arange(2 * gs)
                )
                ranks = list(picked)
                # finished candidates: <EOS> within the first gs picked, in rank order
                for r in ranks[:gs]:
                    if c.cand_token[n, r] == eos_id and c.cand_score[n, r] > -np.inf:
                        b = c.cand_beam[n, r]
                        finish(
                            u,
                            tokens[u][b] + (eos_id,),
                            logps[u][b] + (float(c.cand_logp[n, r]),),
                            c.cand_score[n, r],
                            covs[u][b] + attention[u * gs + b],
                        )
                # the new beams: the first gs picked that are not <EOS>
                alive = [r for r in ranks if 0 <= c.cand_token[n, r] != eos_id][:gs]
                for j, r in enumerate(alive):
                    if c.cand_score[n, r] == -np.inf:
                        continue  # a dead beam
                    b, v = int(c.cand_beam[n, r]), int(c.cand_token[n, r])
                    index[u * gs + j] = u * gs + b
                    last[u * gs + j] = v
                    new_scores[u, j] = c.cand_score[n, r]
                    new_tokens[u][j] = tokens[u][b] + (v,)
                    new_logps[u][j] = logps[u][b] + (float(c.cand_logp[n, r]),)
                    new_covs[u][j] = covs[u][b] + attention[u * gs + b]
                    taken[n].append(v)
        for u in range(U):
            if done[u]:
                continue
            live = [j for j in range(gs) if new_scores[u, j] > -np.inf]
            # stopping
            if length == max_len:
                for j in live:
                    finish(u, new_tokens[u][j], new_logps[u][j], new_scores[u, j], new_covs[u][j])
                done[u] = True
            elif not live:
                done[u] = True
            elif len(finished[u]) >= target:
                if early_stopping is True:
                    done[u] = True
                else:  # "exact"; the coverage penalty is <= 0, so the bound still holds
                    kth = sorted((h.score for h in finished[u]), reverse=True)[target - 1]
                    bound = max(
                        best_possible_score(
                            new_scores[u, j], length, max_len=max_len, min_len=min_len, alpha=alpha, penalty=penalty
                        )
                        for j in live
                    )
                    if bound <= kth:
                        done[u] = True
        scores, tokens, logps, covs = new_scores, new_tokens, new_logps, new_covs
        if all(done):
            break
        state = (reorder or gather_rows)(state, index)

    # each group offers its best gs; an item's results are the best of its groups' offers
    results = []
    for n in range(N):
        offers = [h for g in range(G) for h in sorted(finished[n * G + g], key=lambda h: -h.score)[:gs]]
        results.append(sorted(offers, key=lambda h: -h.score)[:n_best])
    return results
