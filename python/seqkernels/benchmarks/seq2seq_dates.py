"""Seq2Seq on a generated task: human-readable dates -> ISO dates ("Tuesday, March 12, 1995" ->
"1995-03-12"), character level, bidirectional LSTM encoder with attention.

Trains in two stages - first on a small part of the pairs (an under-trained model, where greedy and
beam search disagree), then on all of them - and after each decodes a held-out test set with beam
search and with greedy search and reports corpus BLEU (seqkernels.metrics.bleu, sacrebleu's 13a
tokenisation, which splits "1995-03-12" into "1995 - 03 - 12") and exact-match accuracy for both,
plus beam-search error analysis of the beam outputs (search error vs model error). Writes
bench/results/seq2seq-dates.json
(run from the repository) or ./seq2seq-dates.json (run from an installed package).

    python bench/seq2seq_dates.py                          # about 3 minutes on 2 cores
    python -m seqkernels.benchmarks.seq2seq_dates --quick  # a smoke run (seconds; numbers meaningless)
"""

from __future__ import annotations

import argparse
import datetime as dt
import pathlib
import sys
import time

import numpy as np

from seqkernels import nn, search
from seqkernels.benchmarks.harness import cpu_snapshot, machine_info, others_load, write_json
from seqkernels.metrics import bleu
from seqkernels.models import Seq2Seq, Vocab
from seqkernels.models._base import evaluating

MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
FIRST, LAST = dt.date(1900, 1, 1).toordinal(), dt.date(2099, 12, 31).toordinal()


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# Unambiguous human-readable forms only (no dd/mm vs mm/dd guesswork, always a 4-digit year).
FORMATS = [
    lambda d: f"{DAYS[d.weekday()]}, {MONTHS[d.month - 1]} {d.day}, {d.year}",
    lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
    lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}",
    lambda d: f"{d.day} {MONTHS[d.month - 1][:3]} {d.year}",
    lambda d: f"{MONTHS[d.month - 1][:3]} {d.day}, {d.year}",
    lambda d: f"{ordinal(d.day)} of {MONTHS[d.month - 1]}, {d.year}",
    lambda d: f"{MONTHS[d.month - 1].lower()} {d.day} {d.year}",
    lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",
    lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}",
    lambda d: f"{DAYS[d.weekday()][:3]} {d.day} {MONTHS[d.month - 1][:3]} {d.year}",
    lambda d: f"the {ordinal(d.day)} of {MONTHS[d.month - 1].lower()} {d.year}",
    lambda d: f"{MONTHS[d.month - 1].upper()} {d.day}, {d.year}",
]


def make_pairs(n: int, rng) -> tuple[list[str], list[str]]:
    days = rng.integers(FIRST, LAST + 1, size=n)
    forms = rng.integers(0, len(FORMATS), size=n)
    src, tgt = [], []
    for o, f in zip(days, forms):
        d = dt.date.fromordinal(int(o))
        src.append(FORMATS[f](d))
        tgt.append(d.isoformat())
    return src, tgt


