"""Seq2Seq dates benchmark (human-readable dates -> ISO); the code is seqkernels.benchmarks.seq2seq_dates."""

import pathlib
import sys

from seqkernels.benchmarks.seq2seq_dates import main

sys.exit(main(results_dir=pathlib.Path(__file__).resolve().parent / "results"))
