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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .ops import beam_step as _beam_step
from .reference.search import (
    PENALTIES,
    Hypothesis,
    best_possible_score,
    control_scores,
    coverage_penalty,
    draw_candidates,
    ngram_hash_column,
    normalised_score,
    top_p_mask,
    uniform_draws,
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
            raise ValueError(f"{name}: {value} is outside the vocabulary [0, {vocab}) of the step's log-probs")


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
        raise ValueError(
            f"{name}: the default reorder gathers arrays along axis 0, got a "
            f"{type(state).__name__}; pass reorder= for other states"
        )
    if len(shape) == 0 or shape[0] != rows:
        raise ValueError(
            f"{name}: has shape {tuple(shape)}, expected {rows} rows along axis 0 (batch_size * beam_size)"
        )


def _gather_rows(state, index):
    """Default reorder: ``x[index]`` along axis 0 of every array leaf; structure and None kept."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(_gather_rows(s, index) for s in state)
    return state[index]


def _call_step(step, tokens, state, rows: int, vocab: int | None, t: int, attention: bool = False):
    """Call the model and check what it returned: ``(log_probs (rows, V), state)``, or with
    ``attention`` ``(log_probs, state, attention (rows, S))``. Returns ``(log_probs, state, xp,
    attention)``, the attention on the host in float64 (None without)."""
    out = step(tokens, state)
    want = 3 if attention else 2
    if not isinstance(out, tuple) or len(out) != want:
        what = "(log_probs, state, attention)" if attention else "a pair (log_probs, state)"
        raise ValueError(
            f"step: must return {what}, got {type(out).__name__}"
            + (f" of length {len(out)}" if isinstance(out, tuple) else "")
        )
    log_probs, state = out[0], out[1]
    att = _check_attention(out[2], rows, t) if attention else None
    if not _is_cupy(log_probs):
        if hasattr(log_probs, "__cuda_array_interface__"):
            raise TypeError(
                f"step: returned a GPU array of type {type(log_probs).__name__}; return CuPy or NumPy arrays"
            )
        log_probs = np.asarray(log_probs)
    xp = _array_module(log_probs)
    shape = tuple(log_probs.shape)
    if len(shape) != 2 or shape[0] != rows:
        raise ValueError(f"step: returned log_probs of shape {shape} at step {t}, expected ({rows}, V)")
    if vocab is not None and shape[1] != vocab:
        raise ValueError(f"step: returned log_probs with V = {shape[1]} at step {t}, but V = {vocab} before")
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
    return log_probs, state, xp, att


def _check_attention(att, rows: int, t: int) -> np.ndarray:
    """The step's attention weights ``(rows, S)``, finite and ``>= 0``, as host float64."""
    try:
        att = _to_host(att).astype(np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"step: returned attention of type {type(att).__name__}, expected an array (rows, S)") from None
    if att.ndim != 2 or att.shape[0] != rows or att.shape[1] < 1:
        raise ValueError(f"step: returned attention of shape {att.shape} at step {t}, expected ({rows}, S)")
    if not (np.isfinite(att).all() and (att >= 0).all()):
        raise ValueError(f"step: returned attention weights that are negative or not finite at step {t}")
    return att


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

    def __init__(
        self,
        n_items: int,
        *,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        suppress_tokens=None,
        bad_words=None,
        prefix=None,
    ):
        if isinstance(repetition_penalty, bool) or not isinstance(repetition_penalty, (int, float, np.number)):
            raise TypeError(f"repetition_penalty: expected a real number, got {type(repetition_penalty).__name__}")
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
                raise ValueError(f"prefix: expected one token sequence (or None) per item, {n_items} in all")
            self.prefix = [[] if p is None else _token_list(p, f"prefix[{i}]") for i, p in enumerate(prefix)]
        self.needs_history = self.penalty != 1.0 or self.ngram > 0 or bool(self.words)

    def check_vocab(self, vocab: int) -> None:
        ids = [("suppress_tokens", v) for v in self.suppress]
        ids += [(f"bad_words[{i}]", v) for i, w in enumerate(self.words) for v in w]
        ids += [(f"prefix[{i}]", v) for i, p in enumerate(self.prefix or ()) for v in p]
        for name, v in ids:
            if v >= vocab:
                raise ValueError(f"{name}: token {v} is outside the vocabulary [0, {vocab}) of the step's log-probs")

    def banned(self, history: np.ndarray) -> np.ndarray | None:
        """``(R, W)`` int32: suppressed tokens, then each multi-token bad word's last token where
        the row's history ends with the word's other tokens (``-1`` elsewhere); None if none."""
        R, L = history.shape
        cols = [np.full(R, v, dtype=np.int32) for v in self.suppress]
        for w in self.words:
            k = len(w) - 1
            hit = np.all(history[:, L - k :] == np.asarray(w[:-1]), axis=1) if L >= k else np.zeros(R, dtype=bool)
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
            kw.update(history=history, repetition_penalty=self.penalty, no_repeat_ngram_size=self.ngram)
            if hashes is not None:
                kw["history_hash"] = hashes
        banned = self.banned(history)
        if banned is not None:
            kw["banned"] = banned
        forced = self.forced(t, rows_per_item)
        if forced is not None:
            kw["forced"] = forced
        return kw

    def log_probs(self, lp: np.ndarray, history: np.ndarray, t: int, *, eos_id: int, forbid_eos: bool) -> np.ndarray:
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
    col = ngram_hash_column(history, n) if L >= n - 1 else np.zeros(history.shape[0], dtype=np.uint64)
    return np.concatenate([hashes, col[:, None]], axis=1)


# ---------------------------------------------------------------------------------------------
# Beam search
# ---------------------------------------------------------------------------------------------


def _check_real(value, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value}")
    return float(value)


@dataclass(frozen=True)
class _BeamConfig:
    """The validated arguments of :func:`beam_search`. The search runs over *units*: unit
    ``n*G + g`` is group ``g`` of item ``n`` (``G = groups``; without groups, the item), with
    ``group_size = B/G`` beams whose rows ``unit*group_size + j`` are the item's rows in order."""

    items: int
    beams: int
    n_best: int
    max_len: int
    min_len: int
    bos_id: int
    eos_id: int
    alpha: float
    penalty: str
    exact: bool  # early_stopping == "exact"
    target: int  # finished hypotheses a unit needs (patience)
    controls: _Controls
    reorder: Callable | None  # None: _gather_rows, with the state's rows checked
    step_op: Callable
    groups: int
    diversity: float
    beta: float  # coverage penalty
    source_lengths: np.ndarray | None
    sampling_topk: int
    temperature: float
    seed: Any

    @property
    def group_size(self) -> int:
        return self.beams // self.groups

    @property
    def units(self) -> int:
        return self.items * self.groups

    @property
    def rows(self) -> int:
        return self.items * self.beams

    @property
    def pool(self) -> int:
        """Candidates per unit the step keeps: ``2*group_size``, or the sampling pool."""
        return max(self.sampling_topk, 2 * self.group_size)

    @property
    def sampling(self) -> bool:
        return self.sampling_topk > 2 * self.group_size

    @classmethod
    def validate(
        cls,
        *,
        batch_size,
        beam_size,
        n_best,
        max_len,
        min_len,
        bos_id,
        eos_id,
        length_penalty,
        penalty,
        early_stopping,
        patience,
        reorder,
        step_op,
        num_beam_groups,
        diversity_penalty,
        coverage_penalty,
        source_lengths,
        sampling_topk,
        sampling_temperature,
        seed,
        **controls,
    ) -> _BeamConfig:
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
        controls = _Controls(N, **controls)
        G = _check_int(num_beam_groups, "num_beam_groups", 1)
        if B % G:
            raise ValueError(f"num_beam_groups: must divide beam_size = {B}, got {G}")
        target = _check_patience(patience, B // G)
        diversity = _check_real(diversity_penalty, "diversity_penalty")
        beta = _check_real(coverage_penalty, "coverage_penalty")
        if beta < 0:
            raise ValueError(f"coverage_penalty: must be >= 0, got {beta}")
        if source_lengths is not None:
            source_lengths = np.asarray(
                [_check_int(v, f"source_lengths[{i}]", 1) for i, v in enumerate(source_lengths)], dtype=np.int64
            )
            if source_lengths.shape != (N,):
                raise ValueError(f"source_lengths: expected one length per item ({N}), got {source_lengths.size}")
        sampling_topk = _check_int(sampling_topk, "sampling_topk", 1)
        temperature = _check_real(sampling_temperature, "sampling_temperature")
        if temperature <= 0:
            raise ValueError(f"sampling_temperature: must be > 0, got {temperature}")
        _check_callable(reorder or _gather_rows, "reorder")
        step_op = _beam_step if step_op is None else step_op
        _check_callable(step_op, "step_op")
        return cls(
            N,
            B,
            n_best,
            max_len,
            min_len,
            bos_id,
            eos_id,
            alpha,
            penalty,
            early_stopping == "exact",
            target,
            controls,
            reorder,
            step_op,
            G,
            diversity,
            beta,
            source_lengths,
            sampling_topk,
            temperature,
            seed,
        )

    def score(self, log_prob: float, length: int, coverage, item: int) -> float:
        """The ranking score of a finished hypothesis (length and coverage penalties)."""
        s = normalised_score(log_prob, length, self.alpha, self.penalty)
        if self.beta:
            n_src = None if self.source_lengths is None else int(self.source_lengths[item])
            s += coverage_penalty(coverage[:n_src], self.beta)
        return s


def _select_rows(kw: dict, index) -> dict:
    """The step keywords of the rows ``index`` only (None: all rows)."""
    if index is None:
        return kw
    return {k: (v[index] if k in ("history", "history_hash", "banned", "forced") else v) for k, v in kw.items()}


class _Beams:
    """The search's state on the host: every unit's live beams - running raw scores ``(U, b)``
    and per beam its tokens, log-probs, n-gram hashes and source coverage ``(U, b, t)`` (``b``
    beams per unit) - its finished hypotheses and whether it is done. Each step:
    :meth:`advance` (expand every unit and keep its new beams), then :meth:`stop`."""

    def __init__(self, cfg: _BeamConfig):
        self.cfg = cfg
        U, b = cfg.units, cfg.group_size
        self.scores = np.full((U, b), -np.inf)
        self.scores[:, 0] = 0.0
        self.tokens = np.zeros((U, b, 0), dtype=np.int64)
        self.log_probs = np.zeros((U, b, 0))
        self.hashes = np.zeros((U, b, 0), dtype=np.uint64)
        self.coverage = None  # (U, b, S) once the first attention is seen
        self.finished: list[list[Hypothesis]] = [[] for _ in range(U)]
        self.done = np.zeros(U, dtype=bool)
        self.src = np.tile(np.arange(b), (U, 1))  # source beam of every new beam
        self.next_tokens = np.full(cfg.rows, cfg.bos_id, dtype=np.int64)
        self.draw = uniform_draws(cfg.seed, cfg.items, 2 * cfg.beams) if cfg.sampling else None

    @property
    def all_done(self) -> bool:
        return bool(self.done.all())

    def reorder_index(self) -> np.ndarray:
        """``(N*B,)``: the row every new beam continues."""
        b = self.cfg.group_size
        return (np.arange(self.cfg.units)[:, None] * b + self.src).reshape(self.cfg.rows)

    def finish(self, u: int, tokens, log_probs, log_prob, coverage) -> None:
        log_prob = float(log_prob)
        self.finished[u].append(
            Hypothesis(
                tuple(int(v) for v in tokens),
                self.cfg.score(log_prob, len(tokens), coverage, u // self.cfg.groups),
                log_prob,
                tuple(float(x) for x in log_probs),
            )
        )

    def _step_kwargs(self, t: int) -> dict:
        cfg = self.cfg
        hashes = self.hashes.reshape(cfg.rows, t) if cfg.controls.ngram >= 2 else None
        return cfg.controls.step_kwargs(self.tokens.reshape(cfg.rows, t).astype(np.int32), t, cfg.beams, hashes)

    def _diversify(self, log_probs, xp, taken: list[list[int]], forced):
        """Hamming diversity, in place, on one group's log-probs ``(N*b, V)`` (a copy):
        ``taken[n]`` are the tokens item ``n``'s earlier groups took at this step."""
        b, lam = self.cfg.group_size, self.cfg.diversity
        ri, ti, vals = [], [], []
        for n, toks in enumerate(taken):
            if not toks:
                continue
            tok, count = np.unique(np.asarray(toks, dtype=np.int64), return_counts=True)
            for j in range(b):
                if forced is None or forced[n * b + j] < 0:  # forced rows take the prefix
                    ri.append(np.full(tok.size, n * b + j))
                    ti.append(tok)
                    vals.append(lam * count.astype(np.float64))
        if ri:
            ri, ti, vals = (np.concatenate(a) for a in (ri, ti, vals))
            log_probs[xp.asarray(ri), xp.asarray(ti)] -= xp.asarray(vals, dtype=log_probs.dtype)

    def advance(self, log_probs, attention, t: int, xp) -> None:
        """Expand every unit from the step's log-probs ``(N*B, V)`` (group by group, each seeing
        the tokens its item's earlier groups took), finish its ``<EOS>`` candidates and keep its
        new beams; ``attention`` ``(N*B, S)`` (host, or None) extends the coverage."""
        cfg = self.cfg
        U, b, G = cfg.units, cfg.group_size, cfg.groups
        kw = self._step_kwargs(t)
        uniforms = self.draw().reshape(cfg.items, G, 2 * b) if cfg.sampling else None
        covered = None
        if attention is not None:
            att = attention.reshape(U, b, -1)
            if self.coverage is None:
                self.coverage = np.zeros_like(att)
            covered = self.coverage + att  # every beam's coverage after this step
        self.src = np.tile(np.arange(b), (U, 1))
        new = (
            np.full((U, b), cfg.eos_id, dtype=np.int64),  # tokens (fed to done units, dead beams)
            np.zeros((U, b)),  # their log-probs
            np.full((U, b), -np.inf),
        )  # running scores
        taken = [[] for _ in range(cfg.items)]
        for g in range(G):
            cand = self._expand_group(g, log_probs, kw, taken, xp, t + 1)
            for n in np.flatnonzero(~self.done[g::G]):
                picked = self._pick(cand, n, None if uniforms is None else uniforms[n, g])
                taken[n] += self._take(n * G + g, cand, n, picked, covered, new)
        self._keep(*new, covered, t)

    def _expand_group(self, g: int, log_probs, kw: dict, taken, xp, length: int):
        """The step op on group ``g``'s rows of every item (all rows without groups), after the
        diversity penalty: host arrays ``(cand_score, cand_beam, cand_token, cand_logp)``."""
        cfg, b = self.cfg, self.cfg.group_size
        rows = (
            None if cfg.groups == 1 else (np.arange(cfg.items)[:, None] * cfg.beams + g * b + np.arange(b)).reshape(-1)
        )
        lp = log_probs if rows is None else log_probs[xp.asarray(rows)]  # a copy with groups
        kw = _select_rows(kw, rows)
        if cfg.sampling:
            kw["candidates"] = cfg.pool
        if cfg.diversity and g > 0:
            self._diversify(lp, xp, taken, kw.get("forced"))
        out = cfg.step_op(
            lp,
            xp.asarray(self.scores[g :: cfg.groups], dtype=lp.dtype),
            eos_id=cfg.eos_id,
            log_probs=True,
            forbid_eos=length < cfg.min_len,
            **kw,
        )
        cand = tuple(_to_host(a) for a in out[:4])
        if cand[0].shape != (cfg.items, cfg.pool) or tuple(out[5].shape) != (cfg.items, b):
            raise ValueError(
                f"step_op: returned cand_score {cand[0].shape} and alive "
                f"{tuple(out[5].shape)}, expected ({cfg.items}, {cfg.pool}) and "
                f"({cfg.items}, {b})"
            )
        return cand

    def _pick(self, cand, n: int, uniforms) -> list[int]:
        """Item ``n``'s candidates that go through the rules, in rank order: the first ``2b``, or
        ``2b`` drawn from the top ``sampling_topk``; padding (token ``-1``) dropped."""
        cfg, b = self.cfg, self.cfg.group_size
        c_score, _, c_token, _ = cand
        picked = (
            draw_candidates(c_score[n, : cfg.sampling_topk], 2 * b, uniforms, cfg.temperature)
            if cfg.sampling
            else range(2 * b)
        )
        return [r for r in picked if c_token[n, r] >= 0]

    def _take(self, u: int, cand, n: int, picked, covered, new) -> list[int]:
        """Unit ``u`` (item ``n``'s candidates ``cand``): finish the ``<EOS>`` candidates among
        the first ``b`` picked, in rank order, and write the first ``b`` other ones with a finite
        score into ``new`` as its beams. Returns the tokens of its new beams."""
        cfg, b = self.cfg, self.cfg.group_size
        c_score, c_beam, c_token, c_logp = cand
        new_tok, new_lp, new_scores = new
        for r in picked[:b]:
            if c_token[n, r] == cfg.eos_id and c_score[n, r] > -np.inf:
                k = c_beam[n, r]
                self.finish(
                    u,
                    list(self.tokens[u, k]) + [cfg.eos_id],
                    list(self.log_probs[u, k]) + [c_logp[n, r]],
                    c_score[n, r],
                    None if covered is None else covered[u, k],
                )
        alive = [r for r in picked if c_token[n, r] != cfg.eos_id][:b]
        for j, r in enumerate(alive):
            if c_score[n, r] > -np.inf:  # else a dead beam
                self.src[u, j] = c_beam[n, r]
                new_tok[u, j] = c_token[n, r]
                new_lp[u, j] = c_logp[n, r]
                new_scores[u, j] = c_score[n, r]
        return [int(new_tok[u, j]) for j in range(len(alive)) if new_scores[u, j] > -np.inf]

    def _keep(self, new_tok, new_lp, new_scores, covered, t: int) -> None:
        """Reorder every per-beam array by ``src`` and append this step's column."""
        cfg, src = self.cfg, self.src[:, :, None]
        self.tokens = np.concatenate([np.take_along_axis(self.tokens, src, axis=1), new_tok[:, :, None]], axis=2)
        self.log_probs = np.concatenate([np.take_along_axis(self.log_probs, src, axis=1), new_lp[:, :, None]], axis=2)
        if cfg.controls.ngram >= 2:  # reordered with the beams, then one new column
            self.hashes = _append_hash(
                np.take_along_axis(self.hashes, src, axis=1).reshape(cfg.rows, t),
                self.tokens.reshape(cfg.rows, t + 1),
                cfg.controls.ngram,
            ).reshape(cfg.units, cfg.group_size, t + 1)
        if covered is not None:
            self.coverage = np.take_along_axis(covered, src, axis=1)
        self.scores = new_scores
        self.next_tokens = new_tok.reshape(cfg.rows)

    def stop(self, length: int) -> None:
        """The stopping rules, per unit not yet done, after the step that made ``length`` tokens."""
        cfg = self.cfg
        for u in np.flatnonzero(~self.done):
            live = np.flatnonzero(self.scores[u] > -np.inf)
            if length == cfg.max_len:  # live hypotheses end as they stand
                for j in live:
                    self.finish(
                        u,
                        self.tokens[u, j],
                        self.log_probs[u, j],
                        self.scores[u, j],
                        None if self.coverage is None else self.coverage[u, j],
                    )
                self.done[u] = True
            elif live.size == 0:
                self.done[u] = True
            elif len(self.finished[u]) >= cfg.target:
                self.done[u] = not cfg.exact or self._bound(u, live, length) <= self._kth(u)

    def _kth(self, u: int) -> float:
        return sorted((h.score for h in self.finished[u]), reverse=True)[self.cfg.target - 1]

    def _bound(self, u: int, live, length: int) -> float:
        """The best normalised score a live beam of unit ``u`` can still reach (the coverage
        penalty is ``<= 0``, so it only lowers it)."""
        cfg = self.cfg
        return max(
            best_possible_score(
                self.scores[u, j],
                length,
                max_len=cfg.max_len,
                min_len=cfg.min_len,
                alpha=cfg.alpha,
                penalty=cfg.penalty,
            )
            for j in live
        )

    def results(self) -> list[list[Hypothesis]]:
        """Per item, the best ``n_best`` of its groups' best ``group_size`` each."""
        cfg, out = self.cfg, []
        for n in range(cfg.items):
            offers = [
                h
                for u in range(n * cfg.groups, (n + 1) * cfg.groups)
                for h in sorted(self.finished[u], key=lambda h: -h.score)[: cfg.group_size]
            ]
            out.append(sorted(offers, key=lambda h: -h.score)[: cfg.n_best])
        return out


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
    num_beam_groups: int = 1,
    diversity_penalty: float = 0.0,
    coverage_penalty: float = 0.0,
    source_lengths=None,
    sampling_topk: int = 1,
    sampling_temperature: float = 1.0,
    seed=None,
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
            a control is on) are NumPy; sampling adds ``candidates``.

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

    Diverse beam search, coverage, sampling (exact semantics and differences from Hugging Face
    and CTranslate2: :mod:`seqkernels.reference.search`)
        num_beam_groups, diversity_penalty: ``G`` dividing ``B`` and ``lambda``. The ``B`` beams
            of an item form ``G`` groups of ``B/G``, each a beam search of its own (its own
            finished hypotheses and stopping rule, ``K = max(1, ceil(patience * B/G))``), run in
            order at every step; group ``g``'s log-probs lose ``lambda`` per time a token was
            taken at this step by the item's earlier groups (Hugging Face's Hamming diversity;
            the penalty counts in ``log_prob`` and ``score``). An item returns the best
            ``n_best`` of its groups' best ``B/G`` each. Costs one copy of the log-probs a step.
        coverage_penalty, source_lengths: ``beta >= 0`` (GNMT); ``step`` must then return
            ``(log_probs, state, attention (N*B, S))``, the attention behind each row's
            log-probs. A finished hypothesis ranks by ``log_prob / lp(T_y) + beta * sum_i
            log(min(c_i, 1))``, ``c_i`` the attention source position ``i`` got over its steps,
            ``i < source_lengths[n]`` (all ``S`` by default).
        sampling_topk, sampling_temperature, seed: with ``k > 2B/G`` each step draws, per item
            and group, ``2B/G`` distinct candidates from its top ``k`` (by running score, after
            the controls; the fused step keeps ``k`` candidates instead of ``2B/G``) with
            probabilities ``softmax(score / temperature)``, then applies the usual rules to them
            in rank order; ``k <= 2B/G`` (``1``, the default) is plain beam search. ``seed`` as
            in :func:`sample`: an int, or one per item (an item's search is then independent of
            the batch).

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
    other than ``(log_probs (N*B, V), state)`` or NaN log-probs; ``num_beam_groups`` that does not
    divide ``B``, a non-finite ``diversity_penalty``, a negative ``coverage_penalty``, an attention
    that is not ``(N*B, S)`` with finite weights ``>= 0`` or shorter than ``source_lengths``,
    ``sampling_topk < 1``, ``sampling_temperature <= 0`` and a seed list that is not one per item.

    Structure: :class:`_BeamConfig` validates the arguments once; :class:`_Beams` holds the
    search's state, and each step is ``advance`` (expand, finish ``<EOS>`` candidates, keep the new
    beams) then ``stop`` (the stopping rules); the loop below is the algorithm.
    """
    cfg = _BeamConfig.validate(
        batch_size=batch_size,
        beam_size=beam_size,
        n_best=n_best,
        max_len=max_len,
        min_len=min_len,
        bos_id=bos_id,
        eos_id=eos_id,
        length_penalty=length_penalty,
        penalty=penalty,
        early_stopping=early_stopping,
        patience=patience,
        reorder=reorder,
        step_op=step_op,
        num_beam_groups=num_beam_groups,
        diversity_penalty=diversity_penalty,
        coverage_penalty=coverage_penalty,
        source_lengths=source_lengths,
        sampling_topk=sampling_topk,
        sampling_temperature=sampling_temperature,
        seed=seed,
        repetition_penalty=repetition_penalty,
        no_repeat_ngram_size=no_repeat_ngram_size,
        suppress_tokens=suppress_tokens,
        bad_words=bad_words,
        prefix=prefix,
    )
    _check_callable(step, "step")
    if cfg.items == 0:
        return []
    if cfg.reorder is None:
        _check_state_rows(state, cfg.rows, "state")
    xp = _state_module(state)
    beams = _Beams(cfg)
    vocab = None
    for t in range(cfg.max_len):
        log_probs, state, xp, attention = _call_step(
            step, xp.asarray(beams.next_tokens), state, cfg.rows, vocab, t, attention=bool(cfg.beta)
        )
        if vocab is None:
            vocab = int(log_probs.shape[1])
            _check_vocab_ids(vocab, bos_id=cfg.bos_id, eos_id=cfg.eos_id)
            cfg.controls.check_vocab(vocab)
        if cfg.reorder is None:
            _check_state_rows(state, cfg.rows, f"step: returned state (step {t})")
        if (
            attention is not None
            and cfg.source_lengths is not None
            and int(cfg.source_lengths.max()) > attention.shape[1]
        ):
            raise ValueError(
                f"source_lengths: {int(cfg.source_lengths.max())} exceeds the "
                f"{attention.shape[1]} source positions of the step's attention"
            )
        beams.advance(log_probs, attention, t, xp)
        beams.stop(t + 1)
        if beams.all_done:
            break
        state = (cfg.reorder or _gather_rows)(state, xp.asarray(beams.reorder_index()))
    return beams.results()


# ---------------------------------------------------------------------------------------------
# Greedy search and sampling
# ---------------------------------------------------------------------------------------------


def _decode(
    step, state, *, batch_size, bos_id, eos_id, max_len, choose, min_len=0, controls: _Controls | None = None
) -> list[Hypothesis]:
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
        log_probs, state, xp, _ = _call_step(step, xp.asarray(next_tokens), state, N, vocab, t)
        if vocab is None:
            vocab = int(log_probs.shape[1])
            _check_vocab_ids(vocab, bos_id=bos_id, eos_id=eos_id)
            if controls is not None:
                controls.check_vocab(vocab)
        lp = _to_host(log_probs).astype(np.float64)
        ranked = lp
        if controls is not None:
            # finished rows have no more tokens: pad with EOS (their choice is ignored)
            history = np.array([toks + [eos_id] * (t - len(toks)) for toks in tokens], dtype=np.int64).reshape(N, t)
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
    return (
        _check_int(batch_size, "batch_size", 0),
        _check_int(bos_id, "bos_id", 0),
        _check_int(eos_id, "eos_id", 0),
        max_len,
        min_len,
    )


def greedy_search(
    step: Callable,
    state: Any,
    *,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    max_len: int,
    min_len: int = 0,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    suppress_tokens=None,
    bad_words=None,
    prefix=None,
) -> list[Hypothesis]:
    """Greedy decoding: at every step take the most likely token (ties: the lowest token id).

    ``step(tokens (N,), state) -> (log_probs (N, V), state)`` (one row per item; no reordering).
    ``<EOS>`` is not eligible while ``T_y < min_len``. A row stops at ``<EOS>`` or after
    ``max_len`` tokens. The decoding controls are those of :func:`beam_search`, applied to the
    scores the step returns (so a step that returns raw logits gets Hugging Face's greedy
    repetition penalty). Returns one :class:`Hypothesis` per item; its ``score`` is the raw
    ``log_prob`` (no length normalisation: greedy search does not rank) and its log-probs are the
    step's own. Equal to ``beam_search(..., beam_size=1)`` in tokens and log-probs.
    """
    N, bos_id, eos_id, max_len, min_len = _check_decode_args(step, batch_size, bos_id, eos_id, max_len, min_len)
    controls = _Controls(
        N,
        repetition_penalty=repetition_penalty,
        no_repeat_ngram_size=no_repeat_ngram_size,
        suppress_tokens=suppress_tokens,
        bad_words=bad_words,
        prefix=prefix,
    )
    if N == 0:
        return []

    def choose(lp, t, active):
        return np.argmax(lp, axis=1)  # first maximum: lowest token id

    return _decode(
        step,
        state,
        batch_size=N,
        bos_id=bos_id,
        eos_id=eos_id,
        max_len=max_len,
        choose=choose,
        min_len=min_len,
        controls=controls,
    )


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
    rest of the batch); :func:`seqkernels.reference.search.uniform_draws` with one a step."""
    draw = uniform_draws(seed, n_items, 1)
    return lambda rows: draw()[:, 0]


