"""Beam search (docs/ops.md §3): the reference step, the drivers, greedy search, sampling,
scoring and error analysis, on small deterministic toy models."""

from __future__ import annotations

import numpy as np
import pytest

import seqkernels.search as search_mod
from seqkernels.ops import beam_step
from seqkernels.reference import beam_step as ref_beam_step_exported
from seqkernels.reference.search import (
    Hypothesis,
    best_possible_score,
    log_softmax,
    normalised_score,
)
from seqkernels.reference.search import (
    beam_search as ref_beam_search,
)
from seqkernels.reference.search import (
    beam_step as ref_beam_step,
)
from seqkernels.search import beam_search, error_analysis, greedy_search, sample, score

EOS, BOS = 0, 1
PENALTY_CASES = [("average", 0.0), ("average", 0.7), ("average", 1.5), ("gnmt", 0.7), ("gnmt", 2.0)]


# ---------------------------------------------------------------------------------------------
# Toy models
# ---------------------------------------------------------------------------------------------


class Markov2:
    """Order-2 Markov model with a per-item bias:
    ``log P(v | item, last, prev) = log_softmax(A[last] + C[prev] + D[item])[v]``.

    The state is ``(item_ids, [prev])``: a tuple holding a list, both arrays with one row per beam,
    so the default reorder must gather nested structures; a wrong gather changes the log-probs."""

    def __init__(self, V, n_items, seed, scale=1.5, eos_bias=0.0):
        rng = np.random.default_rng(seed)
        self.V = V
        self.A = rng.normal(scale=scale, size=(V, V))
        self.A[:, EOS] += eos_bias
        self.C = rng.normal(scale=scale, size=(V, V))
        self.D = rng.normal(scale=scale, size=(n_items, V))
        self.calls = 0

    def init_state(self, N, B=1):
        return (np.repeat(np.arange(N), B), [np.full(N * B, BOS, dtype=np.int64)])

    def step(self, tokens, state):
        self.calls += 1
        items, (prev,) = state
        tokens = np.asarray(tokens)
        lp = log_softmax(self.A[tokens] + self.C[prev] + self.D[items])
        return lp, (items, [tokens.copy()])

    def logp(self, item, prefix):
        """Log-probs of the next token after ``prefix`` (generated tokens, no BOS)."""
        last = prefix[-1] if prefix else BOS
        prev = prefix[-2] if len(prefix) >= 2 else BOS
        return log_softmax((self.A[last] + self.C[prev] + self.D[item])[None, :])[0]


class TreeModel:
    """Explicit next-token distributions per prefix (``table[prefix] = probabilities``), uniform
    for prefixes not in the table. The state is the id of every row's current prefix (-1 before
    the first token); the same for every item."""

    def __init__(self, V, table):
        self.V = V
        with np.errstate(divide="ignore"):  # zero probabilities are -inf log-probs
            self.table = {k: np.log(np.asarray(v, float) / np.sum(v)) for k, v in table.items()}
        self.ids = {}
        self.prefixes = []

    def _id(self, prefix):
        if prefix not in self.ids:
            self.ids[prefix] = len(self.prefixes)
            self.prefixes.append(prefix)
        return self.ids[prefix]

    def init_state(self, N, B=1):
        return np.full(N * B, -1, dtype=np.int64)

    def logp(self, item, prefix):
        return self.table.get(tuple(prefix), np.full(self.V, -np.log(self.V)))

    def step(self, tokens, state):
        new = np.empty_like(state)
        lp = np.empty((len(state), self.V))
        for i, (node, tok) in enumerate(zip(state, np.asarray(tokens))):
            prefix = () if node < 0 else self.prefixes[node] + (int(tok),)
            new[i] = self._id(prefix)
            lp[i] = self.logp(0, prefix)
        return lp, new


def exhaustive_best(model, item, *, max_len, min_len, alpha, penalty):
    """The best hypothesis over all sequences: ending in EOS at T_y in [max(min_len, 1), max_len],
    or cut at max_len without EOS. Returns (score, tokens, log_prob)."""
    best = None

    def consider(tokens, log_prob):
        nonlocal best
        s = normalised_score(log_prob, len(tokens), alpha, penalty)
        if best is None or s > best[0]:
            best = (s, tokens, log_prob)

    def expand(prefix, log_prob):
        if len(prefix) == max_len:
            consider(prefix, log_prob)
            return
        lp = model.logp(item, prefix)
        for v in range(model.V):
            if v == EOS:
                if len(prefix) + 1 >= min_len:
                    consider(prefix + (EOS,), log_prob + lp[EOS])
            else:
                expand(prefix + (v,), log_prob + lp[v])

    expand((), 0.0)
    return best


def run_beam(model, N, B, driver=beam_search, **kw):
    kw.setdefault("max_len", 5)
    return driver(model.step, model.init_state(N, B), batch_size=N, beam_size=B, bos_id=BOS, eos_id=EOS, **kw)


