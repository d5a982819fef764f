"""The command-line layer of ``seqkernels demo`` and ``seqkernels train-lm`` (wired into
:mod:`seqkernels.cli`): argument parsing and checking, reading the user's text files, and
``train-lm`` itself. The demo (its text, training report and plot) lives in :mod:`.demo`.
"""

from __future__ import annotations

import argparse
import math
import sys

from ..reference import GATES  # the one table of cell names

DEMO_DEFAULTS = {
    "seconds": 50.0,
    "epochs": 20,
    "hidden_size": 256,
    "embedding_dim": 32,
    "layers": 1,
    "batch_size": 16,
    "bptt": 64,
    "lr": 6e-3,
    "dropout": 0.1,
}
# --quick: one epoch over 20k characters (well under a second); the time budget only guards a stalled machine
QUICK = {
    "seconds": 30.0,
    "epochs": 1,
    "hidden_size": 32,
    "embedding_dim": 16,
    "batch_size": 8,
    "bptt": 32,
    "lr": 1e-2,
    "train_chars": 20_000,
    "val_chars": 2_000,
}


def _positive_float(text):
    v = float(text)
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return v


def _int_at_least(minimum):
    def parse(text):
        v = int(text)
        if v < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text}")
        return v

    return parse


_positive_int, _nonnegative_int = _int_at_least(1), _int_at_least(0)


def _model_options(p, defaults):
    g = p.add_argument_group("model")
    g.add_argument("--cell", choices=sorted(GATES), default="lstm", help="recurrent cell (default: lstm)")
    g.add_argument(
        "--hidden-size",
        type=_positive_int,
        default=defaults["hidden_size"],
        help="hidden units per layer (default: %(default)s)",
    )
    g.add_argument(
        "--embedding-dim",
        type=_positive_int,
        default=defaults["embedding_dim"],
        help="token embedding size (default: %(default)s)",
    )
    g.add_argument(
        "--layers", type=_positive_int, default=defaults["layers"], help="recurrent layers (default: %(default)s)"
    )
    g.add_argument(
        "--dropout", type=float, default=defaults["dropout"], help="dropout probability (default: %(default)s)"
    )
    g = p.add_argument_group("training")
    g.add_argument(
        "--seconds",
        type=_positive_float,
        default=defaults["seconds"],
        help="training time budget in seconds (default: %(default)s)",
    )
    g.add_argument(
        "--epochs",
        type=_positive_int,
        default=defaults["epochs"],
        help="at most this many passes over the text (default: %(default)s)",
    )
    g.add_argument(
        "--batch-size",
        type=_positive_int,
        default=defaults["batch_size"],
        help="parallel streams per batch (default: %(default)s)",
    )
    g.add_argument(
        "--bptt",
        type=_positive_int,
        default=defaults["bptt"],
        help="time steps per truncated-BPTT window (default: %(default)s)",
    )
    g.add_argument(
        "--lr", type=_positive_float, default=defaults["lr"], help="Adam learning rate (default: %(default)s)"
    )
    g.add_argument("--clip", type=_positive_float, default=1.0, help="gradient-norm clipping limit (default: 1.0)")
    g.add_argument("--seed", type=int, default=0, help="seed for weights, dropout and batching (default: 0)")
    g.add_argument(
        "--threads",
        type=int,
        default=0,
        help="OpenMP threads of the recurrent kernels (default: 0 = all cores, or 1 when a few timed "
        "steps show one thread is faster, as on a busy machine)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("output")
    g.add_argument("--samples", type=int, default=5, help="lines to sample after training (default: 5)")
    g.add_argument("--temperature", type=_positive_float, default=0.7, help="sampling temperature (default: 0.7)")
    g.add_argument("--beam-size", type=_positive_int, default=5, help="beam size for the completions (default: 5)")
    g.add_argument("--save", metavar="PATH", help="save the trained model (.npz; reload with seqkernels.models.load)")
    g.add_argument("--checkpoint", metavar="PATH", help="save the model after every epoch that improves validation")


def add_demo_parser(sub):
    p = sub.add_parser(
        "demo",
        help="train a character-level LSTM language model on Python's help text (about a minute)",
        description="Train a character-level LSTM language model on the help topics that ship with Python "
        "(pydoc_data.topics; no download), showing progress; print bits per character on held-out "
        "topics before and after, a few sampled lines and beam-search completions. Takes about a "
        "minute on 2 CPU cores. Writes a loss-curve PNG when matplotlib is installed.",
    )
    p.add_argument(
        "what",
        nargs="?",
        choices=("lm", "words"),
        default="lm",
        help="lm (default): the language model; words: GloVe and skip-gram word vectors side by side "
        "(nearest neighbours, analogies, a t-SNE picture; --plot names it, default "
        "seqkernels-demo-words.png)",
    )
    _model_options(p, DEMO_DEFAULTS)
    p.add_argument(
        "--plot",
        metavar="PATH",
        default="seqkernels-demo-loss.png",
        help="loss-curve PNG, written when matplotlib is installed (default: %(default)s)",
    )
    p.add_argument("--no-plot", action="store_true", help="do not write the loss-curve PNG")
    p.add_argument(
        "--quick", action="store_true", help="a few seconds: a small slice of the text and a tiny model (for tests)"
    )
    p.add_argument(
        "--no-repeat-ngram",
        metavar="N",
        type=_nonnegative_int,
        default=8,
        help="also show the completions with n-gram blocking: no N-character string is generated "
        "twice (0: do not; default: %(default)s)",
    )
    p.add_argument(
        "--beam-groups",
        metavar="G",
        type=_positive_int,
        default=1,
        help="also show every completion of the first prompt by diverse beam search: the beams in G "
        "groups (G must divide --beam-size; 1: do not; default: %(default)s)",
    )
    p.add_argument(
        "--diversity-penalty",
        metavar="L",
        type=float,
        default=1.0,
        help="diverse beam search: a group's log-prob of a character loses L per time an earlier "
        "group took it at that step (default: %(default)s)",
    )
    p.add_argument(
        "--sampling-topk",
        metavar="K",
        type=_positive_int,
        default=1,
        help="also show the completions by beam search that draws its candidates from the top K "
        "(sampling inside beam search; seeded by --seed; 1: do not; default: %(default)s)",
    )
    p.set_defaults(func=_run_demo)
    return p


def add_train_lm_parser(sub):
    p = sub.add_parser(
        "train-lm",
        help="train a language model on text files and save it",
        description="Train a character- or word-level language model on UTF-8 text files (one example per "
        "line; default: Python's help topics), report bits per character and perplexity on a "
        "held-out part, sample from it and save it.",
    )
    p.add_argument("text", nargs="*", metavar="FILE", help="UTF-8 text files ('-' reads standard input)")
    p.add_argument("--level", choices=("char", "word"), default="char", help="token level (default: char)")
    p.add_argument(
        "--min-count", type=_positive_int, default=1, help="keep tokens seen at least this often (default: 1)"
    )
    p.add_argument("--max-vocab", type=_positive_int, default=None, help="keep at most this many tokens")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.05,
        help="fraction of the lines (taken from the end) held out for validation (default: 0.05)",
    )
    _model_options(p, DEMO_DEFAULTS)
    p.set_defaults(func=run_train_lm, save="lm.npz")  # train-lm always saves
    for action in p._actions:
        if action.dest == "save":
            action.help = "where to save the trained model (.npz; default: lm.npz)"
    return p


