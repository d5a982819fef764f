"""Decoding: batched beam search, greedy search, sampling, scoring and beam-search error analysis.

Semantics: docs/ops.md §3; the float64 twin of the driver is
:func:`seqkernels.reference.search.beam_search` and the step it runs is :func:`seqkernels.ops.beam_step`.

The model
    Every function takes ``step(tokens, state) -> (log_probs, state)``: ``tokens`` is an int64 array
    ``(R,)`` holding the last token of every row (``bos_id`` at the start), ``log_probs`` the
    ``(R, V)`` log-probabilities of the next token (log-softmax already applied), ``state``
    whatever the model carries between steps. ``R = N*B`` for beam search (row ``n*B + b`` is beam
    ``b`` of item ``n``) and ``R = N`` for the other functions. ``step`` must not modify ``state``
    in place. Rows of items that are already finished (and dead beams) are still computed, fed
    ``eos_id``, and their outputs ignored: the batch keeps its shape throughout.

Devices
    The arrays follow the log-probs: when ``step`` returns CuPy arrays, tokens and reorder indices
    are CuPy arrays too (for the very first call, the device of the first array found in ``state``,
    NumPy if none). CuPy is imported only when such an array is met. Results are host objects.

Lengths and scores
    ``T_y`` counts the generated tokens including ``<EOS>``, excluding ``<BOS>``. A hypothesis'
    raw score is ``log_prob = sum_t log P(y_t | x, y_<t)``; finished hypotheses are ranked by
    ``log_prob / T_y**alpha`` (``penalty="average"``) or ``log_prob / ((5 + T_y)/6)**alpha``
    (``penalty="gnmt"``), ``alpha = length_penalty``; ``alpha = 0`` is the raw sum.

No tqdm here: decoding loops are called from inside other loops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .ops import beam_step as _beam_step
from .reference.search import (
    PENALTIES,
    Hypothesis,
    best_possible_score,
    control_scores,
    ngram_hash_column,
    normalised_score,
    top_p_mask,
)

__all__ = [
    "ErrorAnalysis",
    "Hypothesis",
    "beam_search",
    "error_analysis",
    "greedy_search",
    "sample",
    "score",
]


# ---------------------------------------------------------------------------------------------
# Arrays, devices and validation helpers
# ---------------------------------------------------------------------------------------------


def _is_cupy(x) -> bool:
    return type(x).__module__.split(".")[0] == "cupy"


def _array_module(x):
    """``cupy`` for CuPy arrays (imported only then), ``numpy`` otherwise."""
    if _is_cupy(x):
        import cupy

        return cupy
    return np


def _to_host(x) -> np.ndarray:
    return x.get() if _is_cupy(x) else np.asarray(x)


def _leaves(state):
    if isinstance(state, (tuple, list)):
        for s in state:
            yield from _leaves(s)
    elif state is not None:
        yield state


def _state_module(state):
    """Device of the first array found in a (nested) tuple/list state; NumPy if none."""
    try:
        for leaf in _leaves(state):
            if _is_cupy(leaf):
                return _array_module(leaf)
            if isinstance(leaf, np.ndarray):
                return np
    except TypeError:
        pass
    return np


def _check_int(value, name: str, minimum: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return value


def _check_patience(patience, beam_size: int) -> int:
    """How many finished hypotheses an item needs before it stops: ``max(1, ceil(patience*B))``."""
    if isinstance(patience, bool) or not isinstance(patience, (int, float, np.number)):
        raise TypeError(f"patience: expected a real number, got {type(patience).__name__}")
    if not (math.isfinite(patience) and patience > 0):
        raise ValueError(f"patience: must be finite and > 0, got {patience}")
    return max(1, math.ceil(patience * beam_size))


def _check_callable(f, name: str) -> None:
    if not callable(f):
        raise TypeError(f"{name}: expected a callable, got {type(f).__name__}")


def _check_penalty(length_penalty, penalty) -> float:
    if penalty not in PENALTIES:
        raise ValueError(f"penalty: must be one of {PENALTIES}, got {penalty!r}")
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float, np.number)):
        raise TypeError(f"length_penalty: expected a real number, got {type(length_penalty).__name__}")
    if not math.isfinite(float(length_penalty)):
        raise ValueError(f"length_penalty: must be finite, got {length_penalty}")
    return float(length_penalty)


def _check_vocab_ids(vocab: int, **ids) -> None:
    for name, value in ids.items():
        if value is not None and not 0 <= value < vocab:
            raise ValueError(f"{name}: {value} is outside the vocabulary [0, {vocab}) of the step's "
                             "log-probs")


def _check_state_rows(state, rows: int, name: str) -> None:
    """Default reorder convention: every leaf is an array with ``rows`` rows along axis 0."""
    if state is None:
        return
    if isinstance(state, (tuple, list)):
        for i, s in enumerate(state):
            _check_state_rows(s, rows, f"{name}[{i}]")
        return
    shape = getattr(state, "shape", None)
    if shape is None or not hasattr(state, "__getitem__"):
        raise ValueError(f"{name}: the default reorder gathers arrays along axis 0, got a "
                         f"{type(state).__name__}; pass reorder= for other states")
    if len(shape) == 0 or shape[0] != rows:
        raise ValueError(f"{name}: has shape {tuple(shape)}, expected {rows} rows along axis 0 "
                         "(batch_size * beam_size)")


def _gather_rows(state, index):
    """Default reorder: ``x[index]`` along axis 0 of every array leaf; structure and None kept."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(_gather_rows(s, index) for s in state)
    return state[index]


