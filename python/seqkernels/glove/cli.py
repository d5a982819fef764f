"""``seqkernels glove ...``: Stanford GloVe's command lines (vocab_count, cooccur, shuffle, glove) with
the same flag spellings, so scripts switch by changing the program name::

    seqkernels glove vocab-count -min-count 5 -max-vocab 100000 < corpus.txt > vocab.txt
    seqkernels glove cooccur -vocab-file vocab.txt -window-size 10 -memory 4.0 < corpus.txt > cooccurrence.bin
    seqkernels glove train -input-file cooccurrence.bin -vocab-file vocab.txt -save-file vectors -iter 25

Results go to stdout or to the named files, progress and messages to stderr. On an error the
command prints one line, exits with status 1 and leaves no partial output: named files are
written under a temporary name and renamed at the end, and a redirected stdout file is truncated.
``train`` shuffles internally, so the ``shuffle`` step is optional (the verb exists for scripts).
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time

__all__ = ["add_parser"]


def _flag(parser, name, kind, default, help_text):
    parser.add_argument(
        name,
        dest=name.lstrip("-").replace("-", "_"),
        type=kind,
        default=default,
        metavar=kind.__name__.upper() if kind in (int, float) else "FILE",
        help=help_text,
    )


class _ExactFlagsParser(argparse.ArgumentParser):
    """Flags must be spelled out, as Stanford's find_arg requires: argparse (3.11) would otherwise
    take "-window" for "-window-size" even with allow_abbrev=False, for single-dash long flags."""

    def _get_option_tuples(self, option_string):
        return []


def add_parser(subparsers) -> None:
    """Registers ``glove`` and its verbs on the ``seqkernels`` command's subparsers."""
    glove = subparsers.add_parser(
        "glove",
        help="GloVe word vectors with Stanford GloVe's commands and flags",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = glove.add_subparsers(dest="glove_command", required=True, metavar="VERB", parser_class=_ExactFlagsParser)

    def verb(name, help_text):
        p = verbs.add_parser(name, help=help_text, allow_abbrev=False, description=help_text)
        _flag(p, "-verbose", int, 2, "0, 1 or 2 (default): 2 shows progress")
        return p

    p = verb("vocab-count", "count words: corpus on stdin, vocab.txt ('word count' lines) on stdout")
    _flag(p, "-min-count", int, 1, "drop words seen fewer times (default 1)")
    _flag(p, "-max-vocab", int, 0, "keep at most this many words (default 0 = no limit)")
    _flag(p, "-threads", int, 0, "threads (default 0 = all cores)")
    p.set_defaults(func=_vocab_count)

    p = verb("cooccur", "count co-occurrences: corpus on stdin, cooccurrence.bin on stdout")
    _flag(p, "-vocab-file", str, "vocab.txt", "vocabulary from vocab-count (default vocab.txt)")
    _flag(p, "-window-size", int, 15, "context words on each side (default 15)")
    _flag(p, "-symmetric", int, 1, "1 (default): left and right context; 0: left only")
    _flag(p, "-distance-weighting", int, 1, "1 (default): add 1/distance; 0: add 1")
    _flag(p, "-memory", float, 4.0, "memory limit in GB for tables and buffers (default 4.0)")
    _flag(p, "-max-product", int, None, "override: dense-table cutoff on the product of word ranks")
    _flag(p, "-overflow-length", int, None, "override: pair-buffer records per thread before a run is spilled")
    _flag(p, "-overflow-file", str, None, "path prefix for temporary runs (its directory is used; default $TMPDIR)")
    _flag(p, "-threads", int, 0, "threads (default 0 = all cores)")
    p.add_argument("-device", dest="device", choices=["cpu", "cuda"], default="cpu", help="cpu (default) or cuda")
    _flag(p, "-scheduler", str, None, "count on this Dask scheduler (address) instead of here; needs -corpus")
    p.add_argument(
        "-corpus",
        dest="corpus",
        nargs="+",
        default=None,
        metavar="PATH",
        help="with -scheduler: corpus files or fsspec URLs that every worker can read (not stdin)",
    )
    _flag(p, "-work-dir", str, None, "with -scheduler: shared directory or URL for intermediate runs")
    _flag(p, "-shard-mb", float, 64.0, "with -scheduler: corpus megabytes per map task (default 64)")
    p.set_defaults(func=_cooccur)

    p = verb("shuffle", "shuffle cooccurrence.bin records: stdin to stdout (optional: train shuffles itself)")
    _flag(p, "-memory", float, 4.0, "accepted for compatibility (records are shuffled in memory)")
    _flag(p, "-array-size", int, None, "accepted for compatibility")
    _flag(p, "-temp-file", str, None, "accepted for compatibility")
    _flag(p, "-seed", int, 0, "random seed (default 0 = from the clock)")
    p.set_defaults(func=_shuffle)

    p = verb("train", "train GloVe vectors on cooccurrence.bin; writes SAVE_FILE.txt and/or SAVE_FILE.bin")
    _flag(p, "-input-file", str, "cooccurrence.shuf.bin", "co-occurrence records (default cooccurrence.shuf.bin)")
    _flag(p, "-vocab-file", str, "vocab.txt", "vocabulary from vocab-count (default vocab.txt)")
    _flag(p, "-save-file", str, "vectors", "output name without extension (default vectors)")
    _flag(p, "-gradsq-file", str, None, "also save the AdaGrad accumulators under this name")
    _flag(p, "-save-gradsq", int, 0, "1: save accumulators as 'gradsq' (default 0)")
    _flag(p, "-vector-size", int, 50, "vector size (default 50)")
    _flag(p, "-iter", int, 25, "training iterations (default 25)")
    _flag(p, "-threads", int, 0, "Hogwild threads (default 0 = all cores)")
    _flag(p, "-eta", float, 0.05, "initial learning rate (default 0.05)")
    _flag(p, "-alpha", float, 0.75, "weighting exponent (default 0.75)")
    _flag(p, "-x-max", float, 100.0, "weighting cutoff (default 100)")
    _flag(p, "-grad-clip", float, 100.0, "gradient component clip (default 100)")
    _flag(p, "-binary", int, 0, "0 (default): text; 1: binary; 2: both")
    _flag(p, "-model", int, 2, "text layout: 0 all parameters; 1 word vectors; 2 (default) word + context")
    _flag(p, "-write-header", int, 0, "1: first line 'V D' (default 0)")
    _flag(
        p,
        "-checkpoint-every",
        int,
        0,
        "also save SAVE_FILE.NNN and the resumable SAVE_FILE.checkpoint.npz "
        "every this many iterations (default 0 = off)",
    )
    _flag(p, "-resume", str, None, "continue from this checkpoint (SAVE_FILE.checkpoint.npz) after its last iteration")
    _flag(
        p,
        "-memory",
        float,
        None,
        "train in bounded memory: GB for the whole process, records streamed from disk (default: the file is loaded)",
    )
    _flag(p, "-temp-dir", str, None, "with -memory: directory of the shuffled temporary copy (default $TMPDIR)")
    _flag(p, "-seed", int, 0, "random seed (default 0 = from the clock)")
    p.add_argument("-device", dest="device", choices=["cpu", "cuda"], default="cpu", help="cpu (default) or cuda")
    p.set_defaults(func=_train)

    for _name, sub in verbs.choices.items():
        handler = sub.get_default("func")
        sub.set_defaults(func=lambda args, handler=handler: _run(args, handler))


# ---- running ---------------------------------------------------------------------------------
class _CommandError(Exception):
    """A bad invocation (message printed as is)."""


def _say(args, level: int, message: str) -> None:
    if args.verbose >= level:
        print(message, file=sys.stderr, flush=True)


def _stdout_is_regular_file() -> bool:
    try:
        return stat.S_ISREG(os.fstat(1).st_mode)
    except OSError:
        return False


def _run(args, handler) -> int:
    """Runs a verb; any error becomes one line on stderr and status 1 (130 for Ctrl-C), with the
    redirected stdout file emptied so that no partial output remains."""
    name = getattr(args, "command_name", None) or f"seqkernels glove {args.glove_command}"
    try:
        return handler(args) or 0
    except KeyboardInterrupt:
        code, message = 130, "interrupted"
    except (_CommandError, ValueError, TypeError, OSError, RuntimeError, NotImplementedError, MemoryError) as e:
        code, message = 1, str(e) if str(e) else type(e).__name__
    if _stdout_is_regular_file():
        try:
            os.ftruncate(1, 0)
        except OSError:
            pass
    print(f"{name}: error: {message}", file=sys.stderr, flush=True)
    return code


def _stdin_corpus() -> int:
    if os.isatty(0):
        raise _CommandError("the corpus is read from stdin: redirect a file, e.g. '< corpus.txt'")
    return 0


def _binary_stdout() -> int:
    sys.stdout.flush()
    if os.isatty(1):
        raise _CommandError(
            "refusing to write binary records to a terminal: redirect stdout, e.g. '> cooccurrence.bin'"
        )
    return 1


def _resident_gb() -> float:
    """This process's resident memory in GB (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (OSError, ValueError, IndexError):
        return 0.0


def _progress(args):
    return args.verbose >= 2


def _threads(value: int):
    if value < 0:
        raise _CommandError(f"-threads: expected >= 0 (0 = all cores), got {value}")
    return value or None


# ---- verbs -----------------------------------------------------------------------------------
def _vocab_count(args) -> int:
    from . import Vocabulary

    if args.min_count < 1:
        raise _CommandError(f"-min-count: expected >= 1, got {args.min_count}")
    if args.max_vocab < 0:
        raise _CommandError(f"-max-vocab: expected >= 0 (0 = no limit), got {args.max_vocab}")
    _say(args, 1, "BUILDING VOCABULARY")
    vocab = Vocabulary.from_corpus(
        _stdin_corpus_fd(),
        min_count=args.min_count,
        max_vocab=args.max_vocab or None,
        threads=_threads(args.threads),
        progress=_progress(args),
    )
    _say(args, 2, f"Processed {vocab.tokens} tokens.\nCounted {vocab.distinct} unique words.")
    _say(args, 1, f"Using vocabulary of size {len(vocab)}.")
    out = sys.stdout.buffer
    out.write(b"".join(w + b" %d\n" % c for w, c in zip(vocab.encoded(), vocab.counts.tolist())))
    out.flush()
    return 0


def _stdin_corpus_fd():
    from ._files import CorpusFd

    return CorpusFd(_stdin_corpus())


def _cooccur(args) -> int:
    from . import Vocabulary, write_cooccurrence

    if args.device == "cuda":
        raise NotImplementedError(
            "-device cuda: the CUDA co-occurrence path is not built yet; run on the CPU (omit -device)"
        )
    for flag, value in (("-symmetric", args.symmetric), ("-distance-weighting", args.distance_weighting)):
        if value not in (0, 1):
            raise _CommandError(f"{flag}: expected 0 or 1, got {value}")
    vocab = Vocabulary.load(args.vocab_file)
    if args.scheduler is not None or args.corpus is not None:
        return _cooccur_on_dask(args, vocab)
    temp_dir = None
    if args.overflow_file:
        temp_dir = os.path.dirname(os.path.abspath(args.overflow_file))
    _say(
        args,
        1,
        f"COUNTING COOCCURRENCES\nwindow size: {args.window_size}\n"
        f"context: {'symmetric' if args.symmetric else 'asymmetric'}\nvocabulary: {len(vocab)} words",
    )
    corpus = _stdin_corpus_fd()
    # -memory bounds the whole process here: the interpreter and the vocabulary already hold some.
    if not args.memory > 0:
        raise _CommandError(f"-memory: expected a positive number of GB, got {args.memory}")
    held = _resident_gb()
    if args.memory <= held:
        raise _CommandError(
            f"-memory {args.memory} GB is too small to hold one run: the process already uses "
            f"{held:.3f} GB (interpreter and vocabulary) before counting"
        )
    try:
        stats = write_cooccurrence(
            corpus,
            vocab,
            _binary_stdout(),
            window_size=args.window_size,
            symmetric=bool(args.symmetric),
            distance_weighting=bool(args.distance_weighting),
            memory=args.memory - held,
            threads=_threads(args.threads),
            temp_dir=temp_dir,
            progress=_progress(args),
            max_product=args.max_product,
            overflow_length=args.overflow_length,
        )
    except ValueError as e:
        if str(e).startswith("memory:"):
            raise _CommandError(
                f"-memory {args.memory} GB, less the {held:.3f} GB the process already holds, is too "
                f"small to hold one run ({e})"
            ) from None
        raise
    _say(
        args,
        2,
        f"Processed {stats['tokens']} tokens ({stats['kept_tokens']} in the vocabulary); "
        f"max product {stats['max_product']}, overflow length {stats['overflow_length']}, "
        f"{stats['runs_spilled']} runs spilled, {stats['merge_passes']} merge passes.",
    )
    _say(args, 1, f"Wrote {stats['records']} records.")
    return 0


def _cooccur_on_dask(args, vocab) -> int:
    from .cooccurrence import write_cooccurrence

    if args.scheduler is None or not args.corpus:
        raise _CommandError("-scheduler and -corpus go together: the workers read the corpus files themselves")
    if not args.shard_mb > 0:
        raise _CommandError(f"-shard-mb: expected a positive number, got {args.shard_mb}")
    from .distributed import connect

    client = connect(args.scheduler)
    _say(
        args,
        1,
        f"COUNTING COOCCURRENCES on {args.scheduler}\nwindow size: {args.window_size}\n"
        f"vocabulary: {len(vocab)} words\ncorpus: {' '.join(args.corpus)}",
    )
    try:
        stats = write_cooccurrence(
            args.corpus,
            vocab,
            _binary_stdout(),
            window_size=args.window_size,
            symmetric=bool(args.symmetric),
            distance_weighting=bool(args.distance_weighting),
            memory=args.memory,
            threads=_threads(args.threads),
            max_product=args.max_product,
            overflow_length=args.overflow_length,
            client=client,
            work_dir=args.work_dir,
            shard_bytes=int(args.shard_mb * 2**20),
        )
    finally:
        client.close()
    _say(
        args,
        2,
        f"Processed {stats['tokens']} tokens ({stats['kept_tokens']} in the vocabulary) in "
        f"{stats['shards']} shards on {stats['workers']} workers, {stats['parts']} row ranges.",
    )
    _say(args, 1, f"Wrote {stats['records']} records.")
    return 0


def _shuffle(args) -> int:
    import numpy as np

    from .cooccurrence import RECORD

    data = sys.stdin.buffer.read() if not os.isatty(0) else None
    if data is None:
        raise _CommandError("the records are read from stdin: redirect a file, e.g. '< cooccurrence.bin'")
    if len(data) == 0:
        raise _CommandError("stdin is empty: no co-occurrence records to shuffle")
    if len(data) % RECORD.itemsize:
        raise _CommandError(
            f"stdin is truncated or corrupt: {len(data)} bytes is not a multiple of the {RECORD.itemsize}-byte record"
        )
    seed = args.seed or int.from_bytes(os.urandom(4), "little")
    _say(args, 1, f"SHUFFLING COOCCURRENCES\nUsing random seed {seed}")
    records = np.frombuffer(data, dtype=RECORD)
    shuffled = records[np.random.default_rng(seed).permutation(len(records))]
    fd = _binary_stdout()
    view = memoryview(shuffled.tobytes())
    while view:
        view = view[os.write(fd, view) :]
    _say(args, 1, f"Wrote {len(records)} records.")
    return 0


def _train(args) -> int:
    from . import Cooccurrence, GloVe, Vocabulary

    if args.binary not in (0, 1, 2):
        raise _CommandError(f"-binary: expected 0, 1 or 2, got {args.binary}")
    if args.model not in (0, 1, 2):
        raise _CommandError(f"-model: expected 0, 1 or 2, got {args.model}")
    if args.iter < 0 or args.checkpoint_every < 0:
        raise _CommandError("-iter and -checkpoint-every: expected >= 0")
    if not 0 <= args.seed < 2**32:
        raise _CommandError(f"-seed: expected an integer in [0, 2^32), got {args.seed}")
    vocab = Vocabulary.load(args.vocab_file)
    _say(args, 1, "TRAINING MODEL")
    if args.memory is not None:
        if not args.memory > 0:
            raise _CommandError(f"-memory: expected a positive number of GB, got {args.memory}")
        cooc = args.input_file  # streamed in fit
        _say(args, 1, f"Streaming {os.path.getsize(cooc) // 16} lines within {args.memory} GB.")
    else:
        cooc = Cooccurrence.load(args.input_file, vocabulary=vocab)
        _say(args, 1, f"Read {len(cooc)} lines.")
    model = GloVe(
        vector_size=args.vector_size,
        x_max=args.x_max,
        alpha=args.alpha,
        learning_rate=args.eta,
        grad_clip=args.grad_clip,
        threads=_threads(args.threads),
        seed=args.seed or None,
    )
    gradsq_file = args.gradsq_file or ("gradsq" if args.save_gradsq else None)

    def save(stem: str, gradsq_stem) -> None:
        model.save(
            stem,
            vocab,
            binary=args.binary,
            model=args.model,
            write_header=bool(args.write_header),
            gradsq_file=gradsq_stem,
        )

    def report(epoch: int, cost: float) -> None:
        if epoch == 1:
            _say(
                args,
                1,
                f"Using random seed {model.seed_}\nvector size: {args.vector_size}\n"
                f"vocab size: {len(vocab)}\nx_max: {args.x_max:f}\nalpha: {args.alpha:f}",
            )
        _say(args, 1, f"{time.strftime('%x - %I:%M.%S%p')}, iter: {epoch:03d}, cost: {cost:f}")
        if args.checkpoint_every and epoch % args.checkpoint_every == 0:
            save(f"{args.save_file}.{epoch:03d}", f"{gradsq_file}.{epoch:03d}" if gradsq_file else None)
            model.save_checkpoint(f"{args.save_file}.checkpoint.npz")

    model.fit(
        cooc,
        epochs=args.iter,
        device=args.device,
        progress=False,
        callback=report,
        vocab_size=len(vocab),
        memory=args.memory,
        resume=args.resume,
        temp_dir=args.temp_dir,
    )
    model.vocabulary = vocab
    save(args.save_file, gradsq_file)
    return 0
