"""Sentiment with word vectors benchmark (mean / LSTM / text CNN); the code is seqkernels.benchmarks.sentiment."""

import pathlib
import sys

from seqkernels.benchmarks.sentiment import main

sys.exit(main(results_dir=pathlib.Path(__file__).resolve().parent / "results"))