def _call_step(step, tokens, state, rows: int, vocab: int | None, t: int):
    """Call the model and check what it returned: ``(log_probs (rows, V), state)``."""
    out = step(tokens, state)
    if not isinstance(out, tuple) or len(out) != 2:
        raise ValueError(f"step: must return a pair (log_probs, state), got {type(out).__name__}"
                         + (f" of length {len(out)}" if isinstance(out, tuple) else ""))
    log_probs, state = out
    if not _is_cupy(log_probs):
        if hasattr(log_probs, "__cuda_array_interface__"):
            raise TypeError(f"step: returned a GPU array of type {type(log_probs).__name__}; "
                            "return CuPy or NumPy arrays")
        log_probs = np.asarray(log_probs)
    xp = _array_module(log_probs)
    shape = tuple(log_probs.shape)
    if len(shape) != 2 or shape[0] != rows:
        raise ValueError(f"step: returned log_probs of shape {shape} at step {t}, expected ({rows}, V)")
    if vocab is not None and shape[1] != vocab:
        raise ValueError(f"step: returned log_probs with V = {shape[1]} at step {t}, but V = {vocab} "
                         "before")
    if shape[1] < 1:
        raise ValueError("step: returned log_probs with an empty vocabulary (V = 0)")
    dtype = np.dtype(log_probs.dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"step: returned log_probs of dtype {dtype}, expected float32 or float64")
    if dtype.itemsize < 4:
        log_probs = log_probs.astype(np.float32)
    if bool(xp.isnan(log_probs).any()):
        row = int(_to_host(xp.isnan(log_probs).any(axis=1)).argmax())
        raise ValueError(f"step: returned NaN log-probs at step {t} (row {row})")
    if bool(xp.isposinf(log_probs).any()):
        raise ValueError(f"step: returned +inf log-probs at step {t}")
    return log_probs, state, xp


def _sequence_tokens(seq, name: str) -> list[int]:
    """A hypothesis, or a sequence of token ids, as a list of ints."""
    if isinstance(seq, Hypothesis):
        return list(seq.tokens)
    if isinstance(seq, (list, tuple)) and seq and all(isinstance(h, Hypothesis) for h in seq):
        return list(seq[0].tokens)  # a beam_search result: best first
    try:
        arr = np.asarray(seq)
    except Exception as e:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name}: expected a sequence of token ids") from e
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name}: expected a 1-D sequence of int token ids, got {seq!r}")
    toks = [int(v) for v in arr]
    if any(v < 0 for v in toks):
        raise ValueError(f"{name}: negative token id in {toks}")
    return toks


# ---------------------------------------------------------------------------------------------
# Decoding controls
# ---------------------------------------------------------------------------------------------


def _token_list(seq, name: str) -> list[int]:
    try:
        toks = [v for v in seq]
    except TypeError:
        raise TypeError(f"{name}: expected a sequence of token ids, got {type(seq).__name__}") from None
    for v in toks:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name}: expected int token ids, got {v!r}")
        if v < 0:
            raise ValueError(f"{name}: negative token id {v}")
    return [int(v) for v in toks]


