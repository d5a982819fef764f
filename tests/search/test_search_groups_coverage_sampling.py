"""Diverse beam search, the coverage penalty and sampling inside beam search (issue 16): the
reference driver against brute force and definitions, the fast driver against the reference, the
wider fused step, the models and the demo."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from seqkernels.ops import beam_step
from seqkernels.reference.search import (
    beam_search as ref_beam_search,
)
from seqkernels.reference.search import (
    beam_step as ref_beam_step,
)
from seqkernels.reference.search import (
    coverage_penalty,
    draw_candidates,
    hamming_diversity,
    log_softmax,
    normalised_score,
)
from seqkernels.search import beam_search, score

from .test_search import BOS, EOS, Markov2, run_beam

DRIVERS = pytest.mark.parametrize("driver", [beam_search, ref_beam_search], ids=["api", "reference"])


class Attending(Markov2):
    """:class:`Markov2` that also returns an attention over ``S`` source positions, a softmax of a
    fixed function of the last two tokens and the item (so it is reordered with the beams)."""

    def __init__(self, V, n_items, seed, S=3, **kw):
        super().__init__(V, n_items, seed, **kw)
        rng = np.random.default_rng(seed + 1000)
        self.S = S
        self.E = rng.normal(scale=2.0, size=(V, V, S))
        self.F = rng.normal(size=(n_items, S))

    def attention(self, item, prefix):
        last = prefix[-1] if prefix else BOS
        prev = prefix[-2] if len(prefix) >= 2 else BOS
        z = self.E[last, prev] + self.F[item]
        return np.exp(z - np.logaddexp.reduce(z))

    def step(self, tokens, state):
        items, (prev,) = state
        tokens = np.asarray(tokens)
        lp, state = super().step(tokens, state)
        z = self.E[tokens, prev] + self.F[items]
        att = np.exp(z - np.logaddexp.reduce(z, axis=1, keepdims=True))
        return lp, state, att


# ---------------------------------------------------------------------------------------------
# The wider step (the sampling pool)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N,B,V,K", [(3, 2, 7, 9), (2, 1, 5, 5), (1, 3, 4, 12), (2, 2, 3, 11)])
def test_step_with_more_candidates(dtype, N, B, V, K):
    rng = np.random.default_rng(N * 100 + K)
    scores = rng.normal(size=(N * B, V)).astype(dtype)
    beam_scores = rng.normal(size=(N, B)).astype(dtype)
    beam_scores[:, 1:] -= 1.0
    ref = ref_beam_step(scores, beam_scores, eos_id=EOS, candidates=K)
    lp = log_softmax(scores.astype(np.float64))
    for n in range(N):  # brute force: sort (−score, flat index), pad past B·V
        total = beam_scores[n].astype(np.float64)[:, None] + lp[n * B : (n + 1) * B]
        order = sorted(range(B * V), key=lambda f: (-total[f // V, f % V], f))[:K]
        assert list(ref.cand_beam[n, : len(order)]) == [f // V for f in order]
        assert list(ref.cand_token[n, : len(order)]) == [f % V for f in order]
        assert (ref.cand_token[n, len(order) :] == -1).all()
        alive = [r for r, f in enumerate(order) if f % V != EOS][:B]
        assert list(ref.alive[n, : len(alive)]) == alive
    got = beam_step(scores, beam_scores, eos_id=EOS, candidates=K)
    for a, b in zip(got, ref):
        assert a.shape == b.shape
    np.testing.assert_array_equal(got.cand_beam, ref.cand_beam)
    np.testing.assert_array_equal(got.cand_token, ref.cand_token)
    np.testing.assert_array_equal(got.cand_finished, ref.cand_finished)
    np.testing.assert_array_equal(got.alive, ref.alive)
    # the kernel sums exp in another order than NumPy: scores agree to rounding (as in test_search)
    tol = 1e-13 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(got.cand_score, ref.cand_score, atol=tol, rtol=tol)
    np.testing.assert_allclose(got.cand_logp, ref.cand_logp, atol=tol, rtol=tol)


def test_step_candidates_errors():
    s, b = np.zeros((4, 5)), np.zeros((2, 2))
    with pytest.raises(ValueError, match="candidates: must be >= 2B = 4"):
        beam_step(s, b, eos_id=0, candidates=3)
    with pytest.raises(TypeError, match="candidates"):
        beam_step(s, b, eos_id=0, candidates=4.0)
    assert beam_step(s, b, eos_id=0, candidates=4).cand_score.shape == (2, 4)


# ---------------------------------------------------------------------------------------------
# Diverse beam search
# ---------------------------------------------------------------------------------------------


def diverse_greedy(model, item, G, lam, max_len):
    """Brute force of diverse beam search with one beam per group: ``G`` greedy decoders run side
    by side; at every step decoder ``g`` takes the argmax (lowest id on ties) of its log-probs
    less ``lam`` per time a decoder before it took the token at this step - a decoder that
    ends with ``<EOS>`` still took its best other token, the beam it keeps alive this step (so
    does Hugging Face). Returns each decoder's (tokens, summed penalised log-prob)."""
    seqs = [() for _ in range(G)]
    sums = [0.0] * G
    live = [True] * G
    for _ in range(max_len):
        taken = []
        for g in range(G):
            if not live[g]:
                continue
            lp = hamming_diversity(model.logp(item, seqs[g])[None, :], taken, lam)[0]
            v = int(np.argmax(lp))
            seqs[g] += (v,)
            sums[g] += lp[v]
            if v == EOS:
                live[g] = False
                lp[EOS] = -np.inf
                taken.append(int(np.argmax(lp)))
            else:
                taken.append(v)
        if not any(live):
            break
    return list(zip(seqs, sums))