def brute_force_step(logp, beam_scores, eos_id):
    """Candidates of one item by sorting Python tuples (-score, flat index)."""
    B, V = logp.shape
    cands = sorted((-(beam_scores[b] + logp[b, v]), b * V + v) for b in range(B) for v in range(V))
    top = cands[: 2 * B]
    out = [(-s, f // V, f % V, logp[f // V, f % V]) for s, f in top]
    finished = [v == eos_id and r < B for r, (_, _, v, _) in enumerate(out)]
    alive = [r for r, (_, _, v, _) in enumerate(out) if v != eos_id][:B]
    return out, finished, alive


# ---------------------------------------------------------------------------------------------
# The reference step
# ---------------------------------------------------------------------------------------------


def test_reference_exported():
    assert ref_beam_step_exported is ref_beam_step


@pytest.mark.parametrize("N,B,V", [(3, 4, 7), (2, 1, 5), (1, 3, 2), (4, 5, 3)])
def test_step_matches_brute_force(N, B, V):
    rng = np.random.default_rng(N * 100 + B * 10 + V)
    logits = rng.normal(size=(N * B, V))
    logits[0, 1] = logits[0, 0]  # an exact tie inside a row
    beam_scores = -rng.random((N, B)) * 3
    beam_scores[0, 1:] = -np.inf  # an item at step 0
    out = ref_beam_step(logits, beam_scores, eos_id=EOS)
    logp = log_softmax(logits)
    for n in range(N):
        cands, finished, alive = brute_force_step(logp[n * B : (n + 1) * B], beam_scores[n], EOS)
        np.testing.assert_array_equal(out.cand_score[n], [c[0] for c in cands])
        np.testing.assert_array_equal(out.cand_beam[n], [c[1] for c in cands])
        np.testing.assert_array_equal(out.cand_token[n], [c[2] for c in cands])
        np.testing.assert_array_equal(out.cand_logp[n], [c[3] for c in cands])
        np.testing.assert_array_equal(out.cand_finished[n], finished)
        np.testing.assert_array_equal(out.alive[n], alive)
    assert out.cand_beam.dtype == out.cand_token.dtype == out.alive.dtype == np.int32
    assert out.cand_finished.dtype == bool and out.cand_score.dtype == np.float64
    assert out.cand_score.shape == (N, 2 * B) and out.alive.shape == (N, B)


def test_step_ties_by_lowest_flat_index():
    # every candidate scores 0: the order is the flat index b*V + v
    scores = np.zeros((2, 3))
    out = ref_beam_step(scores, np.zeros((1, 2)), eos_id=1, log_probs=True)
    np.testing.assert_array_equal(out.cand_beam, [[0, 0, 0, 1]])
    np.testing.assert_array_equal(out.cand_token, [[0, 1, 2, 0]])
    np.testing.assert_array_equal(out.cand_finished, [[False, True, False, False]])
    np.testing.assert_array_equal(out.alive, [[0, 2]])
    # a tie across beams: beam 1's token 0 (flat 3) and beam 0's token 2 (flat 2) tie -> flat 2 first
    lp = np.log(np.array([[0.5, 0.3, 0.2], [0.2, 0.4, 0.4]]))
    out = ref_beam_step(lp, np.array([[np.log(0.4), np.log(0.4)]]), eos_id=0, log_probs=True)
    order = list(zip(out.cand_beam[0], out.cand_token[0]))
    assert order == [(0, 0), (1, 1), (1, 2), (0, 1)]  # 0.2, 0.16, 0.16 (flat 4 < 5), 0.12


def test_step_eos_inside_and_outside_top_b():
    # B = 2, V = 3, EOS = 0. Item 0: EOS of beam 0 ranks 0 -> finished. Item 1: the EOS candidates
    # rank 2 and 3 (>= B) -> not finished, and never alive.
    lp = np.log(
        np.array(
            [
                [0.6, 0.3, 0.1],
                [0.1, 0.45, 0.45],  # item 0
                [0.05, 0.9, 0.05],
                [0.01, 0.5, 0.49],  # item 1
            ]
        )
    )
    beam_scores = np.log(np.array([[0.5, 0.5], [0.5, 0.5]]))
    out = ref_beam_step(lp, beam_scores, eos_id=EOS, log_probs=True)
    assert out.cand_token[0, 0] == EOS and out.cand_finished[0, 0]
    assert out.cand_finished[0].sum() == 1
    np.testing.assert_array_equal(out.cand_token, [[0, 1, 2, 1], [1, 1, 2, 0]])
    np.testing.assert_array_equal(out.cand_beam, [[0, 1, 1, 0], [0, 1, 1, 0]])
    np.testing.assert_array_equal(out.cand_finished, [[True, False, False, False]] + [[False] * 4])
    np.testing.assert_array_equal(out.alive, [[1, 2], [0, 1]])


def test_step_minus_inf_beams_at_step_zero():
    # B = 3 > V = 2: beam 0 gives the two finite candidates, the rest are -inf in flat order
    out = ref_beam_step(np.array([[0.0, 1.0]] * 3), np.array([[0.0, -np.inf, -np.inf]]), eos_id=EOS)
    lp = log_softmax(np.array([[0.0, 1.0]]))[0]
    np.testing.assert_array_equal(out.cand_score[0, :2], [lp[1], lp[0]])
    assert np.isneginf(out.cand_score[0, 2:]).all()
    np.testing.assert_array_equal(out.cand_beam[0], [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(out.cand_token[0], [1, 0, 0, 1, 0, 1])
    # EOS of beam 1 ranks 2 < B: flagged finished (with score -inf; drivers skip it)
    np.testing.assert_array_equal(out.cand_finished[0], [False, True, True, False, False, False])
    np.testing.assert_array_equal(out.alive[0], [0, 3, 5])
    np.testing.assert_array_equal(out.cand_logp[0, 2:], [lp[0], lp[1], lp[0], lp[1]])


def test_step_forbid_eos_after_normalisation():
    logits = np.array([[3.0, 0.0, -1.0], [2.0, 1.0, 0.5]])
    out = ref_beam_step(logits, np.zeros((1, 2)), eos_id=EOS, forbid_eos=True)
    lp = log_softmax(logits)
    assert not out.cand_finished.any()
    eos = out.cand_token[0] == EOS
    assert np.isneginf(out.cand_score[0][eos]).all() and np.isneginf(out.cand_logp[0][eos]).all()
    # the other tokens keep their log-probs under the full softmax (no renormalisation)
    for r in np.flatnonzero(~eos):
        assert out.cand_logp[0, r] == lp[out.cand_beam[0, r], out.cand_token[0, r]]
    np.testing.assert_array_equal(out.cand_token[0, :3], [1, 2, 1])  # lp[1,1] > lp[1,2] > lp[0,1]
    np.testing.assert_array_equal(out.cand_beam[0, :3], [1, 1, 0])


def test_step_log_softmax_inside_is_stable():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 5)) * 3
    a = ref_beam_step(logits + 1e4, np.zeros((2, 3)), eos_id=2)
    b = ref_beam_step(log_softmax(logits), np.zeros((2, 3)), eos_id=2, log_probs=True)
    assert np.isfinite(a.cand_score).all()
    np.testing.assert_allclose(a.cand_score, b.cand_score, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(a.cand_token, b.cand_token)
    np.testing.assert_array_equal(a.cand_beam, b.cand_beam)
    assert np.isneginf(log_softmax(np.full((1, 3), -np.inf))).all()


def test_step_vocabulary_of_eos_only_pads():
    out = ref_beam_step(np.zeros((2, 1)), np.array([[0.0, -1.0]]), eos_id=0)
    np.testing.assert_array_equal(out.cand_token, [[0, 0, -1, -1]])
    np.testing.assert_array_equal(out.cand_beam, [[0, 1, -1, -1]])
    np.testing.assert_array_equal(out.cand_finished, [[True, True, False, False]])
    assert np.isneginf(out.cand_score[0, 2:]).all() and np.isneginf(out.cand_logp[0, 2:]).all()
    np.testing.assert_array_equal(out.alive, [[-1, -1]])


def test_step_does_not_modify_inputs():
    lp = log_softmax(np.random.default_rng(1).normal(size=(2, 4)))
    keep = lp.copy()
    ref_beam_step(lp, np.zeros((1, 2)), eos_id=0, log_probs=True, forbid_eos=True)
    beam_step(lp, np.zeros((1, 2)), eos_id=0, log_probs=True, forbid_eos=True)
    np.testing.assert_array_equal(lp, keep)


# ---------------------------------------------------------------------------------------------
# The public op
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_op_matches_reference(dtype):
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(12, 9)).astype(dtype)
    beam_scores = -rng.random((3, 4))
    beam_scores[1, 2:] = -np.inf
    got = beam_step(logits, beam_scores, eos_id=3)
    want = ref_beam_step(logits, beam_scores.astype(dtype), eos_id=3)
    # The C++ kernel sums exp in another order than NumPy: scores agree to rounding, candidates exactly
    # (tests/search/test_beam_kernel.py holds the full kernel-vs-reference checks).
    rtol = 1e-13 if dtype == np.float64 else 2e-6
    for g, w, name in zip(got, want, got._fields):
        if name in ("cand_score", "cand_logp"):
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol, err_msg=name)
        else:
            np.testing.assert_array_equal(g, w, err_msg=name)
    assert got.cand_score.dtype == got.cand_logp.dtype == dtype
    assert got.cand_token.dtype == np.int32


class _FakeGpuArray:
    __cuda_array_interface__ = {}

    def __init__(self, shape, dtype=np.float32):
        self.shape, self.ndim, self.dtype = shape, len(shape), np.dtype(dtype)


def test_op_gpu_input_without_cupy_is_a_clear_error():
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed: the GPU path runs (tests/search/test_beam_kernel.py)")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="CuPy|without CUDA"):
        beam_step(_FakeGpuArray((4, 5)), _FakeGpuArray((2, 2)), eos_id=0)


@pytest.mark.parametrize(
    "scores,beam_scores,eos,exc,match",
    [
        (np.zeros(6), np.zeros((2, 3)), 0, ValueError, "scores: expected a 2-D"),
        (np.zeros((6, 4)), np.zeros(6), 0, ValueError, "beam_scores: expected a 2-D"),
        (np.zeros((5, 4)), np.zeros((2, 3)), 0, ValueError, "scores: has 5 rows"),
        (np.zeros((0, 4)), np.zeros((2, 0)), 0, ValueError, "beam_scores: needs at least one beam"),
        (np.zeros((6, 4)), np.zeros((2, 3)), 4, ValueError, "eos_id: 4 is outside"),
        (np.zeros((6, 4)), np.zeros((2, 3)), -1, ValueError, "eos_id: -1 is outside"),
        (np.zeros((6, 4)), np.zeros((2, 3)), 1.0, TypeError, "eos_id"),
        (np.full((6, 4), np.nan), np.zeros((2, 3)), 0, ValueError, "scores: NaN or \\+inf"),
        (np.full((6, 4), np.inf), np.zeros((2, 3)), 0, ValueError, r"scores: NaN or \+inf"),
        (np.zeros((6, 4)), np.full((2, 3), np.nan), 0, ValueError, "beam_scores: NaN or \\+inf"),
        (np.zeros((6, 4), np.int64), np.zeros((2, 3)), 0, TypeError, "scores: expected float32"),
        (np.zeros((6, 4), np.float16), np.zeros((2, 3)), 0, TypeError, "scores: expected float32"),
        (np.zeros((6, 4)), np.zeros((2, 3), np.int64), 0, TypeError, "beam_scores: expected a floating"),
        (np.zeros((6, 4)), _FakeGpuArray((2, 3)), 0, TypeError, "beam_scores: must be on the same device"),
        ("abc", np.zeros((2, 3)), 0, ValueError, "scores: expected a 2-D"),
    ],
)
def test_op_errors(scores, beam_scores, eos, exc, match):
    with pytest.raises(exc, match=match):
        beam_step(scores, beam_scores, eos_id=eos)


def test_op_rejects_torch_and_objects():
    with pytest.raises(TypeError, match="scores: expected a NumPy or CuPy array"):
        beam_step(object(), np.zeros((1, 1)), eos_id=0)


# ---------------------------------------------------------------------------------------------
# Beam search against exhaustive search
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("driver", [beam_search, ref_beam_search], ids=["api", "reference"])
@pytest.mark.parametrize("penalty,alpha", PENALTY_CASES)
@pytest.mark.parametrize("V,max_len,min_len", [(3, 3, 0), (4, 2, 0), (3, 3, 2), (3, 4, 4)])
def test_wide_beam_finds_the_true_best(driver, penalty, alpha, V, max_len, min_len):
    N = 3
    B = V**max_len  # wide enough to hold every prefix: beam search is exhaustive
    for seed in range(3):
        model = Markov2(V, N, seed=seed, eos_bias=0.5)
        results = run_beam(
            model, N, B, driver, max_len=max_len, min_len=min_len, length_penalty=alpha, penalty=penalty, n_best=2
        )
        for n, hyps in enumerate(results):
            best_score, best_tokens, best_lp = exhaustive_best(
                model, n, max_len=max_len, min_len=min_len, alpha=alpha, penalty=penalty
            )
            assert hyps[0].tokens == best_tokens, (seed, n, hyps[0], best_tokens)
            assert hyps[0].score == pytest.approx(best_score, abs=1e-12)
            assert hyps[0].log_prob == pytest.approx(best_lp, abs=1e-12)
            assert len(hyps) == 2 and hyps[0].score >= hyps[1].score


@pytest.mark.parametrize("seed", range(6))
def test_api_driver_equals_reference_driver(seed):
    rng = np.random.default_rng(seed)
    V, N = int(rng.integers(2, 7)), int(rng.integers(1, 5))
    B = int(rng.integers(1, 6))
    model = Markov2(V, N, seed=seed, eos_bias=float(rng.normal()))
    for early in (True, "exact"):
        for penalty, alpha in PENALTY_CASES:
            kw = dict(
                max_len=int(rng.integers(1, 7)),
                length_penalty=alpha,
                penalty=penalty,
                early_stopping=early,
                n_best=int(rng.integers(1, B + 1)),
            )
            kw["min_len"] = int(rng.integers(0, kw["max_len"] + 1))
            got = run_beam(model, N, B, beam_search, **kw)
            want = run_beam(model, N, B, ref_beam_search, **kw)
            assert got == want, kw


def test_beam_size_one_is_greedy():
    for seed in range(8):
        N, V = 6, 5
        model = Markov2(V, N, seed=seed, eos_bias=float(seed % 3) - 1)
        for min_len in (0, 3):
            beam = run_beam(model, N, 1, max_len=7, min_len=min_len)
            greedy = greedy_search(
                model.step, model.init_state(N), batch_size=N, bos_id=BOS, eos_id=EOS, max_len=7, min_len=min_len
            )
            for b, g in zip(beam, greedy):
                assert len(b) == 1
                assert b[0].tokens == g.tokens
                assert b[0].log_prob == g.log_prob
                assert b[0].step_log_probs == g.step_log_probs


def test_greedy_ties_pick_lowest_token():
    model = TreeModel(4, {(): [0.1, 0.1, 0.4, 0.4], (2,): [1, 0, 0, 0]})
    g = greedy_search(model.step, model.init_state(1), batch_size=1, bos_id=3, eos_id=0, max_len=5)
    assert g[0].tokens == (2, 0)
    b = beam_search(model.step, model.init_state(1), batch_size=1, beam_size=1, bos_id=3, eos_id=0, max_len=5)
    assert b[0][0].tokens == (2, 0)


# ---------------------------------------------------------------------------------------------
# Stopping, lengths and ordering
# ---------------------------------------------------------------------------------------------


# At the root EOS is likeliest (0.5), but "1 EOS" has a better normalised score for alpha > 0.
TRAP = {(): [0.5, 0.45, 0.04, 0.01], (1,): [0.99, 0.005, 0.004, 0.001]}
TRAP_BOS = 3


def test_exact_beats_early_stopping_on_a_trap():
    model = TreeModel(4, TRAP)
    kw = dict(batch_size=1, beam_size=1, bos_id=TRAP_BOS, eos_id=EOS, max_len=3, length_penalty=0.7)
    early = beam_search(model.step, model.init_state(1), **kw)
    exact = beam_search(model.step, model.init_state(1), early_stopping="exact", **kw)
    assert early[0][0].tokens == (EOS,)
    assert exact[0][0].tokens == (1, EOS)
    assert exact[0][0].score > early[0][0].score
    # with alpha = 0 the bound says nothing can beat the raw log 0.5: exact stops at once too
    calls = []
    counting = lambda tok, st: (calls.append(1), model.step(tok, st))[1]  # noqa: E731
    exact0 = beam_search(counting, model.init_state(1), early_stopping="exact", **{**kw, "length_penalty": 0.0})
    assert exact0[0][0].tokens == (EOS,) and len(calls) == 1


def test_exact_is_never_worse_than_early_stopping():
    strictly_better = 0
    for seed in range(25):
        N, V, B = 4, 4, 2
        model = Markov2(V, N, seed=seed, eos_bias=1.0)
        for penalty, alpha in PENALTY_CASES:
            kw = dict(max_len=6, length_penalty=alpha, penalty=penalty)
            early = run_beam(model, N, B, **kw)
            exact = run_beam(model, N, B, early_stopping="exact", **kw)
            for e, x in zip(early, exact):
                assert x[0].score >= e[0].score
                strictly_better += x[0].score > e[0].score
    assert strictly_better > 0


@pytest.mark.parametrize("penalty,alpha", PENALTY_CASES)
def test_exact_stopping_equals_running_to_max_len(monkeypatch, penalty, alpha):
    """The bound is safe: stopping by it gives the same B best as never stopping early."""
    N, V, B, max_len = 5, 4, 3, 12
    model = Markov2(V, N, seed=11, scale=0.5, eos_bias=1.0)
    kw = dict(max_len=max_len, length_penalty=alpha, penalty=penalty, early_stopping="exact", n_best=B, min_len=2)
    exact = run_beam(model, N, B, **kw)
    steps_exact, model.calls = model.calls, 0
    monkeypatch.setattr(search_mod, "best_possible_score", lambda *a, **k: np.inf)
    full = run_beam(model, N, B, **kw)
    assert model.calls == max_len
    assert exact == full
    if alpha == 0.0 or penalty == "gnmt" and alpha < 1:  # here the bound ends the search early
        assert steps_exact < max_len


def test_best_possible_score_bound():
    # alpha > 0, s <= 0: the longest allowed length; alpha = 0: the raw sum; alpha < 0: the shortest
    assert best_possible_score(-2.0, 3, max_len=10, alpha=0.7) == -2.0 / 10**0.7
    assert best_possible_score(-2.0, 3, max_len=10, alpha=0.0) == -2.0
    assert best_possible_score(-2.0, 3, max_len=10, alpha=-0.5) == -2.0 / 4**-0.5
    assert best_possible_score(-2.0, 3, max_len=10, min_len=6, alpha=-0.5) == -2.0 / 6**-0.5
    assert best_possible_score(-2.0, 3, max_len=10, alpha=0.7, penalty="gnmt") == -2.0 / (15 / 6) ** 0.7
    assert best_possible_score(0.0, 3, max_len=10, alpha=0.7) == 0.0
    # it bounds every descendant: brute force over lengths and lower raw scores
    for penalty, alpha in PENALTY_CASES + [("average", -0.7), ("gnmt", -1.0)]:
        for s in (0.0, -0.3, -5.0):
            bound = best_possible_score(s, 2, max_len=9, min_len=4, alpha=alpha, penalty=penalty)
            for L in range(4, 10):
                for drop in (0.0, 0.1, 3.0):
                    assert normalised_score(s - drop, L, alpha, penalty) <= bound + 1e-15


def test_min_len_forbids_early_eos():
    N, V, B = 4, 4, 3
    model = Markov2(V, N, seed=3, eos_bias=4.0)  # EOS is very likely
    plain = run_beam(model, N, B, max_len=8, n_best=3)
    assert min(len(h) for hyps in plain for h in hyps) < 3
    for min_len in (3, 5, 8):
        res = run_beam(model, N, B, max_len=8, min_len=min_len, n_best=3)
        for hyps in res:
            assert len(hyps) == 3
            for h in hyps:
                assert len(h) >= min_len
                assert EOS not in h.tokens[:-1]


def test_max_len_finishes_live_hypotheses():
    N, V, B, max_len = 3, 5, 3, 4
    model = Markov2(V, N, seed=5, eos_bias=-30.0)  # EOS never ranks within the top B
    res = run_beam(model, N, B, max_len=max_len, n_best=3, length_penalty=0.0)
    for n, hyps in enumerate(res):
        assert len(hyps) == 3
        for h in hyps:
            assert len(h) == max_len and EOS not in h.tokens
            assert h.score == h.log_prob  # alpha = 0
        assert hyps[0].log_prob == pytest.approx(
            exhaustive_best(model, n, max_len=max_len, min_len=0, alpha=0.0, penalty="average")[2]
        )


def test_n_best_ordering_and_consistency():
    N, V, B = 4, 6, 5
    model = Markov2(V, N, seed=9, eos_bias=1.0)
    for penalty, alpha in PENALTY_CASES:
        res = run_beam(model, N, B, max_len=6, n_best=B, length_penalty=alpha, penalty=penalty)
        lp = (
            score(model.step, model.init_state(N, B), [h.tokens for hyps in res for h in hyps], bos_id=BOS)
            if all(len(h) == B for h in res)
            else None
        )
        k = 0
        for hyps in res:
            assert len(hyps) == B
            scores = [h.score for h in hyps]
            assert scores == sorted(scores, reverse=True)
            assert len({h.tokens for h in hyps}) == B  # distinct hypotheses
            for h in hyps:
                assert isinstance(h, Hypothesis)
                assert len(h.step_log_probs) == len(h.tokens)
                assert h.log_prob == sum(h.step_log_probs)
                assert h.score == normalised_score(h.log_prob, len(h), alpha, penalty)
                if lp is not None:
                    assert h.log_prob == pytest.approx(lp[k], abs=1e-12)
                k += 1


def test_custom_reorder_and_array_state():
    """A dict state with a custom reorder, and a plain-array state, give the default's results."""
    N, V, B = 3, 5, 4
    model = Markov2(V, N, seed=2)
    want = run_beam(model, N, B, max_len=6, n_best=2)

    def dict_step(tokens, state):
        lp, (items, (prev,)) = model.step(tokens, (state["items"], [state["prev"]]))
        return lp, {"items": items, "prev": prev}

    seen = []

    def dict_reorder(state, index):
        seen.append(index.copy())
        return {k: v[index] for k, v in state.items()}

    items, (prev,) = model.init_state(N, B)
    got = beam_search(
        dict_step,
        {"items": items, "prev": prev},
        batch_size=N,
        beam_size=B,
        bos_id=BOS,
        eos_id=EOS,
        max_len=6,
        n_best=2,
        reorder=dict_reorder,
    )
    assert got == want
    assert seen and all(ix.shape == (N * B,) and ix.dtype == np.int64 for ix in seen)
    for ix in seen:  # a gather never crosses items
        np.testing.assert_array_equal(ix // B, np.repeat(np.arange(N), B))

    def array_step(tokens, state):  # state: (N*B, 2) array [item, prev]
        lp, (items, (prev,)) = model.step(tokens, (state[:, 0], [state[:, 1]]))
        return lp, np.stack([items, prev], axis=1)

    got = beam_search(
        array_step,
        np.stack([items, prev], axis=1),
        batch_size=N,
        beam_size=B,
        bos_id=BOS,
        eos_id=EOS,
        max_len=6,
        n_best=2,
    )
    assert got == want


def test_finished_items_stop_calling_when_all_done():
    model = TreeModel(4, {(): [1.0, 0, 0, 0]})  # EOS with probability 1 at once
    res = beam_search(
        model.step, model.init_state(2, 2), batch_size=2, beam_size=2, bos_id=3, eos_id=0, max_len=10, n_best=2
    )
    # only one finite hypothesis exists per item: fewer than n_best come back
    assert [[h.tokens for h in hyps] for hyps in res] == [[(0,)], [(0,)]]
    assert res[0][0].log_prob == 0.0
    assert beam_search(model.step, None, batch_size=0, beam_size=2, bos_id=3, eos_id=0, max_len=3) == []


def test_step_op_is_pluggable():
    N, V, B = 2, 5, 3
    model = Markov2(V, N, seed=4)
    used = []

    def op(scores, beam_scores, **kw):
        used.append(kw)
        return ref_beam_step(scores, beam_scores, **kw)

    assert run_beam(model, N, B, step_op=op, min_len=2) == run_beam(model, N, B, min_len=2)
    assert used[0] == {"eos_id": EOS, "log_probs": True, "forbid_eos": True}
    assert used[1]["forbid_eos"] is False


def test_float32_model():
    N, V, B = 3, 6, 3
    model = Markov2(V, N, seed=8)

    def step32(tokens, state):
        lp, st = model.step(tokens, state)
        return lp.astype(np.float32), st

    got = beam_search(step32, model.init_state(N, B), batch_size=N, beam_size=B, bos_id=BOS, eos_id=EOS, max_len=5)
    want = run_beam(model, N, B)
    for g, w in zip(got, want):
        assert g[0].tokens == w[0].tokens
        assert g[0].log_prob == pytest.approx(w[0].log_prob, rel=1e-5)


# ---------------------------------------------------------------------------------------------
# Sampling and scoring
# ---------------------------------------------------------------------------------------------


def _sample(model, N, **kw):
    kw.setdefault("max_len", 8)
    return sample(model.step, model.init_state(N), batch_size=N, bos_id=BOS, eos_id=EOS, **kw)


def test_sample_is_reproducible():
    model = Markov2(6, 20, seed=1)
    a = _sample(model, 20, seed=123)
    b = _sample(model, 20, seed=123)
    c = _sample(model, 20, seed=124)
    assert a == b
    assert a != c
    for h in a:
        assert 1 <= len(h) <= 8
        assert EOS not in h.tokens[:-1]
        assert h.log_prob == sum(h.step_log_probs) == h.score


def test_sample_top_k():
    N = 30
    model = Markov2(6, N, seed=6)
    greedy = greedy_search(model.step, model.init_state(N), batch_size=N, bos_id=BOS, eos_id=EOS, max_len=8)
    assert _sample(model, N, top_k=1, seed=0) == greedy
    assert _sample(model, N, top_k=1, temperature=3.0, seed=5) == greedy
    for h, n in zip(_sample(model, N, top_k=2, seed=0, temperature=2.0), range(N)):
        for t, v in enumerate(h.tokens):
            lp = model.logp(n, h.tokens[:t])
            assert v in np.argsort(-lp, kind="stable")[:2]
    assert _sample(model, N, top_k=100, seed=9) == _sample(model, N, seed=9)  # top_k > V keeps all
    # ties at the cut keep the lowest ids: tokens 1 and 2 tie, top_k = 1 always gives 1
    tie = TreeModel(4, {(): [0.0, 0.4, 0.4, 0.2]})
    out = sample(tie.step, tie.init_state(50), batch_size=50, bos_id=3, eos_id=0, max_len=1, top_k=1, seed=0)
    assert {h.tokens for h in out} == {(1,)}


def test_sample_follows_the_distribution():
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    model = TreeModel(4, {(): probs})
    N = 20000
    out = sample(model.step, model.init_state(N), batch_size=N, bos_id=3, eos_id=0, max_len=1, seed=42)
    freq = np.bincount([h.tokens[0] for h in out], minlength=4) / N
    np.testing.assert_allclose(freq, probs, atol=0.015)
    hot = sample(
        model.step, model.init_state(N), batch_size=N, bos_id=3, eos_id=0, max_len=1, seed=42, temperature=0.5
    )  # probs ** 2, renormalised
    freq = np.bincount([h.tokens[0] for h in hot], minlength=4) / N
    np.testing.assert_allclose(freq, probs**2 / np.sum(probs**2), atol=0.015)


def test_score_equals_direct_sum():
    N, V = 5, 6
    model = Markov2(V, N, seed=12)
    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(1, V, size=int(rng.integers(0, 7)))) for _ in range(N)]
    got = score(model.step, model.init_state(N), seqs, bos_id=BOS)
    got_eos = score(model.step, model.init_state(N), seqs, bos_id=BOS, eos_id=EOS)
    for n, s in enumerate(seqs):
        direct = sum(model.logp(n, tuple(s[:t]))[v] for t, v in enumerate(s))
        assert got[n] == pytest.approx(direct, abs=1e-12)
        assert got_eos[n] == pytest.approx(direct + model.logp(n, tuple(s))[EOS], abs=1e-12)
    assert got.dtype == np.float64 and got.shape == (N,)
    # sequences already ending in EOS are not extended; hypotheses are accepted
    hyps = _sample(model, N, seed=3)
    np.testing.assert_allclose(
        score(model.step, model.init_state(N), hyps, bos_id=BOS, eos_id=EOS)[[h.tokens[-1] == EOS for h in hyps]],
        [h.log_prob for h in hyps if h.tokens[-1] == EOS],
        rtol=0,
        atol=1e-12,
    )
    assert score(model.step, model.init_state(0), [], bos_id=BOS).shape == (0,)


