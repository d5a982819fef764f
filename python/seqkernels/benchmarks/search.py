"""Beam-search step benchmark: the fused step (``seqkernels.ops.beam_step``) against the float
NumPy reference (``seqkernels.reference.search.beam_step``) and a PyTorch step written the way
Hugging Face transformers writes it (log_softmax + add beam scores + topk over B·V + index
arithmetic), all on the same logits, in one run.

Throughput is steps per second of one step over N items × B beams × V vocabulary (float32 logits).
Every variant's candidates are validated against the reference before timing: identical tokens and
beams, scores within float32 rounding.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from . import harness as hz

SHAPES = [(64, 5, 32000), (16, 4, 32000), (1, 5, 32000), (64, 5, 8000), (128, 10, 32000)]
QUICK_SHAPES = [(64, 5, 32000)]


def make_ours(scores, beam_scores, eos_id, threads):
    from seqkernels import ops

    return lambda: ops.beam_step(scores, beam_scores, eos_id=eos_id, num_threads=threads)


def make_reference(scores, beam_scores, eos_id, threads):
    from seqkernels.reference import search

    return lambda: search.beam_step(scores, beam_scores, eos_id=eos_id)


def make_torch(scores, beam_scores, eos_id, threads):
    import torch

    torch.set_num_threads(threads)
    s, bs = torch.from_numpy(scores), torch.from_numpy(beam_scores)
    N, B = beam_scores.shape
    V = scores.shape[1]

    def step():
        logp = torch.log_softmax(s, dim=-1)  # (N·B, V)
        total = (logp.view(N, B, V) + bs.unsqueeze(-1)).view(N, B * V)
        top, flat = torch.topk(total, 2 * B, dim=1, largest=True, sorted=True)
        beam, token = flat // V, flat % V
        token_logp = logp.view(N, B * V).gather(1, flat)
        finished = (token == eos_id) & (torch.arange(2 * B) < B)
        return top, beam, token, token_logp, finished

    return step


FACTORIES = {"ours": make_ours, "numpy ref": make_reference, "torch": make_torch}


def make_ours_cuda(scores, beam_scores, eos_id, threads):
    import cupy as cp

    from seqkernels import ops

    s, bs = cp.asarray(scores), cp.asarray(beam_scores)
    return lambda: ops.beam_step(s, bs, eos_id=eos_id)


def make_torch_cuda(scores, beam_scores, eos_id, threads):
    import torch

    s, bs = torch.from_numpy(scores).cuda(), torch.from_numpy(beam_scores).cuda()
    N, B = beam_scores.shape
    V = scores.shape[1]
    arange = torch.arange(2 * B, device="cuda")

    def gpu_step():
        logp = torch.log_softmax(s, dim=-1)
        total = (logp.view(N, B, V) + bs.unsqueeze(-1)).view(N, B * V)
        top, flat = torch.topk(total, 2 * B, dim=1, largest=True, sorted=True)
        beam, token = flat // V, flat % V
        token_logp = logp.view(N, B * V).gather(1, flat)
        finished = (token == eos_id) & (arange < B)
        return top, beam, token, token_logp, finished

    return gpu_step


CUDA_FACTORIES = {"ours": make_ours_cuda, "numpy ref": make_reference, "torch": make_torch_cuda}


def check(name, got, want, B):
    """Tokens and beams identical; scores within float32 rounding of the reference's."""
    g_score, g_beam, g_token = (np.asarray(got[i]) for i in range(3))
    if not (np.array_equal(g_beam, want.cand_beam) and np.array_equal(g_token, want.cand_token)):
        raise hz.ValidationError(f"{name}: candidates differ from the reference")
    hz.validate(g_score, want.cand_score, 1e-5, f"{name} cand_score")