@DRIVERS
@pytest.mark.parametrize("lam", [0.0, 0.5, 3.0])
def test_one_beam_per_group_is_diverse_greedy(driver, lam):
    V, N, G, max_len = 6, 2, 3, 5
    for seed in range(3):
        model = Markov2(V, N, seed=seed, eos_bias=0.5)
        results = run_beam(
            model, N, G, driver, max_len=max_len, num_beam_groups=G, diversity_penalty=lam, n_best=G, length_penalty=0.0
        )
        for n in range(N):
            want = diverse_greedy(model, n, G, lam, max_len)
            got = sorted(((h.tokens, h.log_prob) for h in results[n]), key=lambda x: -x[1])
            want = sorted(want, key=lambda x: -x[1])
            assert [t for t, _ in got] == [t for t, _ in want], (seed, n)
            np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=0, atol=1e-12)


def test_groups_without_penalty_are_copies_of_one_search():
    """lambda = 0: every group runs the same search, so each offers the plain search's best."""
    model = Markov2(5, 2, seed=4)
    plain = run_beam(model, 2, 2, max_len=6, n_best=2)
    grouped = run_beam(model, 2, 6, max_len=6, n_best=6, num_beam_groups=3)
    for p, g in zip(plain, grouped):
        assert [h.tokens for h in g] == [h.tokens for h in p for _ in range(3)]


def test_diversity_pushes_first_tokens_apart():
    model = Markov2(8, 1, seed=2, eos_bias=-3.0)
    out = run_beam(model, 1, 4, max_len=4, n_best=4, num_beam_groups=4, diversity_penalty=100.0)[0]
    assert len({h.tokens[0] for h in out}) == 4
    plain = run_beam(model, 1, 4, max_len=4, n_best=4, num_beam_groups=4)[0]
    assert len({h.tokens[0] for h in plain}) == 1


def test_diversity_counts_in_the_score_not_in_score_of_tokens():
    model = Markov2(6, 1, seed=5, eos_bias=-1.0)
    out = run_beam(model, 1, 4, max_len=5, n_best=4, num_beam_groups=2, diversity_penalty=2.0, length_penalty=0.0)[0]
    state = (np.zeros(len(out), dtype=np.int64), [np.full(len(out), BOS, dtype=np.int64)])
    model_lp = score(model.step, state, out, bos_id=BOS)
    assert all(h.log_prob <= m + 1e-12 for h, m in zip(out, model_lp))
    assert any(h.log_prob < m - 1e-9 for h, m in zip(out, model_lp))


