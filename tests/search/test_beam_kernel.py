"""The fused C++ beam step (seqkernels.ops.beam_step -> seqkernels._C) against its float64 NumPy
twin (seqkernels.reference.search.beam_step), under every CPU kernel copy the machine can run."""

import numpy as np
import pytest

from seqkernels import ops
from seqkernels.reference import search as ref
from tests.tolerance import assert_within_rule


def random_case(rng, trial):
    """Odd sizes, ties (rounded logits), dead beams, all -inf rows, log-prob input, forbidden EOS."""
    N, B = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    V = int(rng.choice([1, 2, 3, 7, 65, 129, 1000]))
    scores = 3.0 * rng.standard_normal((N * B, V))
    if trial % 3 == 0:
        scores = np.round(scores)  # many exact ties: the lower flat index must win
    if trial % 10 == 0:
        scores[0] = -np.inf
    beam_scores = -np.abs(rng.standard_normal((N, B)))
    if trial % 2 == 0:
        beam_scores[:, 1:] = -np.inf  # step 0: only beam 0 expands
    log_probs, forbid_eos = trial % 4 == 1, trial % 5 == 2
    if log_probs:
        scores = ref.log_softmax(scores)
    return scores, beam_scores, int(rng.integers(0, V)), log_probs, forbid_eos


def assert_same_candidates(got, want):
    for name in ("cand_beam", "cand_token", "cand_finished", "alive"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)


@pytest.mark.parametrize("trial", range(40))
def test_float64_kernel_equals_reference(trial, cpu_capability):
    rng = np.random.default_rng(1000 + trial)
    scores, beam_scores, eos, lp, fe = random_case(rng, trial)
    with np.errstate(invalid="ignore"):
        want = ref.beam_step(scores, beam_scores, eos_id=eos, log_probs=lp, forbid_eos=fe)
    got = ops.beam_step(scores, beam_scores, eos_id=eos, log_probs=lp, forbid_eos=fe)
    assert_same_candidates(got, want)
    for name in ("cand_score", "cand_logp"):
        g, w = getattr(got, name), getattr(want, name)
        assert g.dtype == np.float64
        np.testing.assert_array_equal(np.isfinite(g), np.isfinite(w))
        finite = np.isfinite(w)
        np.testing.assert_allclose(g[finite], w[finite], rtol=1e-13, atol=1e-13, err_msg=name)
        np.testing.assert_array_equal(g[~finite], w[~finite])


@pytest.mark.parametrize("trial", range(40))
def test_float32_kernel_within_tolerance_rule(trial, cpu_capability):
    rng = np.random.default_rng(2000 + trial)
    scores, beam_scores, eos, lp, fe = random_case(rng, trial)
    s32, b32 = scores.astype(np.float32), beam_scores.astype(np.float32)
    with np.errstate(invalid="ignore"):
        want64 = ref.beam_step(s32.astype(np.float64), b32.astype(np.float64), eos_id=eos, log_probs=lp, forbid_eos=fe)
        want32 = ref.beam_step(s32, b32, eos_id=eos, log_probs=lp, forbid_eos=fe)
    got = ops.beam_step(s32, b32, eos_id=eos, log_probs=lp, forbid_eos=fe)
    assert_same_candidates(got, want64)
    for name in ("cand_score", "cand_logp"):
        g, w64, w32 = getattr(got, name), getattr(want64, name), getattr(want32, name)
        assert g.dtype == np.float32
        finite = np.isfinite(w64)
        np.testing.assert_array_equal(g[~finite], w64[~finite])
        if finite.any():
            assert_within_rule(name, g[finite], w64[finite], w32[finite])


