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
    normalised_score,
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
            (default). The arrays given to it live on the log-probs' device.

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
        if reorder is None:
            _check_state_rows(state, rows, f"step: returned state (step {t})")

        out = step_op(log_probs, xp.asarray(beam_scores, dtype=log_probs.dtype), eos_id=eos_id,
                      log_probs=True, forbid_eos=length < min_len)
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
        beam_scores = new_scores

        for n in np.flatnonzero(~done):  # stopping rules
            live = np.flatnonzero(beam_scores[n] > -np.inf)
            if length == max_len:
                for j in live:
                    finish(n, hist_tok[n, j], hist_lp[n, j], beam_scores[n, j], length)
                done[n] = True
            elif live.size == 0:
                done[n] = True
            elif len(finished[n]) >= B:
                if early_stopping is True:
                    done[n] = True
                else:
                    kth = sorted((h.score for h in finished[n]), reverse=True)[B - 1]
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


def _decode(step, state, *, batch_size, bos_id, eos_id, max_len, choose) -> list[Hypothesis]:
    """Shared loop of greedy search and sampling: one row per item, ``choose(lp_host, t, active)``
    returns the next token of every row (only the active rows matter)."""
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
        lp = _to_host(log_probs).astype(np.float64)
        choice = choose(lp, t, ~done)
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


def _check_decode_args(step, batch_size, bos_id, eos_id, max_len):
    _check_callable(step, "step")
    return (_check_int(batch_size, "batch_size", 0), _check_int(bos_id, "bos_id", 0),
            _check_int(eos_id, "eos_id", 0), _check_int(max_len, "max_len", 1))


def greedy_search(step: Callable, state: Any, *, batch_size: int, bos_id: int, eos_id: int,
                  max_len: int, min_len: int = 0) -> list[Hypothesis]:
    """Greedy decoding: at every step take the most likely token (ties: the lowest token id).

    ``step(tokens (N,), state) -> (log_probs (N, V), state)`` (one row per item; no reordering).
    ``<EOS>`` is not eligible while ``T_y < min_len``. A row stops at ``<EOS>`` or after
    ``max_len`` tokens. Returns one :class:`Hypothesis` per item; its ``score`` is the raw
    ``log_prob`` (no length normalisation: greedy search does not rank). Equal to
    ``beam_search(..., beam_size=1)`` in tokens and log-probs.
    """
    N, bos_id, eos_id, max_len = _check_decode_args(step, batch_size, bos_id, eos_id, max_len)
    min_len = _check_int(min_len, "min_len", 0)
    if min_len > max_len:
        raise ValueError(f"min_len: must be <= max_len = {max_len}, got {min_len}")
    if N == 0:
        return []

    def choose(lp, t, active):
        if t + 1 < min_len:
            lp = lp.copy()
            lp[:, eos_id] = -np.inf
        return np.argmax(lp, axis=1)  # first maximum: lowest token id

    return _decode(step, state, batch_size=N, bos_id=bos_id, eos_id=eos_id, max_len=max_len,
                   choose=choose)


def sample(step: Callable, state: Any, *, batch_size: int, bos_id: int, eos_id: int, max_len: int,
           temperature: float = 1.0, top_k: int | None = None, seed=None) -> list[Hypothesis]:
    """Ancestral sampling (docs/ops.md §3.3): draw each next token from
    ``softmax(log_probs / temperature)``, restricted to the ``top_k`` most likely tokens when given
    (ties at the cut: the lowest token ids are kept; ``top_k > V`` keeps all), feed it back, stop at
    ``<EOS>`` or after ``max_len`` tokens.

    Reproducible: one ``numpy.random.default_rng(seed)`` draws, on the host, one uniform number per
    row per step (finished rows included), and the token is the first one whose cumulative
    probability exceeds it; the same seed, model and batch give the same samples on any device.
    Returns one :class:`Hypothesis` per item whose ``log_prob``, ``score`` and ``step_log_probs`` are
    the model's own log-probs (temperature 1, no top-k), so they equal :func:`score` of the tokens.
    """
    N, bos_id, eos_id, max_len = _check_decode_args(step, batch_size, bos_id, eos_id, max_len)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.number)):
        raise TypeError(f"temperature: expected a real number, got {type(temperature).__name__}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature: must be finite and > 0, got {temperature}")
    if top_k is not None:
        top_k = _check_int(top_k, "top_k", 1)
    if N == 0:
        return []
    rng = np.random.default_rng(seed)

    def choose(lp, t, active):
        u = rng.random(lp.shape[0])
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
            cdf = np.cumsum(np.exp(row - m))
            choice[n] = min(int(np.searchsorted(cdf, u[n] * cdf[-1], side="right")), row.size - 1)
        return choice

    return _decode(step, state, batch_size=N, bos_id=bos_id, eos_id=eos_id, max_len=max_len,
                   choose=choose)


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
