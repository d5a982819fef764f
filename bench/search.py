"""Beam-search step benchmark (fused kernel vs NumPy reference vs torch); the code is seqkernels.benchmarks.search."""

import pathlib
import sys

from seqkernels.benchmarks.search import main

sys.exit(main(results_dir=pathlib.Path(__file__).resolve().parent / "results"))