def _run_demo(args, out=print) -> int:
    from .demo import run_demo

    if getattr(args, "what", "lm") == "words":
        from ..word2vec.demo import run_words_demo

        return run_words_demo(args, out)

    if args.beam_size % args.beam_groups:  # checked before training, not after
        print(
            f"seqkernels demo: error: --beam-groups: must divide --beam-size {args.beam_size}, got {args.beam_groups}",
            file=sys.stderr,
        )
        return 2

    return run_demo(args, out)


def _read_texts(paths):
    lines = []
    for path in paths:
        if path == "-":
            lines += sys.stdin.read().split("\n")
            continue
        with open(path, encoding="utf-8") as f:
            lines += f.read().split("\n")
    return [ln.rstrip() for ln in lines if ln.strip()]


def run_train_lm(args, out=print) -> int:
    from .demo import device_line, pydoc_lines, show_outputs, train_and_report
    from .language_model import LanguageModel
    from .vocab import Vocab

    if not 0.0 < args.val_fraction < 1.0:
        print("seqkernels train-lm: error: --val-fraction must be in (0, 1)", file=sys.stderr)
        return 2
    if args.text:
        try:
            lines = _read_texts(args.text)
        except OSError as e:
            print(f"seqkernels train-lm: error: {e}", file=sys.stderr)
            return 2
        source = ", ".join(args.text)
    else:
        lines = [ln for _, group in pydoc_lines() for ln in group]
        source = "Python's help topics (pydoc_data.topics)"
    n_val = max(1, int(len(lines) * args.val_fraction))
    if len(lines) - n_val < 2:
        print("seqkernels train-lm: error: the text has too few non-blank lines", file=sys.stderr)
        return 2
    train, val = lines[:-n_val], lines[-n_val:]
    vocab = Vocab.build(train, args.level, min_count=args.min_count, max_size=args.max_vocab)
    lm = LanguageModel(
        vocab,
        cell=args.cell,
        embedding_dim=args.embedding_dim,
        hidden_size=args.hidden_size,
        num_layers=args.layers,
        dropout=args.dropout,
        seed=args.seed,
        num_threads=args.threads,
    )
    train_tokens = len(lm.encode_stream(train)) - 1
    out(
        f"text: {source}: {len(train):,} lines for training, {len(val):,} held out; {len(vocab):,} tokens "
        f"({args.level} level)"
    )
    out(f"model: {lm!r}")
    out(f"device: {device_line()}")
    before = lm.evaluate(val)
    train_and_report(lm, train, val, args, out, train_tokens)
    after = lm.evaluate(val)
    out(
        f"held out: bits per character {before['bits_per_char']:.3f} -> {after['bits_per_char']:.3f}, "
        f"perplexity per token {before['perplexity']:.2f} -> {after['perplexity']:.2f}"
    )
    args.no_repeat_ngram = 0
    show_outputs(lm, args, out, [])
    out(f"\nmodel saved: {lm.save(args.save)}")
    return 0