class _Controls:
    """The decoding controls of one search, validated; builds each step's per-row arguments
    (semantics: :mod:`seqkernels.reference.search`, "Decoding controls")."""

    def __init__(self, n_items: int, *, repetition_penalty=1.0, no_repeat_ngram_size=0,
                 suppress_tokens=None, bad_words=None, prefix=None):
        if isinstance(repetition_penalty, bool) or not isinstance(repetition_penalty,
                                                                  (int, float, np.number)):
            raise TypeError("repetition_penalty: expected a real number, got "
                            f"{type(repetition_penalty).__name__}")
        if not (math.isfinite(repetition_penalty) and repetition_penalty > 0):
            raise ValueError(f"repetition_penalty: must be finite and > 0, got {repetition_penalty}")
        self.penalty = float(repetition_penalty)
        self.ngram = _check_int(no_repeat_ngram_size, "no_repeat_ngram_size", 0)
        self.suppress = sorted(set(_token_list(suppress_tokens or (), "suppress_tokens")))
        words = [_token_list(w, f"bad_words[{i}]") for i, w in enumerate(bad_words or ())]
        for i, w in enumerate(words):
            if not w:
                raise ValueError(f"bad_words[{i}]: empty word")
        self.suppress = sorted(set(self.suppress) | {w[0] for w in words if len(w) == 1})
        self.words = [w for w in words if len(w) > 1]
        self.prefix = None
        if prefix is not None:
            if not isinstance(prefix, (list, tuple)) or len(prefix) != n_items:
                raise ValueError(f"prefix: expected one token sequence (or None) per item, {n_items} "
                                 "in all")
            self.prefix = [[] if p is None else _token_list(p, f"prefix[{i}]")
                           for i, p in enumerate(prefix)]
        self.needs_history = self.penalty != 1.0 or self.ngram > 0 or bool(self.words)

    def check_vocab(self, vocab: int) -> None:
        ids = [("suppress_tokens", v) for v in self.suppress]
        ids += [(f"bad_words[{i}]", v) for i, w in enumerate(self.words) for v in w]
        ids += [(f"prefix[{i}]", v) for i, p in enumerate(self.prefix or ()) for v in p]
        for name, v in ids:
            if v >= vocab:
                raise ValueError(f"{name}: token {v} is outside the vocabulary [0, {vocab}) of the "
                                 "step's log-probs")

    def banned(self, history: np.ndarray) -> np.ndarray | None:
        """``(R, W)`` int32: suppressed tokens, then each multi-token bad word's last token where
        the row's history ends with the word's other tokens (``-1`` elsewhere); None if none."""
        R, L = history.shape
        cols = [np.full(R, v, dtype=np.int32) for v in self.suppress]
        for w in self.words:
            k = len(w) - 1
            hit = (np.all(history[:, L - k:] == np.asarray(w[:-1]), axis=1) if L >= k
                   else np.zeros(R, dtype=bool))
            cols.append(np.where(hit, w[-1], -1).astype(np.int32))
        return np.stack(cols, axis=1) if cols else None

    def forced(self, t: int, rows_per_item: int) -> np.ndarray | None:
        """``(R,)`` int32: the prefix token every row of an item must take at step ``t``."""
        if self.prefix is None or all(len(p) <= t for p in self.prefix):
            return None
        per_item = np.array([p[t] if t < len(p) else -1 for p in self.prefix], dtype=np.int32)
        return np.repeat(per_item, rows_per_item)

    def step_kwargs(self, history: np.ndarray, t: int, rows_per_item: int, hashes=None) -> dict:
        """Keywords of the beam step for rows whose generated tokens are ``history`` ``(R, t)``."""
        kw = {}
        if self.penalty != 1.0 or self.ngram > 0:
            kw.update(history=history, repetition_penalty=self.penalty,
                      no_repeat_ngram_size=self.ngram)
            if hashes is not None:
                kw["history_hash"] = hashes
        banned = self.banned(history)
        if banned is not None:
            kw["banned"] = banned
        forced = self.forced(t, rows_per_item)
        if forced is not None:
            kw["forced"] = forced
        return kw

    def log_probs(self, lp: np.ndarray, history: np.ndarray, t: int, *, eos_id: int,
                  forbid_eos: bool) -> np.ndarray:
        """Host log-probs ``(R, V)`` after every control (one row per item: greedy, sampling)."""
        kw = self.step_kwargs(history, t, 1)
        kw.pop("history_hash", None)
        if not kw and not forbid_eos:
            return lp
        kw.setdefault("history", history)
        return control_scores(lp, log_probs=True, eos_id=eos_id, forbid_eos=forbid_eos, **kw)


def _append_hash(hashes: np.ndarray, history: np.ndarray, n: int) -> np.ndarray:
    """Append to ``hashes`` ``(R, L-1)`` the column of the ``(n-1)``-gram ending at the last token
    of ``history`` ``(R, L)`` (zero while ``L < n - 1``)."""
    L = history.shape[1]
    col = (ngram_hash_column(history, n) if L >= n - 1
           else np.zeros(history.shape[0], dtype=np.uint64))
    return np.concatenate([hashes, col[:, None]], axis=1)