def sample(
    step: Callable,
    state: Any,
    *,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    max_len: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed=None,
    min_len: int = 0,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    suppress_tokens=None,
    bad_words=None,
    prefix=None,
) -> list[Hypothesis]:
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
    N, bos_id, eos_id, max_len, min_len = _check_decode_args(step, batch_size, bos_id, eos_id, max_len, min_len)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.number)):
        raise TypeError(f"temperature: expected a real number, got {type(temperature).__name__}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature: must be finite and > 0, got {temperature}")
    if top_k is not None:
        top_k = _check_int(top_k, "top_k", 1)
    top_p = _check_top_p(top_p)
    controls = _Controls(
        N,
        repetition_penalty=repetition_penalty,
        no_repeat_ngram_size=no_repeat_ngram_size,
        suppress_tokens=suppress_tokens,
        bad_words=bad_words,
        prefix=prefix,
    )
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

    return _decode(
        step,
        state,
        batch_size=N,
        bos_id=bos_id,
        eos_id=eos_id,
        max_len=max_len,
        choose=choose,
        min_len=min_len,
        controls=controls,
    )


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
        log_probs, state, xp, _ = _call_step(step, xp.asarray(next_tokens), state, N, vocab, t)
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


def error_analysis(
    step: Callable,
    state: Any,
    references,
    outputs,
    *,
    length_penalty: float = 0.7,
    penalty: str = "average",
    bos_id: int,
    eos_id: int | None = None,
) -> ErrorAnalysis:
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
    verdicts = tuple(
        "correct" if r == o else ("search" if rs > os_ else "model")
        for r, o, rs, os_ in zip(refs, outs, ref_sc, out_sc)
    )
    return ErrorAnalysis(verdicts, ref_lp, out_lp, ref_sc, out_sc)