# ---------------------------------------------------------------------------------------------
# Error analysis
# ---------------------------------------------------------------------------------------------


def test_error_analysis_verdicts():
    model = TreeModel(4, TRAP)
    N = 3
    out = greedy_search(model.step, model.init_state(N), batch_size=N, bos_id=TRAP_BOS, eos_id=EOS, max_len=3)
    assert all(h.tokens == (EOS,) for h in out)
    refs = [[1], [2], [EOS]]  # EOS is appended to the first two
    ea = error_analysis(model.step, model.init_state(N), refs, out, bos_id=TRAP_BOS, eos_id=EOS, length_penalty=0.7)
    # "1 EOS" beats "EOS" once normalised: the search missed it. "2 EOS" is worse: the model's fault.
    assert ea.verdicts == ("search", "model", "correct")
    assert ea.n_search == 1 and ea.n_model == 1 and ea.n_errors == 2
    assert ea.search_fraction == ea.model_fraction == 0.5
    np.testing.assert_allclose(ea.reference_log_probs[0], np.log(0.45) + np.log(0.99))
    np.testing.assert_allclose(ea.reference_scores[0], (np.log(0.45) + np.log(0.99)) / 2**0.7)
    np.testing.assert_allclose(ea.output_scores, np.log(0.5))
    # under the raw sum (alpha = 0) the model itself prefers "EOS": the verdict flips
    raw = error_analysis(model.step, model.init_state(N), refs, out, bos_id=TRAP_BOS, eos_id=EOS, length_penalty=0.0)
    assert raw.verdicts == ("model", "model", "correct")
    assert raw.model_fraction == 1.0 and raw.search_fraction == 0.0
    # beam_search results (lists of hypotheses) are accepted as outputs; the exact search fixes item 0
    best = beam_search(
        model.step,
        model.init_state(N),
        batch_size=N,
        beam_size=1,
        bos_id=TRAP_BOS,
        eos_id=EOS,
        max_len=3,
        early_stopping="exact",
    )
    ea = error_analysis(model.step, model.init_state(N), [[1]] * N, best, bos_id=TRAP_BOS, eos_id=EOS)
    assert ea.verdicts == ("correct",) * N and ea.search_fraction == 0.0 and ea.n_errors == 0