# ---------------------------------------------------------------------------------------------
# Beam search
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
    step_op: Callable | None = None,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    suppress_tokens=None,
    bad_words=None,
    prefix=None,
    patience: float = 1.0,
) -> list[list[Hypothesis]]:
    """Batched beam search over ``N = batch_size`` source items with ``B = beam_size`` beams each.

    Parameters
        step: ``step(tokens (N*B,), state) -> (log_probs (N*B, V), state)``; see the module doc.
        state: the model state for all ``N*B`` rows (row ``n*B + b`` = beam ``b`` of item ``n``;
            give every beam of an item the same initial state). With the default ``reorder`` it
            must be an array, ``None``, or a (nested) tuple / list of those, every array having
            ``N*B`` rows along axis 0; between steps each array becomes ``x[index]``.
        reorder: ``reorder(state, index) -> state`` for other states; ``index`` is the int64
            ``(N*B,)`` array (on the log-probs' device) of the source row of every new row.
        max_len: at most this many generated tokens (``T_y <= max_len``); live hypotheses still
            open after step ``max_len`` are finished as they stand, without ``<EOS>``.
        min_len: ``<EOS>`` is forbidden (its log-prob set to ``-inf``) for every candidate whose
            length would be ``T_y < min_len``, so a hypothesis ending in ``<EOS>`` has
            ``T_y >= min_len``. ``0 <= min_len <= max_len``.
        length_penalty, penalty: ``alpha`` and the form ("average" or "gnmt") of the ranking score.
        early_stopping: ``True`` - an item stops as soon as it has ``B`` finished hypotheses (then
            ``B = 1`` is exactly greedy search). ``"exact"`` - it stops only when it has ``B``
            finished hypotheses and no live beam can still beat the ``B``-th best of them: a live
            beam with raw score ``s`` and length ``T`` can reach at most
            ``max(s/lp(L_lo), s/lp(max_len))``, ``L_lo = max(T + 1, min_len)`` (derivation at
            :func:`seqkernels.reference.search.best_possible_score`; it uses log-probs ``<= 0``).
            "exact" never returns worse hypotheses than ``True``.
        n_best: how many hypotheses to return per item, ``1 <= n_best <= B``.
        step_op: the expansion step, with the contract of :func:`seqkernels.ops.beam_step`
            (default). The arrays given to it live on the log-probs' device; the controls'
            arrays (keywords ``history``, ``history_hash``, ``banned``, ``forced``, given only when
            a control is on) are NumPy.

    Decoding controls (exact semantics, and how they differ from Hugging Face and CTranslate2:
    :mod:`seqkernels.reference.search`, "Decoding controls"; all fused into the step)
        repetition_penalty: ``p > 0``; the log-prob ``x <= 0`` of every token the beam has
            generated becomes ``x * p`` (not renormalised; 1 = off).
        no_repeat_ngram_size: ``n``; a beam never repeats one of its own ``n``-grams (0 = off).
            The step keeps, per hypothesis, a hash of every ``(n-1)``-gram and reorders it with
            the beams.
        suppress_tokens: token ids never generated (their log-probs ``-inf``).
        bad_words: token sequences never generated: a one-token word is suppressed, a longer one
            loses its last token wherever the beam ends with its other tokens.
        prefix: one token sequence (or None) per item; every hypothesis of item ``n`` starts with
            ``prefix[n]`` (forced, whatever the masks say; its log-probs count in the score and
            ``T_y`` counts it, as CTranslate2's ``target_prefix``). ``max_len`` must leave room.
        patience: ``> 0``; an item needs ``K = max(1, ceil(patience * B))`` finished hypotheses
            before it stops, instead of ``B`` (CTranslate2's ``patience``; ``"exact"`` compares
            its bound with the ``K``-th best).

    Algorithm
        Step 0 expands beam 0 only (the other beams start at ``-inf``). Each step, for each item,
        the step op ranks the ``B*V`` extensions by raw score (ties: lowest ``b*V + v``) and keeps
        the top ``2B``; an ``<EOS>`` candidate among the top ``B`` (with a finite score) is
        finished, and the best ``B`` non-EOS candidates stay alive (an alive candidate with score
        ``-inf`` is a dead beam). An item also stops when no live beam is left.

    Returns
        One list per item of at most ``n_best`` :class:`Hypothesis`, best first by normalised
        score (ties: the hypothesis finished first). It holds fewer than ``n_best`` only when the
        item ran out of candidates (tiny vocabularies or ``-inf`` log-probs).

    Raises ValueError (TypeError for wrong types) naming the argument: ``batch_size < 0``,
    ``beam_size < 1``, ``n_best`` outside ``[1, B]``, ``max_len < 1``, ``min_len`` outside
    ``[0, max_len]``, ``bos_id``/``eos_id`` outside the vocabulary, an unknown ``penalty`` or
    ``early_stopping``, a state whose rows are not ``N*B``, and a ``step`` that returns something
    other than ``(log_probs (N*B, V), state)`` or NaN log-probs.
    """
    N = _check_int(batch_size, "batch_size", 0)
    B = _check_int(beam_size, "beam_size", 1)
    n_best = _check_int(n_best, "n_best", 1)
    if n_best > B:
        raise ValueError(f"n_best: must be <= beam_size = {B}, got {n_best}")
    max_len = _check_int(max_len, "max_len", 1)
    min_len = _check_int(min_len, "min_len", 0)
    if min_len > max_len:
        raise ValueError(f"min_len: must be <= max_len = {max_len}, got {min_len}")
    bos_id = _check_int(bos_id, "bos_id", 0)
    eos_id = _check_int(eos_id, "eos_id", 0)
    alpha = _check_penalty(length_penalty, penalty)
    if early_stopping is not True and not (isinstance(early_stopping, str) and early_stopping == "exact"):
        raise ValueError(f"early_stopping: must be True or 'exact', got {early_stopping!r}")
    controls = _Controls(N, repetition_penalty=repetition_penalty,
                         no_repeat_ngram_size=no_repeat_ngram_size, suppress_tokens=suppress_tokens,
                         bad_words=bad_words, prefix=prefix)
    target = _check_patience(patience, B)
    _check_callable(step, "step")
    if reorder is not None:
        _check_callable(reorder, "reorder")
    if step_op is None:
        step_op = _beam_step
    _check_callable(step_op, "step_op")
    if N == 0:
        return []

    rows = N * B
    if reorder is None:
        _check_state_rows(state, rows, "state")
    xp = _state_module(state)

    beam_scores = np.full((N, B), -np.inf)   # raw running sums, host
    beam_scores[:, 0] = 0.0
    hist_tok = np.zeros((N, B, 0), dtype=np.int64)      # generated tokens of every live beam
    hist_lp = np.zeros((N, B, 0), dtype=np.float64)     # and their log-probs
    hist_hash = np.zeros((N, B, 0), dtype=np.uint64)    # (n-1)-gram hashes, for n-gram blocking
    use_hash = controls.ngram >= 2
    finished: list[list[Hypothesis]] = [[] for _ in range(N)]
    done = np.zeros(N, dtype=bool)
    next_tokens = np.full(rows, bos_id, dtype=np.int64)
    vocab = None
    beam_range = np.arange(B)

    def finish(n, toks, lps, log_prob, length):
        log_prob = float(log_prob)
        finished[n].append(Hypothesis(tuple(int(v) for v in toks),
                                      normalised_score(log_prob, length, alpha, penalty),
                                      log_prob, tuple(float(x) for x in lps)))

    for t in range(max_len):
        length = t + 1  # T_y of every candidate made in this step
        log_probs, state, xp = _call_step(step, xp.asarray(next_tokens), state, rows, vocab, t)
        if vocab is None:
            vocab = int(log_probs.shape[1])
            _check_vocab_ids(vocab, bos_id=bos_id, eos_id=eos_id)
            controls.check_vocab(vocab)
        if reorder is None:
            _check_state_rows(state, rows, f"step: returned state (step {t})")

        kw = controls.step_kwargs(hist_tok.reshape(rows, t).astype(np.int32), t, B,
                                  hist_hash.reshape(rows, t) if use_hash else None)
        out = step_op(log_probs, xp.asarray(beam_scores, dtype=log_probs.dtype), eos_id=eos_id,
                      log_probs=True, forbid_eos=length < min_len, **kw)
        c_score, c_beam, c_token, c_logp, c_fin, alive = (_to_host(a) for a in out)
        if c_score.shape != (N, 2 * B) or alive.shape != (N, B):
            raise ValueError(f"step_op: returned cand_score {c_score.shape} and alive {alive.shape}, "
                             f"expected ({N}, {2 * B}) and ({N}, {B})")

        src = np.tile(beam_range, (N, 1))                   # source beam of every new beam
        new_tok = np.full((N, B), eos_id, dtype=np.int64)   # fed to finished items / dead beams
        new_lp = np.zeros((N, B))
        new_scores = np.full((N, B), -np.inf)
        for n in np.flatnonzero(~done):
            for r in range(B):  # finished: <EOS> within the top B, in rank order
                if c_fin[n, r] and c_score[n, r] > -np.inf:
                    b = c_beam[n, r]
                    finish(n, list(hist_tok[n, b]) + [eos_id], list(hist_lp[n, b]) + [c_logp[n, r]],
                           c_score[n, r], length)
            for j in range(B):  # the new beams
                r = alive[n, j]
                if r >= 0 and c_score[n, r] > -np.inf:
                    src[n, j] = c_beam[n, r]
                    new_tok[n, j] = c_token[n, r]
                    new_lp[n, j] = c_logp[n, r]
                    new_scores[n, j] = c_score[n, r]
        hist_tok = np.concatenate([np.take_along_axis(hist_tok, src[:, :, None], axis=1),
                                   new_tok[:, :, None]], axis=2)
        hist_lp = np.concatenate([np.take_along_axis(hist_lp, src[:, :, None], axis=1),
                                  new_lp[:, :, None]], axis=2)
        if use_hash:  # reordered with the beams, then one new column
            hist_hash = _append_hash(np.take_along_axis(hist_hash, src[:, :, None], axis=1)
                                     .reshape(rows, t), hist_tok.reshape(rows, t + 1),
                                     controls.ngram).reshape(N, B, t + 1)
        beam_scores = new_scores

        for n in np.flatnonzero(~done):  # stopping rules
            live = np.flatnonzero(beam_scores[n] > -np.inf)
            if length == max_len:
                for j in live:
                    finish(n, hist_tok[n, j], hist_lp[n, j], beam_scores[n, j], length)
                done[n] = True
            elif live.size == 0:
                done[n] = True
            elif len(finished[n]) >= target:
                if early_stopping is True:
                    done[n] = True
                else:
                    kth = sorted((h.score for h in finished[n]), reverse=True)[target - 1]
                    bound = max(best_possible_score(beam_scores[n, j], length, max_len=max_len,
                                                    min_len=min_len, alpha=alpha, penalty=penalty)
                                for j in live)
                    done[n] = bound <= kth
        if done.all():
            break
        index = (np.arange(N)[:, None] * B + src).reshape(rows)
        next_tokens = new_tok.reshape(rows)
        state = (reorder or _gather_rows)(state, xp.asarray(index))

    return [sorted(f, key=lambda h: -h.score)[:n_best] for f in finished]