# ---------------------------------------------------------------------------------------------
# Coverage penalty
# ---------------------------------------------------------------------------------------------


def test_coverage_penalty_by_definition():
    assert coverage_penalty([0.5, 2.0, 1.0], 0.4) == pytest.approx(0.4 * np.log(0.5))
    assert coverage_penalty([0.5, 0.25], 0.0) == 0.0
    assert coverage_penalty([0.0, 1.0], 1.0) == -np.inf


def exhaustive_best_with_coverage(model, item, *, max_len, alpha, beta, n_src):
    best = None

    def consider(tokens, log_prob, cov):
        nonlocal best
        s = normalised_score(log_prob, len(tokens), alpha) + coverage_penalty(cov[:n_src], beta)
        if best is None or s > best[0]:
            best = (s, tokens)

    def expand(prefix, log_prob, cov):
        cov = cov + model.attention(item, prefix)
        lp = model.logp(item, prefix)
        for v in range(model.V):
            if v == EOS:
                consider(prefix + (EOS,), log_prob + lp[EOS], cov)
            elif len(prefix) + 1 == max_len:
                consider(prefix + (v,), log_prob + lp[v], cov)
            else:
                expand(prefix + (v,), log_prob + lp[v], cov)

    expand((), 0.0, np.zeros(model.S))
    return best


@DRIVERS
@pytest.mark.parametrize("beta", [0.0, 0.6, 3.0])
def test_wide_beam_with_coverage_finds_the_true_best(driver, beta):
    V, max_len, N = 4, 3, 2
    B = V**max_len
    for seed in range(2):
        model = Attending(V, N, seed=seed, S=3)
        results = run_beam(
            model,
            N,
            B,
            driver,
            max_len=max_len,
            length_penalty=0.7,
            coverage_penalty=beta if beta else 1e-300,
            source_lengths=[3, 2],
        )
        for n, hyps in enumerate(results):
            want = exhaustive_best_with_coverage(model, n, max_len=max_len, alpha=0.7, beta=beta, n_src=[3, 2][n])
            assert hyps[0].tokens == want[1], (seed, n)
            assert hyps[0].score == pytest.approx(want[0], abs=1e-12)


def test_attention_of_the_model_matches_its_step():
    model = Attending(5, 2, seed=1)
    lp, state, att = model.step(np.array([3, 4]), model.init_state(2))
    np.testing.assert_allclose(att[1], model.attention(1, [4]))


# ---------------------------------------------------------------------------------------------
# Sampling inside beam search
# ---------------------------------------------------------------------------------------------


def test_draw_candidates_distribution_and_distinct():
    s = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    rng = np.random.default_rng(0)
    counts = np.zeros(4)
    for _ in range(4000):
        counts[draw_candidates(s, 1, rng.random(1), 1.0)] += 1
    np.testing.assert_allclose(counts / 4000, [0.5, 0.3, 0.15, 0.05], atol=0.03)
    for _ in range(50):
        d = draw_candidates(s, 3, rng.random(3), 0.5)
        assert len(set(d)) == 3 and list(d) == sorted(d)
    hot = np.zeros(4)  # a high temperature flattens the draw
    for _ in range(2000):
        hot[draw_candidates(s, 1, rng.random(1), 100.0)] += 1
    assert hot.min() > 400
    # -inf candidates are drawn only when nothing finite is left, in pool order
    assert list(draw_candidates([0.0, -np.inf, -np.inf], 2, [0.9, 0.9], 1.0)) == [0, 1]


@DRIVERS
def test_small_sampling_pool_is_plain_beam_search(driver):
    model = Markov2(6, 2, seed=3)
    plain = run_beam(model, 2, 3, driver, max_len=5, n_best=3)
    for k in (1, 4, 6):
        assert run_beam(model, 2, 3, driver, max_len=5, n_best=3, sampling_topk=k, seed=1) == plain