def main(argv=None, results_dir=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--train", type=int, default=20000, help="training pairs (default: %(default)s)")
    p.add_argument("--test", type=int, default=1000, help="test pairs (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=6, help="at most this many epochs (default: %(default)s)")
    p.add_argument(
        "--early",
        type=int,
        default=5000,
        help="pairs of the first stage, an under-trained model where greedy and beam search differ "
        "(default: %(default)s)",
    )
    p.add_argument("--seconds", type=float, default=150.0, help="training time budget (default: %(default)s)")
    p.add_argument("--hidden-size", type=int, default=64, help="encoder units per direction (default: %(default)s)")
    p.add_argument("--beam-size", type=int, default=5, help="beam size (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny data and model")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", default=str(pathlib.Path(results_dir or ".") / "seq2seq-dates.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.train, args.test, args.epochs, args.seconds, args.hidden_size, args.early = 500, 50, 2, 5.0, 16, 100

    rng = np.random.default_rng(args.seed)
    train_src, train_tgt = make_pairs(args.train, rng)
    val_src, val_tgt = make_pairs(300, rng)
    test_src, test_tgt = make_pairs(args.test, rng)
    src_vocab = Vocab.build(train_src, "char")
    tgt_vocab = Vocab.build(train_tgt, "char")
    model = Seq2Seq(
        src_vocab,
        tgt_vocab,
        cell="lstm",
        embedding_dim=32,
        hidden_size=args.hidden_size,
        bidirectional=True,
        attention=True,
        seed=args.seed,
    )
    print(f"task: {args.train} training pairs, e.g. {train_src[0]!r} -> {train_tgt[0]!r}", flush=True)
    print(f"model: {model!r}", flush=True)

    snap = cpu_snapshot()
    opt = nn.Adam(model, lr=3e-3)  # shared by both stages, so the second continues the first
    fit = dict(val=(val_src, val_tgt), batch_size=64, optimizer=opt, clip=5.0, progress=not args.no_progress)
    t0 = time.perf_counter()
    # stage 1: the first pairs only, an under-trained model where greedy and beam search can disagree
    # (trained fully, this task is solved exactly by both)
    hist1 = model.fit(
        train_src[: args.early], train_tgt[: args.early], epochs=1, max_seconds=args.seconds, seed=args.seed, **fit
    )
    stages = {"early": evaluate(model, test_src, test_tgt, args.beam_size)}
    report(f"after {args.early} pairs", hist1, stages["early"], args.test)
    left = args.seconds - hist1["seconds"]
    hist2 = None
    if left > 0:
        hist2 = model.fit(train_src, train_tgt, epochs=args.epochs, max_seconds=left, seed=args.seed + 1, **fit)
    train_wall = time.perf_counter() - t0
    hist = {k: hist1[k] + (hist2[k] if hist2 else []) for k in ("train_loss", "val_loss")}
    hist["seconds"] = hist1["seconds"] + (hist2["seconds"] if hist2 else 0.0)
    hist["tokens_per_s"] = (hist1["tokens"] + (hist2["tokens"] if hist2 else 0)) / hist["seconds"]
    hist["stopped"] = (hist2 or hist1)["stopped"]
    stages["final"] = final = evaluate(model, test_src, test_tgt, args.beam_size)
    report(f"after {args.early} pairs + {len(hist['train_loss']) - 1} epochs", hist, final, args.test)
    load = others_load(snap, cpu_snapshot())

    payload = {
        "benchmark": "seq2seq-dates",
        "task": "human-readable dates (12 formats, years 1900-2099) -> ISO 8601, character level",
        "settings": {
            "train_pairs": args.train,
            "test_pairs": args.test,
            "epochs_max": args.epochs,
            "early_stage_pairs": args.early,
            "seconds_budget": args.seconds,
            "hidden_size": args.hidden_size,
            "embedding_dim": 32,
            "batch_size": 64,
            "lr": 3e-3,
            "clip": 5.0,
            "seed": args.seed,
            "quick": args.quick,
            "length_penalty": 0.7,
            "bleu": "seqkernels.metrics.bleu, 13a tokenisation, exp smoothing",
        },
        "model": repr(model),
        "training": {
            "epochs_run": len(hist["train_loss"]) - 1,
            "train_loss": hist["train_loss"],
            "val_loss": hist["val_loss"],
            "seconds": round(hist["seconds"], 1),
            "wall_seconds_with_validation": round(train_wall, 1),
            "tokens_per_s": round(hist["tokens_per_s"]),
            "stopped": hist["stopped"],
        },
        "greedy": final["greedy"],
        "beam": final["beam"],
        "stages": stages,
        "others_cpu_percent": None if load is None else round(load, 1),
        "machine": machine_info(),
    }
    path = write_json(args.out, payload)
    print(f"others' CPU use during the run: {payload['others_cpu_percent']} %; results: {path}")
    return 0


def evaluate(model, src, ref, beam_size):
    """Greedy and beam decoding of ``src``: BLEU, exact match, time; where they differ; and the
    error analysis of the beam's mistakes (would the model have scored the reference higher,
    i.e. is the search at fault, or the model?)."""
    out, hyps = {}, {}
    for name, beam in (("greedy", 1), ("beam", beam_size)):
        t = time.perf_counter()
        hyps[name] = model.translate(src, beam_size=beam, length_penalty=0.7)
        seconds = time.perf_counter() - t
        score = bleu(hyps[name], [ref])  # what model.evaluate_bleu computes, without decoding twice
        out[name] = {
            "beam_size": beam,
            "bleu": round(score.score, 2),
            "bleu_detail": str(score),
            "exact_match": float(np.mean([h == r for h, r in zip(hyps[name], ref)])),
            "decode_seconds": round(seconds, 2),
        }
    differ = [i for i, (b, g) in enumerate(zip(hyps["beam"], hyps["greedy"])) if b != g]
    wrong = [i for i, (b, r) in enumerate(zip(hyps["beam"], ref)) if b != r]
    verdict = {"search": 0, "model": 0}
    if wrong:
        src_ids, src_len = model._batch([src[i] for i in wrong])
        with evaluating(model):
            enc_out, h0 = model._encode(src_ids, src_len)
            ea = search.error_analysis(
                model._decoder_step(enc_out, src_len),
                h0,
                [model.tgt_vocab.encode(ref[i]) for i in wrong],
                [model.tgt_vocab.encode(hyps["beam"][i]) for i in wrong],
                length_penalty=0.7,
                bos_id=model.tgt_vocab.bos_id,
                eos_id=model.tgt_vocab.eos_id,
            )
        verdict = {"search": ea.n_search, "model": ea.n_model}
    out["beam_differs_from_greedy"] = len(differ)
    out["beam_errors"] = {"count": len(wrong), "search_error": verdict["search"], "model_error": verdict["model"]}
    out["examples"] = [
        {"src": src[i], "ref": ref[i], "beam": hyps["beam"][i], "greedy": hyps["greedy"][i]}
        for i in (differ[:5] or list(range(3)))
    ]
    return out


def report(stage, hist, res, n):
    print(
        f"\n{stage}: {hist['seconds']:.0f} s of training, {hist['tokens_per_s']:,.0f} target tokens/s, "
        f"validation loss {hist['val_loss'][-1]:.4f}"
    )
    for name in ("greedy", "beam"):
        r = res[name]
        print(
            f"  {name:6s} (beam {r['beam_size']}): BLEU {r['bleu']:6.2f}   exact match {100 * r['exact_match']:5.1f} %"
            f"   decode {r['decode_seconds']:.1f} s"
        )
    e = res["beam_errors"]
    print(
        f"  beam differs from greedy on {res['beam_differs_from_greedy']} of {n}; beam errors {e['count']} "
        f"(search errors {e['search_error']}, model errors {e['model_error']})",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