def test_error_analysis_ties_blame_the_model():
    model = TreeModel(4, {(): [0.2, 0.4, 0.4, 0.0]})
    ea = error_analysis(model.step, model.init_state(1), [[1]], [[2]], bos_id=3, length_penalty=0.0)
    assert ea.verdicts == ("model",)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def _bad(kw=None, step=None, state=None, N=2, B=2, V=5):
    model = Markov2(V, N, seed=0)
    args = dict(batch_size=N, beam_size=B, bos_id=BOS, eos_id=EOS, max_len=4)
    args.update(kw or {})
    return beam_search(step or model.step, model.init_state(N, B) if state is None else state, **args)


@pytest.mark.parametrize(
    "kw,exc,match",
    [
        ({"beam_size": 0}, ValueError, "beam_size: must be >= 1"),
        ({"batch_size": -1}, ValueError, "batch_size: must be >= 0"),
        ({"batch_size": 2.0}, TypeError, "batch_size: expected an int"),
        ({"n_best": 3}, ValueError, "n_best: must be <= beam_size"),
        ({"n_best": 0}, ValueError, "n_best: must be >= 1"),
        ({"max_len": 0}, ValueError, "max_len: must be >= 1"),
        ({"min_len": 5}, ValueError, "min_len: must be <= max_len"),
        ({"min_len": -1}, ValueError, "min_len: must be >= 0"),
        ({"eos_id": 5}, ValueError, "eos_id: 5 is outside the vocabulary"),
        ({"eos_id": -1}, ValueError, "eos_id: must be >= 0"),
        ({"bos_id": -2}, ValueError, "bos_id: must be >= 0"),
        ({"penalty": "sum"}, ValueError, "penalty: must be one of"),
        ({"length_penalty": float("nan")}, ValueError, "length_penalty: must be finite"),
        ({"early_stopping": False}, ValueError, "early_stopping: must be True or 'exact'"),
        ({"early_stopping": "never"}, ValueError, "early_stopping"),
        ({"reorder": 3}, TypeError, "reorder: expected a callable"),
    ],
)
def test_beam_search_argument_errors(kw, exc, match):
    with pytest.raises(exc, match=match):
        _bad(kw)