@DRIVERS
def test_sampling_in_beams_is_reproducible_and_varies(driver):
    model = Markov2(7, 2, seed=6, scale=0.5)
    kw = dict(max_len=5, n_best=2, sampling_topk=20, sampling_temperature=2.0)
    a = run_beam(model, 2, 2, driver, seed=3, **kw)
    assert run_beam(model, 2, 2, driver, seed=3, **kw) == a
    outs = {tuple(h.tokens for h in run_beam(model, 2, 2, driver, seed=s, **kw)[0]) for s in range(8)}
    assert len(outs) > 1
    # log-probs stay the model's: sampling picks candidates, it does not change their scores
    for hyps in a:
        for h in hyps:
            assert h.log_prob == pytest.approx(sum(h.step_log_probs))


@DRIVERS
def test_sampling_draws_from_the_top_k_only(driver):
    """Step 0 expands one beam: its candidates are tokens, so every hypothesis starts with one of
    the top k tokens of the first step."""
    model = Markov2(9, 1, seed=7, scale=0.3, eos_bias=-5.0)
    lp0 = model.logp(0, ())
    top = set(np.argsort(-lp0, kind="stable")[:5])
    for s in range(10):
        out = run_beam(model, 1, 2, driver, max_len=3, n_best=2, sampling_topk=5, seed=s)[0]
        assert {h.tokens[0] for h in out} <= top


def test_per_item_seeds_make_an_item_independent_of_the_batch():
    model = Markov2(6, 3, seed=8, scale=0.5)
    kw = dict(max_len=5, n_best=2, sampling_topk=10)
    both = run_beam(model, 3, 2, seed=[5, 6, 7], **kw)
    alone_state = (np.repeat([1], 2), [np.full(2, BOS, dtype=np.int64)])
    alone = beam_search(model.step, alone_state, batch_size=1, beam_size=2, bos_id=BOS, eos_id=EOS, seed=[6], **kw)
    assert alone[0] == both[1]


# ---------------------------------------------------------------------------------------------
# The fast driver equals the reference driver
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_api_driver_equals_reference_driver(seed):
    rng = np.random.default_rng(500 + seed)
    V, N = int(rng.integers(3, 8)), int(rng.integers(1, 4))
    G = int(rng.choice([1, 2, 3]))
    gs = int(rng.integers(1, 3))
    B = G * gs
    model = Attending(V, N, seed=seed, S=int(rng.integers(1, 4)), eos_bias=float(rng.normal()))
    kw = dict(
        max_len=int(rng.integers(2, 7)),
        num_beam_groups=G,
        diversity_penalty=float(rng.choice([0.0, 0.7, 2.0])),
        coverage_penalty=float(rng.choice([1e-300, 0.5])),
        early_stopping=True if seed % 2 else "exact",
        n_best=int(rng.integers(1, B + 1)),
        patience=float(rng.choice([0.5, 1.0, 2.0])),
        length_penalty=float(rng.choice([0.0, 0.7])),
    )
    if seed % 3 == 0:
        kw.update(
            sampling_topk=int(rng.integers(1, 3 * gs + 4)),
            sampling_temperature=0.8,
            seed=[int(s) for s in rng.integers(0, 99, size=N)] if seed % 2 else 11,
        )
    if seed % 4 == 1:
        kw.update(no_repeat_ngram_size=2, repetition_penalty=1.3, suppress_tokens=[V - 1])
    if seed % 5 == 2:
        kw["prefix"] = [list(rng.integers(1, V, size=int(rng.integers(0, 3)))) for _ in range(N)]
        kw["max_len"] = max(kw["max_len"], 3)
    got = run_beam(model, N, B, beam_search, **kw)
    want = run_beam(model, N, B, ref_beam_search, **kw)
    assert got == want, kw


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw,exc,match",
    [
        (dict(beam_size=4, num_beam_groups=3), ValueError, "num_beam_groups: must divide beam_size = 4"),
        (dict(num_beam_groups=0), ValueError, "num_beam_groups: must be >= 1"),
        (dict(diversity_penalty="1"), TypeError, "diversity_penalty: expected a real number"),
        (dict(diversity_penalty=float("nan")), ValueError, "diversity_penalty: must be finite"),
        (dict(coverage_penalty=-1.0), ValueError, "coverage_penalty: must be >= 0"),
        (dict(coverage_penalty=1.0, source_lengths=[3]), ValueError, "source_lengths: expected one length per item"),
        (dict(coverage_penalty=1.0, source_lengths=[3, 0]), ValueError, r"source_lengths\[1\]: must be >= 1"),
        (dict(sampling_topk=0), ValueError, "sampling_topk: must be >= 1"),
        (dict(sampling_temperature=0.0), ValueError, "sampling_temperature: must be > 0"),
        (dict(sampling_topk=9, seed=[1]), ValueError, "seed: expected one seed per item"),
    ],
)
def test_argument_errors(kw, exc, match):
    model = Attending(5, 2, seed=0)
    args = dict(batch_size=2, beam_size=2, bos_id=BOS, eos_id=EOS, max_len=3)
    args.update(kw)
    B = args.pop("beam_size")
    with pytest.raises(exc, match=match):
        beam_search(model.step, model.init_state(2, B), beam_size=B, **args)


