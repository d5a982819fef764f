"""Text CNN layers benchmark (seqkernels vs torch.nn.Conv1d); the code is seqkernels.benchmarks.text_cnn."""

import pathlib
import sys

import torch  # noqa: F401  (first, as users import it: seqkernels then shares its OpenMP runtime)

from seqkernels.benchmarks.text_cnn import main

sys.exit(main(results_dir=pathlib.Path(__file__).resolve().parent / "results"))