def test_bos_outside_vocabulary():
    model = TreeModel(4, {})
    with pytest.raises(ValueError, match="bos_id: 7 is outside the vocabulary"):
        beam_search(
            lambda tok, st: model.step(np.zeros_like(tok), st),
            model.init_state(1, 2),
            batch_size=1,
            beam_size=2,
            bos_id=7,
            eos_id=0,
            max_len=3,
        )


def test_state_batch_mismatch():
    model = Markov2(5, 2, seed=0)
    with pytest.raises(ValueError, match=r"state\[0\]: has shape \(2,\), expected 4 rows"):
        _bad(state=model.init_state(2, 1))
    with pytest.raises(ValueError, match="state: the default reorder gathers arrays"):
        _bad(state={"a": np.zeros(4)})


def test_step_errors():
    model = Markov2(5, 2, seed=0)

    def nan_step(tok, st):
        lp, st = model.step(tok, st)
        lp[1, 2] = np.nan
        return lp, st

    with pytest.raises(ValueError, match=r"step: returned NaN log-probs at step 0 \(row 1\)"):
        _bad(step=nan_step)
    with pytest.raises(
        ValueError,
        match=r"step: returned log_probs of shape \(2, 5\) at step 0, "
        r"expected \(4, V\)",
    ):
        _bad(step=lambda tok, st: (model.step(tok, st)[0][:2], st))
    with pytest.raises(ValueError, match="step: must return a pair"):
        _bad(step=lambda tok, st: model.step(tok, st)[0])
    with pytest.raises(ValueError, match="step: returned log_probs of shape"):
        _bad(step=lambda tok, st: (model.step(tok, st)[0][:, :, None], st))

    grow = iter(range(10))

    def changing_vocab(tok, st):
        lp, st = model.step(tok, st)
        return (lp if next(grow) == 0 else np.concatenate([lp, lp], axis=1)), st

    with pytest.raises(ValueError, match="step: returned log_probs with V = 10 at step 1"):
        _bad(step=changing_vocab, kw={"eos_id": 4})  # EOS unlikely to finish both items at once
    with pytest.raises(ValueError, match=r"step: returned state \(step 0\)"):
        _bad(step=lambda tok, st: (model.step(tok, st)[0], np.zeros(3)))
    with pytest.raises(TypeError, match="step: returned log_probs of dtype int64"):
        _bad(step=lambda tok, st: (np.zeros((4, 5), np.int64), st))
    with pytest.raises(ValueError, match=r"step: returned \+inf"):
        _bad(step=lambda tok, st: (np.full((4, 5), np.inf), st))