def test_coverage_needs_the_attention():
    model = Markov2(5, 2, seed=0)
    with pytest.raises(ValueError, match=r"step: must return \(log_probs, state, attention\)"):
        run_beam(model, 2, 2, coverage_penalty=1.0)
    att_model = Attending(5, 2, seed=0, S=2)
    with pytest.raises(ValueError, match="source_lengths: 3 exceeds the 2 source positions"):
        run_beam(att_model, 2, 2, coverage_penalty=1.0, source_lengths=[3, 1])

    def bad(tokens, state):
        lp, state, att = att_model.step(tokens, state)
        return lp, state, -att

    with pytest.raises(ValueError, match="attention weights that are negative"):
        beam_search(
            bad,
            att_model.init_state(2, 2),
            batch_size=2,
            beam_size=2,
            bos_id=BOS,
            eos_id=EOS,
            max_len=3,
            coverage_penalty=1.0,
        )


# ---------------------------------------------------------------------------------------------
# The models and the demo
# ---------------------------------------------------------------------------------------------


def tiny_models():
    from seqkernels.models import LanguageModel, Seq2Seq, Vocab

    lm = LanguageModel(Vocab(list("abcdef")), embedding_dim=4, hidden_size=8, dtype=np.float64, seed=1, num_threads=1)
    vocab = Vocab(list("abcdefgh"), "word")
    s2s = Seq2Seq(vocab, vocab, embedding_dim=4, hidden_size=8, dtype=np.float64, seed=2, num_threads=1)
    return lm, s2s


def test_language_model_diverse_and_sampled_beams():
    lm, _ = tiny_models()
    specials = [i for i in range(len(lm.vocab)) if i != lm.vocab.eos_id and not lm.vocab.decode([i]).isalpha()]
    out = lm.beam_search(
        "ab",
        beam_size=4,
        n_best=4,
        max_len=3,
        min_len=2,
        num_beam_groups=4,
        diversity_penalty=1e3,
        suppress_tokens=specials,
    )
    assert len({text[2] for text in out}) == 4  # every group starts with its own character
    kw = dict(beam_size=2, max_len=6, sampling_topk=12, sampling_temperature=1.5)
    a = lm.beam_search(["ab", "c"], seed=[3, 4], **kw)
    assert lm.beam_search(["ab", "c"], seed=[3, 4], **kw) == a
    assert lm.beam_search("c", seed=[4], **kw) == a[1]
    with pytest.raises(ValueError, match="num_beam_groups: must divide beam_size"):
        lm.beam_search("a", beam_size=3, num_beam_groups=2)


def test_seq2seq_coverage_uses_the_attention():
    _, s2s = tiny_models()
    src = ["a b c d e", "f g"]
    src_ids, src_len = s2s._batch(src)
    enc_out, h0 = s2s._encode(src_ids, src_len)
    step = s2s._decoder_step(enc_out, src_len, with_attention=True)
    lp, _, att = step(np.full(2, s2s.tgt_vocab.bos_id), h0)
    np.testing.assert_allclose(att.sum(axis=1), 1.0)
    assert att.shape == (2, 5) and (att[1, 2:] == 0).all()  # padding gets no attention
    plain = s2s.translate(src, beam_size=3, n_best=3, max_len=6)
    tiny = s2s.translate(src, beam_size=3, n_best=3, max_len=6, coverage_penalty=1e-300)
    assert tiny == plain  # a negligible beta changes nothing
    strong = s2s.translate(src, beam_size=3, n_best=3, max_len=6, coverage_penalty=5.0)
    assert [sorted(s) for s in strong] == [sorted(p) for p in plain]  # the same hypotheses, re-ranked
    assert isinstance(s2s.translate("a b", beam_size=2, num_beam_groups=2, diversity_penalty=0.5), str)
    assert isinstance(s2s.translate("a b", beam_size=2, sampling_topk=8, seed=1), str)


