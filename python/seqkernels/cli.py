"""The ``seqkernels`` command (also ``python -m seqkernels``)."""

from __future__ import annotations

import argparse
import json
import sys


def _info(args) -> int:
    from . import __version__, build_info

    info = build_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"seqkernels {__version__}")
    for key, value in info.items():
        print(f"  {key:16s} {value}")
    return 0


BENCH_SUITES = ("rnn", "search", "glove", "torch_layers", "word2vec", "text_cnn", "sentiment")


def _bench(args) -> int:
    import importlib

    suite = importlib.import_module(f".benchmarks.{args.suite}", __package__)  # one of BENCH_SUITES
    return suite.main(args.rest) or 0


def _add_model_commands(sub) -> None:
    """``demo`` and ``train-lm`` (their command-line layer lives in seqkernels.models.cli)."""
    from .models import cli

    cli.add_demo_parser(sub)
    cli.add_train_lm_parser(sub)


def _add_glove(sub) -> None:
    """The `seqkernels glove ...` verbs (Stanford GloVe's commands): seqkernels/glove/cli.py."""
    from .glove.cli import add_parser

    add_parser(sub)


def _add_word2vec(sub) -> None:
    """`seqkernels word2vec train` (word2vec.c's flags): seqkernels/word2vec/cli.py."""
    from .word2vec.cli import add_parser

    add_parser(sub)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="seqkernels",
        description="Fused CPU/CUDA kernels for sequence models: "
        "recurrent layers, beam search, BLEU, GloVe, and the models built on them.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="version, BLAS, OpenMP and CUDA build information")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_info)
    p = sub.add_parser("bench", help="run a benchmark suite (see `seqkernels bench rnn --help`)")
    p.add_argument("suite", choices=BENCH_SUITES, help="which benchmark")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the benchmark")
    p.set_defaults(func=_bench)
    # The verbs of one command group import what they need (the models group imports the models
    # and layers): with the command named, only its group is built, so that `seqkernels glove
    # cooccur` does not pay for importing the models before it starts counting.
    groups = {
        "demo": _add_model_commands,
        "train-lm": _add_model_commands,
        "glove": _add_glove,
        "word2vec": _add_word2vec,
    }
    words = sys.argv[1:] if argv is None else list(argv)
    command = next((w for w in words if not w.startswith("-")), None)
    for add in dict.fromkeys([groups[command]] if command in groups else groups.values()):
        add(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