# ---------------------------------------------------------------------------------------------
# Greedy search and sampling
# ---------------------------------------------------------------------------------------------


def _decode(step, state, *, batch_size, bos_id, eos_id, max_len, choose, min_len=0,
            controls: _Controls | None = None) -> list[Hypothesis]:
    """Shared loop of greedy search and sampling: one row per item, ``choose(lp, t, active)``
    returns the next token of every row (only the active rows matter) from the log-probs after
    the controls and ``min_len``; the hypotheses keep the model's own log-probs."""
    N = batch_size
    xp = _state_module(state)
    tokens = [[] for _ in range(N)]
    lps = [[] for _ in range(N)]
    done = np.zeros(N, dtype=bool)
    next_tokens = np.full(N, bos_id, dtype=np.int64)
    vocab = None
    for t in range(max_len):
        log_probs, state, xp = _call_step(step, xp.asarray(next_tokens), state, N, vocab, t)
        if vocab is None:
            vocab = int(log_probs.shape[1])
            _check_vocab_ids(vocab, bos_id=bos_id, eos_id=eos_id)
            if controls is not None:
                controls.check_vocab(vocab)
        lp = _to_host(log_probs).astype(np.float64)
        ranked = lp
        if controls is not None:
            # finished rows have no more tokens: pad with EOS (their choice is ignored)
            history = np.array([toks + [eos_id] * (t - len(toks)) for toks in tokens],
                               dtype=np.int64).reshape(N, t)
            ranked = controls.log_probs(lp, history, t, eos_id=eos_id, forbid_eos=t + 1 < min_len)
        elif t + 1 < min_len:
            ranked = lp.copy()
            ranked[:, eos_id] = -np.inf
        choice = choose(ranked, t, ~done)
        next_tokens = np.full(N, eos_id, dtype=np.int64)
        for n in np.flatnonzero(~done):
            v = int(choice[n])
            tokens[n].append(v)
            lps[n].append(float(lp[n, v]))
            next_tokens[n] = v
            if v == eos_id:
                done[n] = True
        if done.all():
            break
    out = []
    for n in range(N):
        log_prob = 0.0
        for x in lps[n]:
            log_prob += x
        out.append(Hypothesis(tuple(tokens[n]), log_prob, log_prob, tuple(lps[n])))
    return out