def test_seq2seq_coverage_needs_attention():
    from seqkernels.models import Seq2Seq, Vocab

    vocab = Vocab(list("ab"), "word")
    model = Seq2Seq(vocab, vocab, embedding_dim=4, hidden_size=8, attention=False, num_threads=1)
    with pytest.raises(ValueError, match="coverage_penalty: needs a model with attention"):
        model.translate("a b", coverage_penalty=0.5)


def test_demo_shows_diverse_and_sampled_beams(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqkernels",
            "demo",
            "--quick",
            "--no-progress",
            "--no-plot",
            "--threads",
            "1",
            "--samples",
            "0",
            "--no-repeat-ngram",
            "0",
            "--beam-size",
            "4",
            "--beam-groups",
            "2",
            "--sampling-topk",
            "20",
            "--save",
            str(tmp_path / "m.npz"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("  diverse | ") == 4 and proc.stdout.count("  beam    | ") == 4
    assert proc.stdout.count("  sampled | ") == 3
    bad = subprocess.run(
        [sys.executable, "-m", "seqkernels", "demo", "--beam-size", "5", "--beam-groups", "2"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert bad.returncode != 0 and "--beam-groups: must divide --beam-size 5" in bad.stderr


# ---------------------------------------------------------------------------------------------
# GPU (CuPy): never run here (no GPU on the build machine)
# ---------------------------------------------------------------------------------------------


@pytest.mark.cuda
def test_groups_coverage_and_sampling_with_a_cupy_model():
    import cupy

    N, V, G = 2, 7, 2
    model = Attending(V, N, seed=4, S=3)
    A, C, D, E, F = (cupy.asarray(m) for m in (model.A, model.C, model.D, model.E, model.F))

    def gpu_step(tokens, state):
        items, (prev,) = state
        z = A[tokens] + C[prev] + D[items]
        z = z - z.max(axis=1, keepdims=True)
        lp = z - cupy.log(cupy.exp(z).sum(axis=1, keepdims=True))
        a = E[tokens, prev] + F[items]
        att = cupy.exp(a - a.max(axis=1, keepdims=True))
        return lp, (items, [tokens.copy()]), att / att.sum(axis=1, keepdims=True)

    items, (prev,) = model.init_state(N, 2 * G)
    kw = dict(
        num_beam_groups=G,
        diversity_penalty=0.8,
        coverage_penalty=0.5,
        sampling_topk=9,
        seed=[1, 2],
        n_best=4,
        max_len=5,
    )
    got = beam_search(
        gpu_step,
        (cupy.asarray(items), [cupy.asarray(prev)]),
        batch_size=N,
        beam_size=2 * G,
        bos_id=BOS,
        eos_id=EOS,
        **kw,
    )
    want = run_beam(model, N, 2 * G, **kw)
    for g, w in zip(got, want):
        assert [h.tokens for h in g] == [h.tokens for h in w]
        np.testing.assert_allclose([h.score for h in g], [h.score for h in w], atol=1e-12)
    # the wider pool on GPU arrays runs the CPU step on host copies: the same candidates
    scores = cupy.asarray(np.random.default_rng(0).normal(size=(4, 9)))
    beam_scores = cupy.zeros((2, 2))
    gpu = beam_step(scores, beam_scores, eos_id=EOS, candidates=7)
    cpu = beam_step(scores.get(), beam_scores.get(), eos_id=EOS, candidates=7)
    assert isinstance(gpu.cand_token, cupy.ndarray)
    np.testing.assert_array_equal(gpu.cand_token.get(), cpu.cand_token)
