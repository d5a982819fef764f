"""``seqkernels word2vec train``: word2vec.c's command line (the same flags and defaults, so scripts
switch by changing the program name)::

    seqkernels word2vec train -train corpus.txt -output vectors.bin -cbow 0 -size 100 -window 5 \\
        -negative 5 -hs 0 -sample 1e-3 -threads 2 -iter 5 -min-count 5 -binary 1

A line of the corpus is a sentence. The vectors are written in word2vec's text (-binary 0) or
binary (-binary 1) format, which gensim's ``KeyedVectors.load_word2vec_format`` reads. On an error
the command prints one line, exits with status 1 and leaves no partial output file.
"""

from __future__ import annotations

import argparse

from ..glove.cli import _ExactFlagsParser, _flag, _run, _say

__all__ = ["add_parser"]


def add_parser(subparsers) -> None:
    """Registers ``word2vec train`` on the ``seqkernels`` command's subparsers."""
    top = subparsers.add_parser(
        "word2vec",
        help="word2vec (skip-gram / CBOW, negative sampling) with word2vec.c's flags",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = top.add_subparsers(dest="word2vec_command", required=True, metavar="VERB", parser_class=_ExactFlagsParser)
    p = verbs.add_parser(
        "train",
        help="train word vectors on a text corpus",
        allow_abbrev=False,
        description="train word vectors on a text corpus (word2vec.c's flags and defaults)",
    )
    _flag(p, "-train", str, None, "the corpus: a text file, one sentence per line (required)")
    _flag(p, "-output", str, None, "where to write the word vectors (required)")
    _flag(p, "-size", int, 100, "vector size (default 100)")
    _flag(p, "-window", int, 5, "maximum skip length between words (default 5)")
    _flag(p, "-sample", float, 1e-3, "subsampling threshold for frequent words (default 1e-3; 0 = off)")
    _flag(p, "-hs", int, 0, "hierarchical softmax: only 0 (off) is implemented")
    _flag(p, "-negative", int, 5, "negative examples per pair (default 5)")
    _flag(p, "-threads", int, 0, "Hogwild threads (default 0 = all cores)")
    _flag(p, "-iter", int, 5, "training iterations (default 5)")
    _flag(p, "-min-count", int, 5, "discard words seen fewer times (default 5)")
    _flag(p, "-alpha", float, None, "starting learning rate (default 0.025 for skip-gram, 0.05 for CBOW)")
    _flag(p, "-cbow", int, 1, "1 (default): continuous bag of words; 0: skip-gram")
    _flag(p, "-binary", int, 0, "0 (default): text vectors; 1: binary")
    _flag(p, "-save-vocab", str, None, "also save the vocabulary ('word count' lines)")
    _flag(p, "-read-vocab", str, None, "read the vocabulary from this file instead of counting it")
    _flag(p, "-seed", int, 1, "random seed (default 1)")
    _flag(p, "-verbose", int, 2, "0, 1 or 2 (default): 2 shows progress")
    p.set_defaults(func=lambda args: _run(args, _train), command_name="seqkernels word2vec train")


class _CommandError(ValueError):
    pass


def _train(args) -> int:
    from ..glove import Vocabulary
    from . import Word2Vec

    if not args.train or not args.output:
        raise _CommandError("-train and -output are required")
    if args.hs != 0:
        raise _CommandError("-hs 1 (hierarchical softmax) is not implemented: use negative sampling (-hs 0)")
    for flag, value in (("-cbow", args.cbow), ("-binary", args.binary)):
        if value not in (0, 1):
            raise _CommandError(f"{flag}: expected 0 or 1, got {value}")
    if args.threads < 0:
        raise _CommandError(f"-threads: expected >= 0 (0 = all cores), got {args.threads}")
    model = Word2Vec(
        vector_size=args.size,
        sg=not args.cbow,
        window=args.window,
        negative=args.negative,
        sample=args.sample,
        min_count=args.min_count,
        learning_rate=args.alpha,
        epochs=args.iter,
        threads=args.threads or None,
        seed=args.seed,
    )
    vocab = Vocabulary.load(args.read_vocab) if args.read_vocab else None
    model.build_vocab(args.train, vocab)
    _say(args, 1, f"Vocab size: {len(model.vocabulary)}\nWords in train file: {int(model.vocabulary.counts.sum())}")
    if args.save_vocab:
        model.vocabulary.save(args.save_vocab)
    ids, offsets, _ = model.encode(args.train)

    def report(epoch, stats):
        _say(
            args,
            1,
            f"iter {epoch}: {stats['words'] / stats['seconds'] / 1e3:.0f}k words/s, "
            f"learning rate {stats['learning_rate']:.6f}",
        )

    model.train(ids, offsets, progress=args.verbose >= 2, callback=report)
    model.save(args.output, binary=bool(args.binary))
    _say(args, 1, f"Wrote {len(model.vocabulary)} vectors to {args.output}")
    return 0