def _check_decode_args(step, batch_size, bos_id, eos_id, max_len, min_len):
    _check_callable(step, "step")
    max_len = _check_int(max_len, "max_len", 1)
    min_len = _check_int(min_len, "min_len", 0)
    if min_len > max_len:
        raise ValueError(f"min_len: must be <= max_len = {max_len}, got {min_len}")
    return (_check_int(batch_size, "batch_size", 0), _check_int(bos_id, "bos_id", 0),
            _check_int(eos_id, "eos_id", 0), max_len, min_len)


def greedy_search(step: Callable, state: Any, *, batch_size: int, bos_id: int, eos_id: int,
                  max_len: int, min_len: int = 0, repetition_penalty: float = 1.0,
                  no_repeat_ngram_size: int = 0, suppress_tokens=None, bad_words=None,
                  prefix=None) -> list[Hypothesis]:
    """Greedy decoding: at every step take the most likely token (ties: the lowest token id).

    ``step(tokens (N,), state) -> (log_probs (N, V), state)`` (one row per item; no reordering).
    ``<EOS>`` is not eligible while ``T_y < min_len``. A row stops at ``<EOS>`` or after
    ``max_len`` tokens. The decoding controls are those of :func:`beam_search`, applied to the
    scores the step returns (so a step that returns raw logits gets Hugging Face's greedy
    repetition penalty). Returns one :class:`Hypothesis` per item; its ``score`` is the raw
    ``log_prob`` (no length normalisation: greedy search does not rank) and its log-probs are the
    step's own. Equal to ``beam_search(..., beam_size=1)`` in tokens and log-probs.
    """
    N, bos_id, eos_id, max_len, min_len = _check_decode_args(step, batch_size, bos_id, eos_id,
                                                             max_len, min_len)
    controls = _Controls(N, repetition_penalty=repetition_penalty,
                         no_repeat_ngram_size=no_repeat_ngram_size, suppress_tokens=suppress_tokens,
                         bad_words=bad_words, prefix=prefix)
    if N == 0:
        return []

    def choose(lp, t, active):
        return np.argmax(lp, axis=1)  # first maximum: lowest token id

    return _decode(step, state, batch_size=N, bos_id=bos_id, eos_id=eos_id, max_len=max_len,
                   choose=choose, min_len=min_len, controls=controls)


def _check_top_p(top_p):
    if top_p is None:
        return None
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float, np.number)):
        raise TypeError(f"top_p: expected a real number, got {type(top_p).__name__}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p: must be in (0, 1], got {top_p}")
    return float(top_p)


def _generators(seed, n_items: int):
    """``draw(n_rows) -> (n_rows,)`` uniforms: one generator for the batch, or one per item when
    ``seed`` is a sequence of ``n_items`` seeds (then an item's sample does not depend on the
    rest of the batch)."""
    if isinstance(seed, (list, tuple)) or (isinstance(seed, np.ndarray) and seed.ndim == 1):
        if len(seed) != n_items:
            raise ValueError(f"seed: expected one seed per item ({n_items}), got {len(seed)}")
        rngs = [np.random.default_rng(s) for s in seed]
        return lambda rows: np.array([g.random() for g in rngs])
    rng = np.random.default_rng(seed)
    return rng.random


