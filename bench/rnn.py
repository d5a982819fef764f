"""Recurrent-layer benchmark (seqkernels vs torch.nn); the code is seqkernels.benchmarks.rnn."""

import pathlib
import sys

try:
    import torch  # noqa: F401  (first, as users import it: seqkernels then shares its OpenMP runtime)
except ImportError:
    pass
from seqkernels.benchmarks.rnn import main

sys.exit(main(results_dir=pathlib.Path(__file__).resolve().parent / "results"))