def test_large_vocabulary_threads_agree():
    rng = np.random.default_rng(7)
    scores = rng.standard_normal((16 * 5, 32000)).astype(np.float32)
    beam_scores = -np.abs(rng.standard_normal((16, 5))).astype(np.float32)
    one = ops.beam_step(scores, beam_scores, eos_id=2, num_threads=1)
    two = ops.beam_step(scores, beam_scores, eos_id=2, num_threads=2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    want = ref.beam_step(scores.astype(np.float64), beam_scores.astype(np.float64), eos_id=2)
    assert_same_candidates(one, want)


def test_nan_is_reported_with_its_item():
    scores = np.zeros((6, 5), np.float32)
    scores[4, 3] = np.nan
    with pytest.raises(ValueError, match=r"scores: NaN or \+inf in the rows of item 2"):
        ops.beam_step(scores, np.zeros((3, 2), np.float32), eos_id=1)


def test_num_threads_is_validated():
    with pytest.raises(ValueError, match="num_threads"):
        ops.beam_step(np.zeros((2, 3)), np.zeros((1, 2)), eos_id=0, num_threads=-1)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("trial", range(30))
def test_cuda_kernel_equals_cpu_kernel(trial, dtype):
    cp = pytest.importorskip("cupy")
    rng = np.random.default_rng(3000 + trial)
    scores, beam_scores, eos, lp, fe = random_case(rng, trial)
    scores, beam_scores = scores.astype(dtype), beam_scores.astype(dtype)
    cpu = ops.beam_step(scores, beam_scores, eos_id=eos, log_probs=lp, forbid_eos=fe)
    gpu = ops.beam_step(cp.asarray(scores), cp.asarray(beam_scores), eos_id=eos, log_probs=lp, forbid_eos=fe)
    gpu = type(gpu)(*(cp.asnumpy(a) for a in gpu))
    assert_same_candidates(gpu, cpu)
    rtol = 1e-13 if dtype == np.float64 else 2e-6
    for name in ("cand_score", "cand_logp"):
        g, c = getattr(gpu, name), getattr(cpu, name)
        finite = np.isfinite(c)
        np.testing.assert_array_equal(np.isfinite(g), finite)
        np.testing.assert_allclose(g[finite], c[finite], rtol=rtol, atol=rtol, err_msg=name)


@pytest.mark.cuda
def test_cuda_large_vocabulary_and_nan():
    cp = pytest.importorskip("cupy")
    rng = np.random.default_rng(11)
    scores = rng.standard_normal((64 * 5, 32000)).astype(np.float32)
    beam_scores = -np.abs(rng.standard_normal((64, 5))).astype(np.float32)
    cpu = ops.beam_step(scores, beam_scores, eos_id=2)
    gpu = ops.beam_step(cp.asarray(scores), cp.asarray(beam_scores), eos_id=2)
    np.testing.assert_array_equal(cp.asnumpy(gpu.cand_token), cpu.cand_token)
    np.testing.assert_array_equal(cp.asnumpy(gpu.cand_beam), cpu.cand_beam)
    again = ops.beam_step(cp.asarray(scores), cp.asarray(beam_scores), eos_id=2)  # deterministic
    np.testing.assert_array_equal(cp.asnumpy(again.cand_score), cp.asnumpy(gpu.cand_score))
    scores[7, 100] = np.nan
    with pytest.raises(ValueError, match=r"NaN or \+inf in the rows of item 1"):
        ops.beam_step(cp.asarray(scores), cp.asarray(beam_scores), eos_id=2)


# ---- CUDA launch geometry: host-side helpers (need the _cuda extension, not a GPU) ----------------
def _cuda_module():
    from seqkernels._backend import _cuda

    if _cuda is None:
        pytest.skip("seqkernels was built without the CUDA extension")
    return _cuda


def test_cuda_chunk_blocks_tile_every_item_exactly():
    _cuda = _cuda_module()
    for items, beams, vocab in [(1, 1, 1), (3, 2, 4095), (2, 5, 4097), (7, 32, 50000)]:
        rows, chunks, chunk_blocks, merge_blocks = _cuda.beam_step_grid(items, beams, vocab)
        assert (rows, merge_blocks, chunk_blocks) == (items * beams, items, items * chunks)
        covered = {}
        for block in range(chunk_blocks):
            item, lo, hi = _cuda.beam_chunk_of_block(block, chunks, beams, vocab)
            assert 0 <= lo < hi <= beams * vocab
            covered.setdefault(item, []).append((lo, hi))
        assert sorted(covered) == list(range(items))
        for ranges in covered.values():  # contiguous, in block order, from 0 to B·V
            assert ranges[0][0] == 0 and ranges[-1][1] == beams * vocab
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_cuda_grid_is_one_dimensional_beyond_65535_items():
    _cuda = _cuda_module()
    items = 70_000  # gridDim.y stops at 65,535: the chunk blocks must all be along x
    rows, chunks, chunk_blocks, _ = _cuda.beam_step_grid(items, 4, 30_000)
    assert chunk_blocks == items * chunks and chunk_blocks < 2**31
    assert _cuda.beam_chunk_of_block(chunk_blocks - 1, chunks, 4, 30_000)[0] == items - 1


def test_cuda_chunk_range_near_two_to_the_31():
    _cuda = _cuda_module()
    beams, vocab = 2, 2**30 - 1  # B·V = 2^31 - 2: the last chunk's lo + chunk size passes 2^31
    total = beams * vocab
    _, chunks, _, _ = _cuda.beam_step_grid(1, beams, vocab)
    item, lo, hi = _cuda.beam_chunk_of_block(chunks - 1, chunks, beams, vocab)
    assert (item, hi) == (0, total) and 0 < hi - lo <= 4096
    item, lo, hi = _cuda.beam_chunk_of_block(2 * chunks - 1, chunks, beams, vocab)  # second item
    assert (item, hi) == (1, total)


def test_cuda_binding_rejects_grids_past_two_to_the_31():
    _cuda = _cuda_module()
    args = (0,) * 9  # outputs, scratch, bad_item, stream: the size checks come first
    with pytest.raises(ValueError, match="N\\*B and the number of candidate chunks"):
        _cuda.beam_step("float32", 1, 1, 2**30, 4, 10, 0, False, False, *args)
    with pytest.raises(ValueError, match="B\\*V must be below 2\\^31"):
        _cuda.beam_step("float32", 1, 1, 1, 2, 2**30, 0, False, False, *args)


@pytest.mark.cuda
def test_cuda_more_than_65535_items():
    cp = pytest.importorskip("cupy")
    rng = np.random.default_rng(12)
    items, beams, vocab = 70_000, 2, 9
    scores = rng.standard_normal((items * beams, vocab)).astype(np.float32)
    beam_scores = -np.abs(rng.standard_normal((items, beams))).astype(np.float32)
    cpu = ops.beam_step(scores, beam_scores, eos_id=1)
    gpu = ops.beam_step(cp.asarray(scores), cp.asarray(beam_scores), eos_id=1)
    gpu = type(gpu)(*(cp.asnumpy(a) for a in gpu))
    assert_same_candidates(gpu, cpu)
    np.testing.assert_allclose(gpu.cand_score, cpu.cand_score, rtol=2e-6, atol=2e-6)


def random_controls(rng, trial, N, B, V):
    """History with repeats (a small alphabet), every control on or off by trial, a forced row."""
    R = N * B
    L = int(rng.integers(0, 9))
    history = rng.integers(0, min(V, 3), size=(R, L))
    kw = dict(history=history)
    if trial % 2 == 0:
        kw["repetition_penalty"] = float(rng.choice([0.6, 1.3, 2.0]))
    if trial % 3 != 2:
        kw["no_repeat_ngram_size"] = int(rng.integers(1, 4))
    if trial % 4 != 3:
        kw["banned"] = np.where(rng.random((R, 3)) < 0.5, rng.integers(0, V, size=(R, 3)), -1)
    if trial % 5 == 0:
        kw["forced"] = np.where(rng.random(R) < 0.5, rng.integers(0, V, size=R), -1)
    return kw


@pytest.mark.parametrize("trial", range(60))
def test_controls_kernel_equals_reference(trial, cpu_capability):
    rng = np.random.default_rng(3000 + trial)
    scores, beam_scores, eos, lp, fe = random_case(rng, trial)
    N, B = beam_scores.shape
    kw = random_controls(rng, trial, N, B, scores.shape[1])
    with np.errstate(invalid="ignore"):
        want = ref.beam_step(scores, beam_scores, eos_id=eos, log_probs=lp, forbid_eos=fe, **kw)
        want32 = ref.beam_step(
            scores.astype(np.float32), beam_scores.astype(np.float32), eos_id=eos, log_probs=lp, forbid_eos=fe, **kw
        )
    got = ops.beam_step(scores, beam_scores, eos_id=eos, log_probs=lp, forbid_eos=fe, **kw)
    assert_same_candidates(got, want)
    for name in ("cand_score", "cand_logp"):
        g, w = getattr(got, name), getattr(want, name)
        finite = np.isfinite(w)
        np.testing.assert_array_equal(g[~finite], w[~finite])
        np.testing.assert_allclose(g[finite], w[finite], rtol=1e-13, atol=1e-13, err_msg=name)
    got32 = ops.beam_step(
        scores.astype(np.float32), beam_scores.astype(np.float32), eos_id=eos, log_probs=lp, forbid_eos=fe, **kw
    )
    if trial % 3 != 0:  # rounded logits tie exactly in float64 only
        assert_same_candidates(got32, want)
    for name in ("cand_score", "cand_logp"):
        g, w64, w32 = getattr(got32, name), getattr(want, name), getattr(want32, name)
        finite = np.isfinite(w64) & np.isfinite(g)
        if finite.any() and trial % 3 != 0:
            assert_within_rule(name, g[finite], w64[finite], w32[finite])


def test_controls_with_a_large_vocabulary_and_the_given_hashes():
    """Overrides in many 64-token blocks, hashes passed in, several threads."""
    rng = np.random.default_rng(7)
    N, B, V = 6, 4, 5000
    scores = rng.standard_normal((N * B, V))
    beam_scores = -np.abs(rng.standard_normal((N, B)))
    history = rng.integers(0, 40, size=(N * B, 30))
    kw = dict(
        history=history, repetition_penalty=1.5, no_repeat_ngram_size=2, banned=rng.integers(-1, V, size=(N * B, 50))
    )
    want = ref.beam_step(scores, beam_scores, eos_id=0, **kw)
    for threads in (1, 3):
        got = ops.beam_step(
            scores, beam_scores, eos_id=0, num_threads=threads, history_hash=ref.ngram_hashes(history, 2), **kw
        )
        assert_same_candidates(got, want)


def test_controls_are_validated():
    scores, beam_scores = np.zeros((2, 5)), np.zeros((1, 2))
    with pytest.raises(ValueError, match="history: token 5"):
        ops.beam_step(scores, beam_scores, eos_id=0, history=np.full((2, 1), 5), repetition_penalty=2.0)
    with pytest.raises(ValueError, match="history: needed"):
        ops.beam_step(scores, beam_scores, eos_id=0, no_repeat_ngram_size=2)
    with pytest.raises(ValueError, match="repetition_penalty"):
        ops.beam_step(scores, beam_scores, eos_id=0, history=np.zeros((2, 1), int), repetition_penalty=0.0)
    with pytest.raises(ValueError, match="banned: token 9"):
        ops.beam_step(scores, beam_scores, eos_id=0, banned=np.full((2, 1), 9))
    with pytest.raises(ValueError, match=r"forced: expected shape \(2,\)"):
        ops.beam_step(scores, beam_scores, eos_id=0, forced=np.zeros(3, int))
    with pytest.raises(ValueError, match="history_hash"):
        ops.beam_step(
            scores,
            beam_scores,
            eos_id=0,
            history=np.zeros((2, 3), int),
            no_repeat_ngram_size=2,
            history_hash=np.zeros((2, 2), np.uint64),
        )
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        ops.beam_step(scores, beam_scores, eos_id=0, history=np.zeros((2, 3), int), no_repeat_ngram_size=-1)


def test_hash_collisions_never_ban_wrongly():
    """All-zero hashes make every (n-1)-gram collide: the kernel must confirm on the tokens."""
    rng = np.random.default_rng(11)
    scores, beam_scores = rng.standard_normal((6, 9)), np.zeros((2, 3))
    history = rng.integers(0, 4, size=(6, 12))
    want = ref.beam_step(scores, beam_scores, eos_id=0, history=history, no_repeat_ngram_size=3)
    got = ops.beam_step(
        scores,
        beam_scores,
        eos_id=0,
        history=history,
        no_repeat_ngram_size=3,
        history_hash=np.zeros((6, 12), np.uint64),
    )
    assert_same_candidates(got, want)
    free = ops.beam_step(scores, beam_scores, eos_id=0)
    assert not np.array_equal(free.cand_token, got.cand_token)  # the bans did change the outcome


@pytest.mark.parametrize("trial", range(20))
def test_marks_for_the_cuda_step_follow_the_reference(trial):
    """_C.beam_step_marks (what the CUDA step reads): per row, the penalised history tokens and the
    masked ones (forbidden EOS, banned, n-gram bans), sorted, one entry per token."""
    from seqkernels._backend import _C

    rng = np.random.default_rng(4000 + trial)
    N, B, V = 2, 3, 9
    kw = random_controls(rng, trial, N, B, V)
    kw.pop("forced", None)
    fe, eos = trial % 2 == 0, int(rng.integers(0, V))
    history = kw["history"].astype(np.int32)
    banned = kw.get("banned")
    offsets, tokens, kinds = _C.beam_step_marks(
        N * B,
        V,
        eos,
        fe,
        history=history,
        repetition_penalty=kw.get("repetition_penalty", 1.0),
        no_repeat_ngram_size=kw.get("no_repeat_ngram_size", 0),
        banned=None if banned is None else banned.astype(np.int32),
    )
    for r in range(N * B):
        want = {}
        if kw.get("repetition_penalty", 1.0) != 1.0:
            for v in set(history[r].tolist()):
                want[v] = want.get(v, 0) | 1
        masked = set(ref.ngram_bans(history[r], kw.get("no_repeat_ngram_size", 0)))
        masked |= {int(v) for v in (banned[r] if banned is not None else []) if v >= 0}
        masked |= {eos} if fe else set()
        for v in masked:
            want[v] = want.get(v, 0) | 2
        got = dict(zip(tokens[offsets[r] : offsets[r + 1]].tolist(), kinds[offsets[r] : offsets[r + 1]].tolist()))
        assert got == want and list(got) == sorted(got), (r, got, want)


@pytest.mark.cuda
@pytest.mark.parametrize("trial", range(30))
def test_cuda_kernel_with_controls_equals_cpu_kernel(trial):
    """Never run here (no GPU): the controls in the CUDA step's per-candidate pass."""
    cp = pytest.importorskip("cupy")
    rng = np.random.default_rng(5000 + trial)
    scores, beam_scores, eos, lp, fe = random_case(rng, trial)
    N, B = beam_scores.shape
    kw = random_controls(rng, trial, N, B, scores.shape[1])
    cpu = ops.beam_step(scores, beam_scores, eos_id=eos, log_probs=lp, forbid_eos=fe, **kw)
    gpu = ops.beam_step(cp.asarray(scores), cp.asarray(beam_scores), eos_id=eos, log_probs=lp, forbid_eos=fe, **kw)
    gpu = type(gpu)(*(cp.asnumpy(a) for a in gpu))
    assert_same_candidates(gpu, cpu)
    for name in ("cand_score", "cand_logp"):
        g, c = getattr(gpu, name), getattr(cpu, name)
        finite = np.isfinite(c)
        np.testing.assert_array_equal(np.isfinite(g), finite)
        np.testing.assert_allclose(g[finite], c[finite], rtol=1e-13, atol=1e-13, err_msg=name)