def sample(step: Callable, state: Any, *, batch_size: int, bos_id: int, eos_id: int, max_len: int,
           temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
           seed=None, min_len: int = 0, repetition_penalty: float = 1.0,
           no_repeat_ngram_size: int = 0, suppress_tokens=None, bad_words=None,
           prefix=None) -> list[Hypothesis]:
    """Ancestral sampling (docs/ops.md §3.3): draw each next token from
    ``softmax(log_probs / temperature)``, restricted to the ``top_k`` most likely tokens when given
    (ties at the cut: the lowest token ids are kept; ``top_k > V`` keeps all), then to the nucleus
    of mass ``top_p`` when given (:func:`seqkernels.reference.search.top_p_mask`: the most likely
    tokens, in order, while the mass before each is ``< top_p``), feed it back, stop at
    ``<EOS>`` or after ``max_len`` tokens. The decoding controls and ``min_len`` are those of
    :func:`greedy_search`, applied before the temperature (Hugging Face's order).

    Reproducible: with an int (or None) ``seed``, one ``numpy.random.default_rng(seed)`` draws, on
    the host, one uniform number per row per step (finished rows included); with a sequence of
    ``N`` seeds, item ``n`` has its own generator drawing one number per step, so its sample is
    the same whatever else is in the batch. The token is the first one whose cumulative
    probability exceeds the number; the same seed, model and batch give the same samples on any
    device. Returns one :class:`Hypothesis` per item whose ``log_prob``, ``score`` and
    ``step_log_probs`` are the model's own log-probs (temperature 1, no top-k, no controls), so
    they equal :func:`score` of the tokens.
    """
    N, bos_id, eos_id, max_len, min_len = _check_decode_args(step, batch_size, bos_id, eos_id,
                                                             max_len, min_len)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.number)):
        raise TypeError(f"temperature: expected a real number, got {type(temperature).__name__}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature: must be finite and > 0, got {temperature}")
    if top_k is not None:
        top_k = _check_int(top_k, "top_k", 1)
    top_p = _check_top_p(top_p)
    controls = _Controls(N, repetition_penalty=repetition_penalty,
                         no_repeat_ngram_size=no_repeat_ngram_size, suppress_tokens=suppress_tokens,
                         bad_words=bad_words, prefix=prefix)
    draw = _generators(seed, N)
    if N == 0:
        return []

    def choose(lp, t, active):
        u = draw(lp.shape[0])
        choice = np.zeros(lp.shape[0], dtype=np.int64)
        for n in np.flatnonzero(active):
            row = lp[n] / temperature
            if top_k is not None and top_k < row.size:
                keep = np.argsort(-lp[n], kind="stable")[:top_k]
                masked = np.full_like(row, -np.inf)
                masked[keep] = row[keep]
                row = masked
            m = row.max()
            if m == -np.inf:
                raise ValueError(f"step: row {n} has no token with a finite log-prob at step {t}")
            if top_p is not None:
                row = np.where(top_p_mask(np.exp(row - m), top_p), row, -np.inf)
            cdf = np.cumsum(np.exp(row - m))
            choice[n] = min(int(np.searchsorted(cdf, u[n] * cdf[-1], side="right")), row.size - 1)
        return choice

    return _decode(step, state, batch_size=N, bos_id=bos_id, eos_id=eos_id, max_len=max_len,
                   choose=choose, min_len=min_len, controls=controls)


# ---------------------------------------------------------------------------------------------
# Scoring and error analysis
# ---------------------------------------------------------------------------------------------


def _prepare_sequences(sequences, eos_id, name: str) -> list[list[int]]:
    if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
        sequences = list(sequences)
    if not isinstance(sequences, (list, tuple)):
        raise TypeError(f"{name}: expected a list of token sequences, got {type(sequences).__name__}")
    seqs = [_sequence_tokens(s, f"{name}[{i}]") for i, s in enumerate(sequences)]
    if eos_id is not None:
        seqs = [s if s and s[-1] == eos_id else s + [eos_id] for s in seqs]
    return seqs


def _score_tokens(step, state, seqs: list[list[int]], bos_id: int, eos_id, name: str) -> np.ndarray:
    N = len(seqs)
    total = np.zeros(N)
    T = max((len(s) for s in seqs), default=0)
    if N == 0 or T == 0:
        return total
    xp = _state_module(state)
    next_tokens = np.full(N, bos_id, dtype=np.int64)
    vocab = None
    for t in range(T):
        log_probs, state, xp = _call_step(step, xp.asarray(next_tokens), state, N, vocab, t)
        if vocab is None:
            vocab = int(log_probs.shape[1])
            _check_vocab_ids(vocab, bos_id=bos_id, eos_id=eos_id)
            for i, s in enumerate(seqs):
                bad = [v for v in s if v >= vocab]
                if bad:
                    raise ValueError(f"{name}[{i}]: token {bad[0]} is outside the vocabulary [0, {vocab})")
        active = np.array([len(s) > t for s in seqs])
        toks = np.array([s[t] if len(s) > t else bos_id for s in seqs], dtype=np.int64)
        picked = _to_host(log_probs[xp.arange(N), xp.asarray(toks)]).astype(np.float64)
        total[active] += picked[active]
        next_tokens = toks
    return total