def bench_shape(N, B, V, factories, threads, repeats, seed=0, sync=None):
    rng = np.random.default_rng(seed)
    scores = (3.0 * rng.standard_normal((N * B, V))).astype(np.float32)
    beam_scores = -np.abs(rng.standard_normal((N, B))).astype(np.float32)
    eos_id = 2
    fns = {}
    for name, make in factories.items():
        try:
            fns[name] = make(scores, beam_scores, eos_id, threads)
        except ImportError:
            continue
    want = fns["numpy ref"]()
    for name, fn in fns.items():
        if name != "numpy ref":
            check(name, [hz.to_host(o) for o in fn()], want, B)
    before = hz.cpu_snapshot()
    stats = hz.time_blocks(fns, repeats=repeats, warmup=1, rounds=2, min_time=0.3, sync=sync)
    others = hz.others_load(before, hz.cpu_snapshot())
    ms = {n: s["median_ms"] for n, s in stats.items()}
    gb = scores.nbytes / 1e9
    return {
        "N": N,
        "B": B,
        "V": V,
        "ours_ms": ms["ours"],
        "ref_ms": ms.get("numpy ref"),
        "torch_ms": ms.get("torch"),
        "ours_steps_s": 1e3 / ms["ours"],
        "x_ref": ms["numpy ref"] / ms["ours"],
        "x_torch": ms["torch"] / ms["ours"] if "torch" in ms else None,
        "gb_s": gb / (ms["ours"] * 1e-3),
        "iqr_pct": 100 * max(s["iqr_ms"] / s["median_ms"] for s in stats.values()),
        "others_pct": others,
        "stats": stats,
    }


# ---- the decoding controls: the fused step with each control on vs off ---------------------------


def control_variants(R, V, L, rng):
    """``[(name, target overhead % from issue 16 or None, keywords of ops.beam_step)]``: each control
    as a driver calls the step mid-decoding: ``L`` tokens of history per row (drawn
    from 200 ids, so tokens and n-grams repeat), 10 suppressed tokens, n-gram hashes kept by the
    driver (given, not recomputed)."""
    from seqkernels.reference.search import ngram_hashes

    history = rng.integers(3, 203, size=(R, L)).astype(np.int32)
    banned = np.tile(np.arange(100, 110, dtype=np.int32), (R, 1))
    forced = rng.integers(3, V, size=R).astype(np.int32)
    ngram3 = dict(history=history, no_repeat_ngram_size=3, history_hash=ngram_hashes(history, 3))
    return [
        ("off", None, {}),
        ("min_len (EOS masked)", 10, dict(forbid_eos=True)),
        ("repetition_penalty 1.2", 10, dict(history=history, repetition_penalty=1.2)),
        ("suppress 10 tokens", 10, dict(banned=banned)),
        ("forced prefix", 10, dict(forced=forced)),
        ("no_repeat_ngram 3", 25, ngram3),
        ("all but forced", 25, dict(forbid_eos=True, banned=banned, repetition_penalty=1.2, **ngram3)),
    ]


#: Step variants of the controls that live in the driver: the sampling pool (top 50 kept, not 2B).
POOL_VARIANTS = [("sampling pool top-50", None, dict(candidates=50))]


def bench_controls(N, B, V, L, threads, repeats, seed=0, extra=()):
    """Rows: the fused step's median time with each control vs with none, on the same logits
    (candidates checked against the reference first); ``extra``: more variants, as
    :data:`POOL_VARIANTS`."""
    from seqkernels import ops
    from seqkernels.reference import search as ref

    rng = np.random.default_rng(seed)
    scores = (3.0 * rng.standard_normal((N * B, V))).astype(np.float32)
    beam_scores = -np.abs(rng.standard_normal((N, B))).astype(np.float32)
    eos_id = 2
    variants = control_variants(N * B, V, L, rng) + list(extra)
    fns = {}
    for name, _, kw in variants:
        fns[name] = lambda kw=kw: ops.beam_step(scores, beam_scores, eos_id=eos_id, num_threads=threads, **kw)
        want = ref.beam_step(scores, beam_scores, eos_id=eos_id, **{k: v for k, v in kw.items() if k != "history_hash"})
        got = fns[name]()
        finite = np.isfinite(want.cand_score)  # a forced row has a single finite candidate
        if not (
            np.array_equal(got.cand_token, want.cand_token)
            and np.array_equal(got.cand_beam, want.cand_beam)
            and np.array_equal(np.isfinite(got.cand_score), finite)
        ):
            raise hz.ValidationError(f"{name}: candidates differ from the reference")
        # float32 log-sum-exp over V = 32000 terms, summed in another order than NumPy's: 1e-4
        hz.validate(got.cand_score[finite], want.cand_score[finite], 1e-4, f"{name} cand_score")
    before = hz.cpu_snapshot()
    stats = hz.time_blocks(fns, repeats=repeats, warmup=1, rounds=4, min_time=0.3)
    others = hz.others_load(before, hz.cpu_snapshot())
    off = stats["off"]["median_ms"]
    return [
        {
            "control": name,
            "N": N,
            "B": B,
            "V": V,
            "L": L,
            "ms": stats[name]["median_ms"],
            "off_ms": off,
            "overhead_pct": 100 * (stats[name]["median_ms"] / off - 1),
            "target_pct": target,
            "iqr_pct": 100 * stats[name]["iqr_ms"] / stats[name]["median_ms"],
            "others_pct": others,
            "stats": stats[name],
        }
        for name, target, _ in variants
    ]


