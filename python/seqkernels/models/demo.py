"""``seqkernels demo``: a character-level language model trained on the help topics every Python
installation carries (``pydoc_data.topics``), so it needs no download: bits per character before and
after, sampled lines, beam-search completions (with and without n-gram blocking), and a loss-curve
PNG when matplotlib is installed. The training report is shared with ``train-lm`` (:mod:`.cli`).
"""

from __future__ import annotations

import math
import time

import numpy as np


def device_line():
    from .. import build_info, cuda_available, cuda_device_name

    info = build_info()
    line = (
        f"CPU, {info.get('openmp_threads', '?')} OpenMP threads, {info.get('blas', 'BLAS')} "
        f"({info.get('cpu_capability', '?')} kernels)"
    )
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


def train_and_report(lm, train, val, args, out, train_tokens):
    """Train ``lm`` with the command's options and print what happened. With ``--threads 0`` on a
    multi-core machine, the first steps pick the thread count (:meth:`LanguageModel.tune_threads`)."""
    from .. import nn

    opt = nn.Adam(lm, lr=args.lr)
    if args.threads == 0:
        ms = lm.tune_threads(train[:2000], optimizer=opt, batch_size=args.batch_size, bptt=args.bptt, clip=args.clip)
        if ms:
            times = ", ".join(f"{n}: {v:.0f} ms/step" for n, v in sorted(ms.items(), reverse=True))
            out(f"threads: {lm.rnn.num_threads} ({times}; --threads N to fix)")
    hist = lm.fit(
        train,
        val_texts=val,
        epochs=args.epochs,
        batch_size=args.batch_size,
        bptt=args.bptt,
        optimizer=opt,
        clip=args.clip,
        max_seconds=args.seconds,
        checkpoint=args.checkpoint,
        progress=not args.no_progress,
        seed=args.seed,
        restore_best=True,
    )
    out(
        f"trained {hist['seconds']:.1f} s: {_fmt_count(hist['tokens'])} tokens "
        f"({hist['tokens'] / max(1, train_tokens):.2f} epochs) at {hist['tokens_per_s']:,.0f} tokens/s"
        + (" (stopped by the time budget)" if hist["stopped"] == "time" else "")
    )
    if hist["restored_best"]:
        out(
            f"kept the parameters of the best validation epoch ({1 + int(np.argmin(hist['val_loss']))} of "
            f"{len(hist['val_loss'])})"
        )
    return hist


def show_outputs(lm, args, out, prompts):
    if args.samples > 0:
        out(f"\nsampled lines (temperature {args.temperature}, seed {args.seed}):")
        for s in lm.sample(args.samples, temperature=args.temperature, seed=args.seed, max_len=120):
            out(f"  | {s}")
    if prompts:
        t0 = time.perf_counter()
        beams = lm.beam_search(prompts, beam_size=args.beam_size, max_len=80)
        greedy = lm.greedy(prompts, max_len=80)
        out(f"\nbeam search (beam {args.beam_size}, length penalty 0.7) vs greedy, {time.perf_counter() - t0:.2f} s:")
        for _p, b, g in zip(prompts, beams, greedy):
            out(f"  beam   | {b}")
            out(f"  greedy | {g}")
        n = args.no_repeat_ngram
        if n > 0:
            t0 = time.perf_counter()
            beams = lm.beam_search(prompts, beam_size=args.beam_size, max_len=80, no_repeat_ngram_size=n)
            greedy = lm.greedy(prompts, max_len=80, no_repeat_ngram_size=n)
            out(
                f"\nthe same with n-gram blocking (no {n}-character string generated twice), "
                f"{time.perf_counter() - t0:.2f} s:"
            )
            for _p, b, g in zip(prompts, beams, greedy):
                out(f"  beam   | {b}")
                out(f"  greedy | {g}")
        _show_diverse_and_sampled(lm, args, out, prompts)


def _show_diverse_and_sampled(lm, args, out, prompts):
    """The demo's optional diverse-beam and sampled-beam completions."""
    G, k = getattr(args, "beam_groups", 1), getattr(args, "sampling_topk", 1)
    if G > 1:
        plain = lm.beam_search(prompts[0], beam_size=args.beam_size, max_len=80, n_best=args.beam_size)
        diverse = lm.beam_search(
            prompts[0],
            beam_size=args.beam_size,
            max_len=80,
            n_best=args.beam_size,
            num_beam_groups=G,
            diversity_penalty=args.diversity_penalty,
        )
        out(
            f"\nall {args.beam_size} completions of the first prompt, beam search vs diverse beam search "
            f"({G} groups, diversity penalty {args.diversity_penalty}):"
        )
        for b, d in zip(plain, diverse):
            out(f"  beam    | {b}")
            out(f"  diverse | {d}")
    if k > 1:
        sampled = lm.beam_search(prompts, beam_size=args.beam_size, max_len=80, sampling_topk=k, seed=args.seed)
        out(f"\nbeam search drawing its candidates from the top {k} (seed {args.seed}):")
        for s in sampled:
            out(f"  sampled | {s}")


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
        ax.plot(tokens[k - 1 :], smooth, lw=2, label=f"training, mean of {k}")
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


def run_demo(args, out=print) -> int:
    from .. import __version__
    from .cli import DEMO_DEFAULTS, QUICK
    from .language_model import LanguageModel
    from .vocab import Vocab

    if args.quick:
        for k in ("seconds", "epochs", "hidden_size", "embedding_dim", "batch_size", "bptt", "lr"):
            if getattr(args, k) == DEMO_DEFAULTS[k]:  # explicit options still win
                setattr(args, k, QUICK[k])
    t_start = time.perf_counter()
    out(f"seqkernels {__version__} demo: character-level {args.cell.upper()} language model on Python's help topics")
    out(f"device: {device_line()}")
    train, val = _split_topics(pydoc_lines())
    if args.quick:
        train, val = _take_chars(train, QUICK["train_chars"]), _take_chars(val, QUICK["val_chars"])
    vocab = Vocab.build(train, "char")
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
    train_tokens = sum(len(s) + 1 for s in train)
    out(
        f"text: {_fmt_count(train_tokens)} characters for training, {_fmt_count(sum(len(s) + 1 for s in val))} "
        f"held out (every 8th topic); {len(vocab)} symbols"
    )
    out(f"model: {lm!r}")
    before = lm.evaluate(val)["bits_per_char"]
    out(f"bits per character on held-out topics before training: {before:.3f}")
    hist = train_and_report(lm, train, val, args, out, train_tokens)
    after = lm.evaluate(val)["bits_per_char"]
    out(f"bits per character on held-out topics: {before:.3f} before -> {after:.3f} after training")
    show_outputs(lm, args, out, ["The ", "Return ", "If the "])
    if args.save:
        out(f"\nmodel saved: {lm.save(args.save)}")
    if not args.no_plot:
        _plot(hist, before, args.plot, out)
    out(f"\nwall time {time.perf_counter() - t_start:.1f} s")
    return 0