def test_other_function_errors():
    model = Markov2(5, 2, seed=0)
    common = dict(batch_size=2, bos_id=BOS, eos_id=EOS, max_len=3)
    with pytest.raises(ValueError, match="temperature: must be finite and > 0"):
        sample(model.step, model.init_state(2), temperature=0.0, **common)
    with pytest.raises(ValueError, match="top_k: must be >= 1"):
        sample(model.step, model.init_state(2), top_k=0, **common)
    with pytest.raises(ValueError, match="eos_id: 9 is outside"):
        greedy_search(model.step, model.init_state(2), **{**common, "eos_id": 9})
    with pytest.raises(
        ValueError,
        match=r"step: returned log_probs of shape \(2, 5\) at step 0, "
        r"expected \(3, V\)",
    ):
        greedy_search(lambda tok, st: (np.zeros((2, 5)), st), None, **{**common, "batch_size": 3})
    with pytest.raises(ValueError, match=r"sequences\[1\]: token 7 is outside the vocabulary"):
        score(model.step, model.init_state(2), [[2], [7]], bos_id=BOS)
    with pytest.raises(ValueError, match=r"sequences\[0\]: negative token id"):
        score(model.step, model.init_state(2), [[-1], [2]], bos_id=BOS)
    with pytest.raises(ValueError, match=r"outputs: 1 sequences for 2 references"):
        error_analysis(model.step, model.init_state(2), [[2], [3]], [[2]], bos_id=BOS)
    with pytest.raises(ValueError, match=r"references\[0\]: empty sequence"):
        error_analysis(model.step, model.init_state(2), [[], [3]], [[2], [3]], bos_id=BOS)
    with pytest.raises(ValueError, match="penalty: must be one of"):
        error_analysis(model.step, model.init_state(2), [[2], [3]], [[2], [3]], bos_id=BOS, penalty="x")