def bench_search_controls(N, B, V, steps, threads, repeats, seed=0):
    """Rows: a whole ``search.beam_search`` of ``steps`` steps (a step that returns fixed log-probs
    in which ``<EOS>`` never ranks, so every search runs ``steps`` steps) with each of diverse beam
    search, the coverage penalty and sampling inside beam search vs none; ``ms`` per step. These
    controls live in the driver (a copy of the log-probs per step for the groups, host arrays for
    the coverage, host draws for sampling), so they are timed there."""
    from seqkernels import ops, search

    rng = np.random.default_rng(seed)
    eos_id, S = 2, 30
    lp = (3.0 * rng.standard_normal((N * B, V))).astype(np.float32)
    lp[:, eos_id] = -30.0
    lp -= np.log(np.exp(lp.astype(np.float64)).sum(axis=1, keepdims=True)).astype(np.float32)
    att = rng.dirichlet(np.ones(S), size=N * B)

    def step(tokens, state):
        return lp, None

    def step_attending(tokens, state):
        return lp, None, att

    def op(*a, **k):
        return ops.beam_step(*a, num_threads=threads, **k)

    common = dict(batch_size=N, beam_size=B, bos_id=0, eos_id=eos_id, max_len=steps, step_op=op)
    variants = [
        ("search: off", step, {}),
        (f"search: {B} groups, diversity 1.0", step, dict(num_beam_groups=B, diversity_penalty=1.0)),
        (f"search: coverage (S {S})", step_attending, dict(coverage_penalty=0.2)),
        ("search: sampling top-50", step, dict(sampling_topk=50, seed=0)),
    ]
    fns = {name: (lambda f=f, kw=kw: search.beam_search(f, None, **common, **kw)) for name, f, kw in variants}
    for name, fn in fns.items():
        if any(len(h[0].tokens) != steps for h in fn()):
            raise hz.ValidationError(f"{name}: a search ended early")
    before = hz.cpu_snapshot()
    stats = hz.time_blocks(fns, repeats=repeats, warmup=1, rounds=4, min_time=0.3)
    others = hz.others_load(before, hz.cpu_snapshot())
    off = stats["search: off"]["median_ms"] / steps
    return [
        {
            "control": name,
            "N": N,
            "B": B,
            "V": V,
            "L": None,
            "ms": stats[name]["median_ms"] / steps,
            "off_ms": off,
            "overhead_pct": 100 * (stats[name]["median_ms"] / steps / off - 1),
            "target_pct": None,
            "iqr_pct": 100 * stats[name]["iqr_ms"] / stats[name]["median_ms"],
            "others_pct": others,
            "stats": stats[name],
        }
        for name, _, _ in variants
    ]


CONTROL_COLUMNS = [
    ("control", "control", "s"),
    ("N", "N", "d"),
    ("B", "B", "d"),
    ("V", "V", "d"),
    ("L", "history", "d"),
    ("ms", "step ms", ".3f"),
    ("off_ms", "off ms", ".3f"),
    ("overhead_pct", "overhead %", "+.1f"),
    ("target_pct", "target %", lambda v: f"<= {v}"),
    ("iqr_pct", "IQR %", ".0f"),
    ("others_pct", "others CPU %", ".0f"),
]


