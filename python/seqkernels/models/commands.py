"""The ``seqkernels demo`` and ``seqkernels train-lm`` commands (wired into :mod:`seqkernels.cli`).

``demo`` trains a character-level LSTM language model on the help topics every Python installation
carries (``pydoc_data.topics``), so it needs no download: bits per character before and after,
sampled lines, beam-search completions, and a loss-curve PNG when matplotlib is installed.
``train-lm`` does the same for any UTF-8 text and saves the model.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

from ..reference import GATES  # the one table of cell names

# ---------------------------------------------------------------------------------------------
# Argument parsers
# ---------------------------------------------------------------------------------------------

DEMO_DEFAULTS = {"seconds": 50.0, "epochs": 20, "hidden_size": 256, "embedding_dim": 32, "layers": 1,
                 "batch_size": 16, "bptt": 64, "lr": 6e-3, "dropout": 0.1}
# --quick: one epoch over 20k characters (well under a second); the time budget only guards a stalled machine
QUICK = {"seconds": 30.0, "epochs": 1, "hidden_size": 32, "embedding_dim": 16, "batch_size": 8, "bptt": 32,
         "lr": 1e-2, "train_chars": 20_000, "val_chars": 2_000}


def _positive_float(text):
    v = float(text)
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return v


def _positive_int(text):
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return v


def _nonnegative_int(text):
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return v


def _model_options(p, defaults):
    g = p.add_argument_group("model")
    g.add_argument("--cell", choices=sorted(GATES), default="lstm", help="recurrent cell (default: lstm)")
    g.add_argument("--hidden-size", type=_positive_int, default=defaults["hidden_size"],
                   help="hidden units per layer (default: %(default)s)")
    g.add_argument("--embedding-dim", type=_positive_int, default=defaults["embedding_dim"],
                   help="token embedding size (default: %(default)s)")
    g.add_argument("--layers", type=_positive_int, default=defaults["layers"],
                   help="recurrent layers (default: %(default)s)")
    g.add_argument("--dropout", type=float, default=defaults["dropout"],
                   help="dropout probability (default: %(default)s)")
    g = p.add_argument_group("training")
    g.add_argument("--seconds", type=_positive_float, default=defaults["seconds"],
                   help="training time budget in seconds (default: %(default)s)")
    g.add_argument("--epochs", type=_positive_int, default=defaults["epochs"],
                   help="at most this many passes over the text (default: %(default)s)")
    g.add_argument("--batch-size", type=_positive_int, default=defaults["batch_size"],
                   help="parallel streams per batch (default: %(default)s)")
    g.add_argument("--bptt", type=_positive_int, default=defaults["bptt"],
                   help="time steps per truncated-BPTT window (default: %(default)s)")
    g.add_argument("--lr", type=_positive_float, default=defaults["lr"], help="Adam learning rate (default: %(default)s)")
    g.add_argument("--clip", type=_positive_float, default=1.0, help="gradient-norm clipping limit (default: 1.0)")
    g.add_argument("--seed", type=int, default=0, help="seed for weights, dropout and batching (default: 0)")
    g.add_argument("--threads", type=int, default=0,
                   help="OpenMP threads of the recurrent kernels (default: 0 = all cores, or 1 when a few timed "
                        "steps show one thread is faster, as on a busy machine)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("output")
    g.add_argument("--samples", type=int, default=5, help="lines to sample after training (default: 5)")
    g.add_argument("--temperature", type=_positive_float, default=0.7, help="sampling temperature (default: 0.7)")
    g.add_argument("--beam-size", type=_positive_int, default=5, help="beam size for the completions (default: 5)")
    g.add_argument("--save", metavar="PATH", help="save the trained model (.npz; reload with seqkernels.models.load)")
    g.add_argument("--checkpoint", metavar="PATH", help="save the model after every epoch that improves validation")


def add_demo_parser(sub):
    p = sub.add_parser(
        "demo", help="train a character-level LSTM language model on Python's help text (about a minute)",
        description="Train a character-level LSTM language model on the help topics that ship with Python "
                    "(pydoc_data.topics; no download), showing progress; print bits per character on held-out "
                    "topics before and after, a few sampled lines and beam-search completions. Takes about a "
                    "minute on 2 CPU cores. Writes a loss-curve PNG when matplotlib is installed.")
    p.add_argument("what", nargs="?", choices=("lm", "words"), default="lm",
                   help="lm (default): the language model; words: GloVe and skip-gram word vectors side by side "
                        "(nearest neighbours, analogies, a t-SNE picture; --plot names it, default "
                        "seqkernels-demo-words.png)")
    _model_options(p, DEMO_DEFAULTS)
    p.add_argument("--plot", metavar="PATH", default="seqkernels-demo-loss.png",
                   help="loss-curve PNG, written when matplotlib is installed (default: %(default)s)")
    p.add_argument("--no-plot", action="store_true", help="do not write the loss-curve PNG")
    p.add_argument("--quick", action="store_true",
                   help="a few seconds: a small slice of the text and a tiny model (for tests)")
    p.add_argument("--no-repeat-ngram", metavar="N", type=_nonnegative_int, default=8,
                   help="also show the completions with n-gram blocking: no N-character string is generated "
                        "twice (0: do not; default: %(default)s)")
    p.set_defaults(func=run_demo)
    return p


def add_train_lm_parser(sub):
    p = sub.add_parser(
        "train-lm", help="train a language model on text files and save it",
        description="Train a character- or word-level language model on UTF-8 text files (one example per "
                    "line; default: Python's help topics), report bits per character and perplexity on a "
                    "held-out part, sample from it and save it.")
    p.add_argument("text", nargs="*", metavar="FILE", help="UTF-8 text files ('-' reads standard input)")
    p.add_argument("--level", choices=("char", "word"), default="char", help="token level (default: char)")
    p.add_argument("--min-count", type=_positive_int, default=1,
                   help="keep tokens seen at least this often (default: 1)")
    p.add_argument("--max-vocab", type=_positive_int, default=None, help="keep at most this many tokens")
    p.add_argument("--val-fraction", type=float, default=0.05,
                   help="fraction of the lines (taken from the end) held out for validation (default: 0.05)")
    _model_options(p, DEMO_DEFAULTS)
    p.set_defaults(func=run_train_lm, save="lm.npz")  # train-lm always saves
    for action in p._actions:
        if action.dest == "save":
            action.help = "where to save the trained model (.npz; default: lm.npz)"
    return p


# ---------------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------------


def _device_line():
    from .. import build_info, cuda_available, cuda_device_name

    info = build_info()
    line = (f"CPU, {info.get('openmp_threads', '?')} OpenMP threads, {info.get('blas', 'BLAS')} "
            f"({info.get('cpu_capability', '?')} kernels)")
    if cuda_available():
        line += f"; CUDA device {cuda_device_name()} found, but the models train on the CPU"
    return line


def pydoc_lines():
    """The non-blank lines of Python's built-in help topics, grouped by topic (sorted by name), with
    runs of whitespace (indentation and the alignment of grammar and table blocks) made one space:
    a character model spends its capacity on words instead, and beam search cannot score well with
    a long run of near-certain spaces."""
    from pydoc_data.topics import topics

    return [(name, [" ".join(ln.split()) for ln in topics[name].split("\n") if ln.strip()]) for name in sorted(topics)]


def _split_topics(grouped, val_every=8):
    """Every ``val_every``-th topic is held out, so validation text is unseen text, not unseen lines."""
    train, val = [], []
    for i, (_, lines) in enumerate(grouped):
        (val if i % val_every == val_every - 1 else train).extend(lines)
    return train, val


def _take_chars(lines, limit):
    out, n = [], 0
    for ln in lines:
        if n >= limit:
            break
        out.append(ln)
        n += len(ln) + 1
    return out


def _fmt_count(n):
    return f"{n / 1e6:.2f}M" if n >= 1e6 else (f"{n / 1e3:.1f}k" if n >= 1e3 else str(n))


def _pick_threads(lm, opt, train, args, out):
    """With ``--threads 0`` on a multi-core machine, time a few real training steps (they count:
    the optimiser keeps them) with the OpenMP team at full size and with one thread, alternating,
    and keep the faster. The kernels meet at a barrier every time step, so when other programs
    occupy a core the full team can run many times slower than one thread."""
    from .. import build_info, nn

    cores = int(build_info().get("openmp_threads", 1) or 1)
    if args.threads != 0 or cores < 2:
        return
    stream = lm.encode_stream(train[:2000])
    x, y = lm._rows(stream, args.batch_size)
    windows = [(np.ascontiguousarray(x[:, i: i + args.bptt].T), np.ascontiguousarray(y[:, i: i + args.bptt].T))
               for i in range(0, x.shape[1] - args.bptt, args.bptt)]
    if len(windows) < 7:
        return
    times = {cores: [], 1: []}
    with nn.single_threaded_blas():
        for step, (inp, tgt) in enumerate(windows[:7]):
            n = cores if step % 2 else 1
            lm.rnn.num_threads = n
            t0 = time.perf_counter()
            lm.loss(inp, tgt)
            nn.clip_grad_norm(lm, args.clip)
            opt.step()
            if step:  # the first step warms up
                times[n].append(time.perf_counter() - t0)
    ms = {n: 1e3 * float(np.median(t)) for n, t in times.items()}
    best = min(ms, key=ms.get)
    lm.rnn.num_threads = best
    out(f"threads: {best} ({', '.join(f'{n}: {v:.0f} ms/step' for n, v in sorted(ms.items(), reverse=True))}; "
        "--threads N to fix)")


def _train(lm, train, val, args, out, train_tokens):
    from .. import nn

    opt = nn.Adam(lm, lr=args.lr)
    _pick_threads(lm, opt, train, args, out)
    hist = lm.fit(train, val_texts=val, epochs=args.epochs, batch_size=args.batch_size, bptt=args.bptt,
                  optimizer=opt, clip=args.clip, max_seconds=args.seconds, checkpoint=args.checkpoint,
                  progress=not args.no_progress, seed=args.seed, restore_best=True)
    out(f"trained {hist['seconds']:.1f} s: {_fmt_count(hist['tokens'])} tokens "
        f"({hist['tokens'] / max(1, train_tokens):.2f} epochs) at {hist['tokens_per_s']:,.0f} tokens/s"
        + (" (stopped by the time budget)" if hist["stopped"] == "time" else ""))
    if hist["restored_best"]:
        out(f"kept the parameters of the best validation epoch ({1 + int(np.argmin(hist['val_loss']))} of "
            f"{len(hist['val_loss'])})")
    return hist


def _show_outputs(lm, args, out, prompts):
    if args.samples > 0:
        out(f"\nsampled lines (temperature {args.temperature}, seed {args.seed}):")
        for s in lm.sample(args.samples, temperature=args.temperature, seed=args.seed, max_len=120):
            out(f"  | {s}")
    if prompts:
        t0 = time.perf_counter()
        beams = lm.beam_search(prompts, beam_size=args.beam_size, max_len=80)
        greedy = lm.greedy(prompts, max_len=80)
        out(f"\nbeam search (beam {args.beam_size}, length penalty 0.7) vs greedy, "
            f"{time.perf_counter() - t0:.2f} s:")
        for p, b, g in zip(prompts, beams, greedy):
            out(f"  beam   | {b}")
            out(f"  greedy | {g}")
        n = args.no_repeat_ngram
        if n > 0:
            t0 = time.perf_counter()
            beams = lm.beam_search(prompts, beam_size=args.beam_size, max_len=80, no_repeat_ngram_size=n)
            greedy = lm.greedy(prompts, max_len=80, no_repeat_ngram_size=n)
            out(f"\nthe same with n-gram blocking (no {n}-character string generated twice), "
                f"{time.perf_counter() - t0:.2f} s:")
            for p, b, g in zip(prompts, beams, greedy):
                out(f"  beam   | {b}")
                out(f"  greedy | {g}")


def _plot(hist, before, path, out):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        out("(matplotlib is not installed: no loss-curve PNG)")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    tokens = np.asarray(hist["step_tokens"])
    bits = np.asarray(hist["step_loss"]) / math.log(2)
    ax.plot(tokens, bits, lw=0.8, alpha=0.5, label="training batch")
    k = max(1, len(bits) // 50)
    if k > 1:
        smooth = np.convolve(bits, np.ones(k) / k, mode="valid")
        ax.plot(tokens[k - 1:], smooth, lw=2, label=f"training, mean of {k}")
    ax.axhline(before, color="gray", ls=":", label="validation before training")
    if hist["val_loss"]:
        ax.axhline(hist["val_loss"][-1] / math.log(2), color="black", ls="--", label="validation after")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("bits per character")
    ax.set_title("seqkernels demo: character-level LSTM on Python's help topics")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    out(f"loss curve: {path}")


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


def run_demo(args, out=print) -> int:
    if getattr(args, "what", "lm") == "words":
        from ..word2vec.demo import run_words_demo

        return run_words_demo(args, out)
    from .. import __version__
    from .language_model import LanguageModel
    from .vocab import Vocab

    if args.quick:
        for k in ("seconds", "epochs", "hidden_size", "embedding_dim", "batch_size", "bptt", "lr"):
            if getattr(args, k) == DEMO_DEFAULTS[k]:  # explicit options still win
                setattr(args, k, QUICK[k])
    t_start = time.perf_counter()
    out(f"seqkernels {__version__} demo: character-level {args.cell.upper()} language model on Python's help "
        "topics")
    out(f"device: {_device_line()}")
    train, val = _split_topics(pydoc_lines())
    if args.quick:
        train, val = _take_chars(train, QUICK["train_chars"]), _take_chars(val, QUICK["val_chars"])
    vocab = Vocab.build(train, "char")
    lm = LanguageModel(vocab, cell=args.cell, embedding_dim=args.embedding_dim, hidden_size=args.hidden_size,
                       num_layers=args.layers, dropout=args.dropout, seed=args.seed, num_threads=args.threads)
    train_tokens = sum(len(s) + 1 for s in train)
    out(f"text: {_fmt_count(train_tokens)} characters for training, {_fmt_count(sum(len(s) + 1 for s in val))} "
        f"held out (every 8th topic); {len(vocab)} symbols")
    out(f"model: {lm!r}")
    before = lm.evaluate(val)["bits_per_char"]
    out(f"bits per character on held-out topics before training: {before:.3f}")
    hist = _train(lm, train, val, args, out, train_tokens)
    after = lm.evaluate(val)["bits_per_char"]
    out(f"bits per character on held-out topics: {before:.3f} before -> {after:.3f} after training")
    _show_outputs(lm, args, out, ["The ", "Return ", "If the "])
    if args.save:
        out(f"\nmodel saved: {lm.save(args.save)}")
    if not args.no_plot:
        _plot(hist, before, args.plot, out)
    out(f"\nwall time {time.perf_counter() - t_start:.1f} s")
    return 0


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
    lm = LanguageModel(vocab, cell=args.cell, embedding_dim=args.embedding_dim, hidden_size=args.hidden_size,
                       num_layers=args.layers, dropout=args.dropout, seed=args.seed, num_threads=args.threads)
    train_tokens = len(lm.encode_stream(train)) - 1
    out(f"text: {source}: {len(train):,} lines for training, {len(val):,} held out; {len(vocab):,} tokens "
        f"({args.level} level)")
    out(f"model: {lm!r}")
    out(f"device: {_device_line()}")
    before = lm.evaluate(val)
    _train(lm, train, val, args, out, train_tokens)
    after = lm.evaluate(val)
    out(f"held out: bits per character {before['bits_per_char']:.3f} -> {after['bits_per_char']:.3f}, "
        f"perplexity per token {before['perplexity']:.2f} -> {after['perplexity']:.2f}")
    args.no_repeat_ngram = 0
    _show_outputs(lm, args, out, [])
    out(f"\nmodel saved: {lm.save(args.save)}")
    return 0