def score(step: Callable, state: Any, sequences, *, bos_id: int, eos_id: int | None = None) -> np.ndarray:
    """``log P(y | x)`` of given sequences by teacher forcing: ``sum_t log P(y_t | x, y_<t)``.

    ``sequences``: one sequence of token ids per item (without ``<BOS>``; a :class:`Hypothesis`
    or a ``beam_search`` result list is accepted too); ``state`` has one row per item. With
    ``eos_id`` given, ``<EOS>`` is appended to every sequence that does not already end in it, so
    the probability of stopping is included (as for a finished hypothesis). Returns a float64
    array ``(N,)``, summed left to right in float64 (equal to a hypothesis' ``log_prob``).
    """
    _check_callable(step, "step")
    bos_id = _check_int(bos_id, "bos_id", 0)
    if eos_id is not None:
        eos_id = _check_int(eos_id, "eos_id", 0)
    seqs = _prepare_sequences(sequences, eos_id, "sequences")
    return _score_tokens(step, state, seqs, bos_id, eos_id, "sequences")


@dataclass(frozen=True)
class ErrorAnalysis:
    """Result of :func:`error_analysis`.

    ``verdicts[i]`` is "search" (the model prefers the reference: beam search is at fault),
    "model" (the model prefers the output, or ties: the model is at fault) or "correct" (the output
    is the reference; not an error). The scores are normalised as for ranking, the log-probs raw.
    ``search_fraction`` and ``model_fraction`` are fractions of the errors (verdict not "correct"),
    both 0.0 when there is none.
    """

    verdicts: tuple
    reference_log_probs: np.ndarray
    output_log_probs: np.ndarray
    reference_scores: np.ndarray
    output_scores: np.ndarray

    @property
    def n_search(self) -> int:
        return sum(v == "search" for v in self.verdicts)

    @property
    def n_model(self) -> int:
        return sum(v == "model" for v in self.verdicts)

    @property
    def n_errors(self) -> int:
        return self.n_search + self.n_model

    @property
    def search_fraction(self) -> float:
        return self.n_search / self.n_errors if self.n_errors else 0.0

    @property
    def model_fraction(self) -> float:
        return self.n_model / self.n_errors if self.n_errors else 0.0


def error_analysis(step: Callable, state: Any, references, outputs, *, length_penalty: float = 0.7,
                   penalty: str = "average", bos_id: int, eos_id: int | None = None) -> ErrorAnalysis:
    """Beam-search error analysis (docs/ops.md §3.3).

    For each item compare the model's score of the human reference ``y*`` with that of the search
    output ``ŷ`` (a token sequence, a :class:`Hypothesis` or a ``beam_search`` result list, whose
    best hypothesis is taken), both computed by :func:`score` and normalised exactly as beam search
    ranks them (``length_penalty``, ``penalty``, ``T_y`` counting ``<EOS>``; with ``eos_id`` given it
    is appended where missing, so pass the same ``eos_id`` the search used). If the reference scores
    higher, the search is at fault (it missed a better sequence the model prefers); otherwise
    (``<=``) the model is. Identical sequences are "correct" and count as no error. ``state`` has one
    row per item and is used for both scorings (``step`` must not modify it in place).
    """
    _check_callable(step, "step")
    alpha = _check_penalty(length_penalty, penalty)
    bos_id = _check_int(bos_id, "bos_id", 0)
    if eos_id is not None:
        eos_id = _check_int(eos_id, "eos_id", 0)
    refs = _prepare_sequences(references, eos_id, "references")
    outs = _prepare_sequences(outputs, eos_id, "outputs")
    if len(refs) != len(outs):
        raise ValueError(f"outputs: {len(outs)} sequences for {len(refs)} references")
    for name, seqs in (("references", refs), ("outputs", outs)):
        for i, s in enumerate(seqs):
            if not s:
                raise ValueError(f"{name}[{i}]: empty sequence (T_y must be >= 1)")
    ref_lp = _score_tokens(step, state, refs, bos_id, eos_id, "references")
    out_lp = _score_tokens(step, state, outs, bos_id, eos_id, "outputs")
    ref_sc = np.array([normalised_score(s, len(y), alpha, penalty) for s, y in zip(ref_lp, refs)])
    out_sc = np.array([normalised_score(s, len(y), alpha, penalty) for s, y in zip(out_lp, outs)])
    verdicts = tuple("correct" if r == o else ("search" if rs > os_ else "model")
                     for r, o, rs, os_ in zip(refs, outs, ref_sc, out_sc))
    return ErrorAnalysis(verdicts, ref_lp, out_lp, ref_sc, out_sc)