COLUMNS = [
    ("N", "N", "d"),
    ("B", "B", "d"),
    ("V", "V", "d"),
    ("ours_ms", "ours ms", ".3f"),
    ("ours_steps_s", "ours steps/s", ".0f"),
    ("ref_ms", "numpy ref ms", ".2f"),
    ("torch_ms", "torch ms", ".3f"),
    ("x_ref", "vs numpy ref", lambda v: f"{v:.1f}x"),
    ("x_torch", "vs torch", lambda v: f"{v:.2f}x"),
    ("gb_s", "logits GB/s", ".1f"),
    ("iqr_pct", "max IQR %", ".0f"),
    ("others_pct", "others CPU %", ".0f"),
]


def parse_args(argv):
    ap = hz.bench_parser(
        "search",
        __doc__.split("\n\n")[0],
        "the issue's shape only (N=64, B=5, V=32000)",
        "timed runs per variant (default 20; 10 with --quick)",
    )
    ap.add_argument(
        "--controls",
        action="store_true",
        help="instead: the fused step with each decoding control on vs off (N=64, B=5, V=32000, "
        "64 tokens of history; CPU)",
    )
    return hz.parse_bench_args(ap, argv)


def main(argv=None, results_dir=None) -> int:
    args = parse_args(argv)
    factories, sync = FACTORIES, None
    if args.device == "cuda":
        import seqkernels

        if not seqkernels.cuda_available():
            raise SystemExit("--device cuda: no CUDA device, CuPy or seqkernels._cuda in this environment")
        factories, sync = CUDA_FACTORIES, hz.cuda_sync
    repeats = args.repeats or (10 if args.quick else 20)
    info, rows, t0 = hz.machine_info(), [], time.perf_counter()
    if args.controls:
        if args.device != "cpu":
            raise SystemExit("--controls: CPU only for now (the CUDA step's controls have never run)")
        rows = bench_controls(64, 5, 32000, 64, args.threads, repeats, extra=POOL_VARIANTS)
        rows += bench_search_controls(64, 5, 32000, 8, args.threads, max(3, repeats // 4))
        notes = [
            f"threads: {args.threads}; float32 logits (log-softmax inside, as in the table of bench/search.py); "
            "one step of ops.beam_step with each control vs "
            "none on the same scores (interleaved blocks); target % from issue 16",
            "'search:' rows: a whole search.beam_search of 8 steps on fixed float32 log-probs, ms per step "
            "(driver included), each driver-level control vs none",
        ]
        hz.finish(
            "search-controls",
            args,
            argv,
            settings={"threads": args.threads, "repeats": repeats},
            notes=notes,
            info=info,
            t0=t0,
            rows=rows,
            columns=CONTROL_COLUMNS,
            results_dir=results_dir,
        )
        return 0
    for N, B, V in QUICK_SHAPES if args.quick else SHAPES:
        row = bench_shape(N, B, V, factories, args.threads, repeats, sync=sync)
        rows.append(row)
        hz.log(
            f"N{N} B{B} V{V}: ours {row['ours_ms']:.3f} ms, numpy ref {row['ref_ms']:.2f} ms, "
            f"torch {row['torch_ms'] if row['torch_ms'] is None else round(row['torch_ms'], 3)} ms"
        )
    notes = [
        f"threads: {args.threads} for seqkernels and torch; float32 logits; the NumPy reference is "
        "seqkernels.reference.search.beam_step run on the same float32 logits (on the host)",
        "device cuda: host clock around each call with a device synchronize (the fused op reads its "
        "NaN flag, so it synchronizes anyway)"
        if args.device == "cuda"
        else "device cpu",
        "torch: log_softmax + add + topk(2B) over B*V + gather, as transformers' beam search does",
    ]
    hz.finish(
        "search",
        args,
        argv,
        settings={"threads": args.threads, "repeats": repeats, "quick": args.quick},
        notes=notes,
        info=info,
        t0=t0,
        rows=rows,
        columns=COLUMNS,
        results_dir=results_dir,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