# ---------------------------------------------------------------------------------------------
# GPU (CuPy): the driver keeps the model's arrays on the device
# ---------------------------------------------------------------------------------------------


@pytest.mark.cuda
def test_beam_search_with_cupy_model():
    import cupy

    N, V, B = 3, 6, 4
    model = Markov2(V, N, seed=1)
    A, C, D = (cupy.asarray(m) for m in (model.A, model.C, model.D))

    def gpu_step(tokens, state):
        assert isinstance(tokens, cupy.ndarray)
        items, (prev,) = state
        z = A[tokens] + C[prev] + D[items]
        z = z - z.max(axis=1, keepdims=True)
        return z - cupy.log(cupy.exp(z).sum(axis=1, keepdims=True)), (items, [tokens.copy()])

    items, (prev,) = model.init_state(N, B)
    got = beam_search(
        gpu_step,
        (cupy.asarray(items), [cupy.asarray(prev)]),
        batch_size=N,
        beam_size=B,
        bos_id=BOS,
        eos_id=EOS,
        max_len=5,
        n_best=2,
    )
    want = run_beam(model, N, B, n_best=2)
    for g, w in zip(got, want):
        assert [h.tokens for h in g] == [h.tokens for h in w]
        np.testing.assert_allclose([h.log_prob for h in g], [h.log_prob for h in w], atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Decoding controls
# ---------------------------------------------------------------------------------------------

from seqkernels.reference.search import (  # noqa: E402
    bad_word_bans,
    control_scores,
    ngram_bans,
    penalise,
    top_p_mask,
)


def test_ngram_bans_by_definition():
    """v is banned iff history + [v] ends with an n-gram that already occurs in history."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        n, L = int(rng.integers(1, 5)), int(rng.integers(0, 10))
        h = [int(v) for v in rng.integers(0, 3, size=L)]
        want = [
            v for v in range(4) if L + 1 >= n and any(h[i : i + n] == (h + [v])[L + 1 - n :] for i in range(L - n + 1))
        ]
        assert ngram_bans(h, n) == want, (h, n)
    assert ngram_bans([1, 2, 1], 0) == []


def test_bad_word_bans_and_penalise():
    assert bad_word_bans([4, 5], [[7], [5, 8], [4, 9], [4, 5, 6], [3, 5, 1]]) == [6, 7, 8]
    assert bad_word_bans([], [[5, 8], [2]]) == [2]
    np.testing.assert_array_equal(penalise(np.array([-2.0, 3.0, -np.inf, 0.0]), 2.0), [-4.0, 1.5, -np.inf, 0.0])


def test_top_p_mask():
    p = np.array([0.1, 0.4, 0.2, 0.3])
    assert top_p_mask(p, 0.4).tolist() == [False, True, False, False]
    assert top_p_mask(p, 0.41).tolist() == [False, True, False, True]
    assert top_p_mask(p, 1.0).tolist() == [True] * 4
    assert top_p_mask(np.array([0.5, 0.5, 0.0]), 0.5).tolist() == [True, False, False]  # tie: lower id


CONTROL_CASES = [
    dict(repetition_penalty=1.7),
    dict(repetition_penalty=0.6),
    dict(no_repeat_ngram_size=1),
    dict(no_repeat_ngram_size=2),
    dict(suppress_tokens=[2], bad_words=[[1, 3], [3, 3]]),
    dict(no_repeat_ngram_size=2, repetition_penalty=1.3, bad_words=[[2, 1]]),
]


def exhaustive_best_controlled(model, item, *, max_len, min_len, prefix=(), **controls):
    """The best sequence under the controls, by enumeration: a token is allowed where the
    controlled log-prob is finite, and that log-prob is what it adds to the score (alpha = 0)."""
    best = None
    kw = dict(
        repetition_penalty=controls.get("repetition_penalty", 1.0),
        no_repeat_ngram_size=controls.get("no_repeat_ngram_size", 0),
    )
    words = [list(w) for w in controls.get("bad_words", [])] + [[v] for v in controls.get("suppress_tokens", [])]

    def expand(seq, log_prob):
        nonlocal best
        if len(seq) == max_len:
            if best is None or log_prob > best[0]:
                best = (log_prob, seq)
            return
        t = len(seq)
        banned = np.array([bad_word_bans(seq, words) or [-1]])
        forced = np.array([prefix[t] if t < len(prefix) else -1])
        lp = control_scores(
            model.logp(item, seq)[None, :],
            log_probs=True,
            eos_id=EOS,
            forbid_eos=t + 1 < min_len,
            history=np.array([seq], dtype=np.int64).reshape(1, t),
            banned=banned,
            forced=forced,
            **kw,
        )[0]
        for v in range(model.V):
            if lp[v] == -np.inf:
                continue
            if v == EOS:
                if best is None or log_prob + lp[v] > best[0]:
                    best = (log_prob + lp[v], seq + (EOS,))
            else:
                expand(seq + (v,), log_prob + lp[v])

    expand((), 0.0)
    return best


@pytest.mark.parametrize("driver", [beam_search, ref_beam_search], ids=["api", "reference"])
@pytest.mark.parametrize("controls", CONTROL_CASES)
def test_wide_beam_with_controls_finds_the_true_best(driver, controls):
    V, max_len, N = 4, 4, 2
    B = V**max_len
    for seed in range(2):
        model = Markov2(V, N, seed=seed, eos_bias=-0.5)
        results = run_beam(model, N, B, driver, max_len=max_len, min_len=2, length_penalty=0.0, **controls)
        for n, hyps in enumerate(results):
            best_lp, best_tokens = exhaustive_best_controlled(model, n, max_len=max_len, min_len=2, **controls)
            assert hyps[0].tokens == best_tokens, (seed, n, controls)
            assert hyps[0].score == pytest.approx(best_lp, abs=1e-12)


def test_prefix_is_forced_and_scored():
    model = Markov2(5, 2, seed=3)
    prefix = [[3, 3, 4], None]
    results = run_beam(model, 2, 3, max_len=6, prefix=prefix, n_best=3, length_penalty=0.0)
    for h in results[0]:
        assert h.tokens[:3] == (3, 3, 4)
    assert search_mod.score(
        model.step, model.init_state(2), [results[0][0], results[1][0]], bos_id=BOS
    ) == pytest.approx([results[0][0].log_prob, results[1][0].log_prob])
    best_lp, best_tokens = exhaustive_best_controlled(model, 0, max_len=6, min_len=0, prefix=(3, 3, 4))
    wide = run_beam(model, 2, 5**3, max_len=6, prefix=prefix, length_penalty=0.0)
    assert wide[0][0].tokens == best_tokens


@pytest.mark.parametrize("seed", range(8))
def test_api_driver_equals_reference_driver_with_controls(seed):
    rng = np.random.default_rng(100 + seed)
    V, N, B = int(rng.integers(3, 7)), int(rng.integers(1, 4)), int(rng.integers(1, 5))
    model = Markov2(V, N, seed=seed, eos_bias=float(rng.normal()))
    kw = dict(CONTROL_CASES[seed % len(CONTROL_CASES)])
    kw.update(
        max_len=int(rng.integers(2, 8)),
        patience=float(rng.choice([0.5, 1.0, 2.0])),
        early_stopping=True if seed % 2 else "exact",
        n_best=int(rng.integers(1, B + 1)),
    )
    if seed % 3 == 0:
        kw["prefix"] = [list(rng.integers(1, V, size=int(rng.integers(0, 3)))) for _ in range(N)]
    got = run_beam(model, N, B, beam_search, **kw)
    want = run_beam(model, N, B, ref_beam_search, **kw)
    assert got == want, kw
    one = run_beam(model, N, 1, beam_search, **{k: v for k, v in kw.items() if k != "n_best"})
    greedy = greedy_search(
        model.step,
        model.init_state(N),
        batch_size=N,
        bos_id=BOS,
        eos_id=EOS,
        max_len=kw["max_len"],
        **{
            k: v
            for k, v in kw.items()
            if k in ("repetition_penalty", "no_repeat_ngram_size", "suppress_tokens", "bad_words", "prefix")
        },
    )
    assert [h[0].tokens for h in one] == [g.tokens for g in greedy]


def test_no_repeat_ngram_blocks_a_looping_model():
    """A model that loves the cycle 2 3 2 3 ...: with n = 2 no bigram repeats."""
    V = 6
    A = np.full((V, V), -5.0)
    A[BOS, 2] = A[2, 3] = A[3, 2] = 0.0
    A[:, EOS] = -30.0  # never stops: every hypothesis is cut at max_len

    def step(tokens, state):
        return log_softmax(A[np.asarray(tokens)]), state

    plain = beam_search(step, None, batch_size=1, beam_size=3, bos_id=BOS, eos_id=EOS, max_len=8)
    assert plain[0][0].tokens[:4] == (2, 3, 2, 3)
    for n in (2, 3):
        out = beam_search(
            step, None, batch_size=1, beam_size=3, bos_id=BOS, eos_id=EOS, max_len=8, no_repeat_ngram_size=n
        )[0][0].tokens
        grams = [out[i : i + n] for i in range(len(out) - n + 1)]
        assert len(grams) == len(set(grams)), out


def test_patience_collects_more_hypotheses():
    model = Markov2(5, 3, seed=4, eos_bias=1.0)
    base = run_beam(model, 3, 3, max_len=8, n_best=3)
    patient = run_beam(model, 3, 3, max_len=8, n_best=3, patience=2.0)
    for b, p in zip(base, patient):
        assert p[0].score >= b[0].score  # a longer search can only find better finished ones


def test_sample_top_p_and_controls():
    model = Markov2(6, 4, seed=5)
    kw = dict(batch_size=4, bos_id=BOS, eos_id=EOS, max_len=7)
    a = sample(model.step, model.init_state(4), seed=[1, 2, 3, 4], top_p=0.8, **kw)
    b = sample(model.step, model.init_state(4), seed=[1, 2, 3, 4], top_p=0.8, **kw)
    assert a == b
    # per-item seeds: item 2 alone draws the same sample as inside the batch
    model2 = Markov2(6, 4, seed=5)
    items = np.array([2])
    st = (items, [np.full(1, BOS, dtype=np.int64)])
    c = sample(model2.step, st, seed=[3], top_p=0.8, batch_size=1, bos_id=BOS, eos_id=EOS, max_len=7)
    assert c[0] == a[2]
    # top_p tiny = greedy on the model's log-probs; controls apply too
    g = greedy_search(model.step, model.init_state(4), no_repeat_ngram_size=2, **kw)
    s = sample(model.step, model.init_state(4), top_p=1e-9, seed=0, no_repeat_ngram_size=2, **kw)
    assert [h.tokens for h in g] == [h.tokens for h in s]
    assert search_mod.score(model.step, model.init_state(4), s, bos_id=BOS) == pytest.approx([h.log_prob for h in s])


def test_sample_top_p_follows_the_nucleus():
    V = 4
    p = np.array([0.1, 0.45, 0.15, 0.3])

    def step(tokens, state):
        return np.log(np.tile(p, (len(tokens), 1))), state

    hyps = sample(step, None, batch_size=4000, bos_id=1, eos_id=0, max_len=1, top_p=0.7, seed=0)
    counts = np.bincount([h.tokens[0] for h in hyps], minlength=V) / 4000
    want = np.where(top_p_mask(p, 0.7), p, 0) / p[top_p_mask(p, 0.7)].sum()
    assert np.abs(counts - want).max() < 0.03


@pytest.mark.parametrize(
    "kw,exc,match",
    [
        (dict(repetition_penalty=0.0), ValueError, "repetition_penalty"),
        (dict(repetition_penalty="x"), TypeError, "repetition_penalty"),
        (dict(no_repeat_ngram_size=-1), ValueError, "no_repeat_ngram_size"),
        (dict(suppress_tokens=[-1]), ValueError, "suppress_tokens"),
        (dict(suppress_tokens=[99]), ValueError, r"suppress_tokens: token 99 is outside"),
        (dict(bad_words=[[]]), ValueError, r"bad_words\[0\]: empty"),
        (dict(bad_words=[[1, 99]]), ValueError, r"bad_words\[0\]: token 99"),
        (dict(prefix=[[1]]), ValueError, "prefix: expected one token sequence"),
        (dict(prefix=[[1], [1.5]]), TypeError, r"prefix\[1\]"),
        (dict(patience=0), ValueError, "patience"),
    ],
)
def test_control_argument_errors(kw, exc, match):
    model = Markov2(4, 2, seed=0)
    with pytest.raises(exc, match=match):
        run_beam(model, 2, 2, **kw)
    if "patience" not in kw:
        with pytest.raises(exc, match=match):
            greedy_search(model.step, model.init_state(2), batch_size=2, bos_id=BOS, eos_id=EOS, max_len=3, **kw)


def test_sample_argument_errors():
    model = Markov2(4, 2, seed=0)
    kw = dict(batch_size=2, bos_id=BOS, eos_id=EOS, max_len=3)
    with pytest.raises(ValueError, match="top_p"):
        sample(model.step, model.init_state(2), top_p=0.0, **kw)
    with pytest.raises(ValueError, match="seed: expected one seed per item"):
        sample(model.step, model.init_state(2), seed=[1, 2, 3], **kw)
