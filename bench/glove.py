"""GloVe benchmark (seqkernels vs Stanford GloVe); the code is seqkernels.benchmarks.glove."""

import pathlib
import sys

from seqkernels.benchmarks.glove import main

sys.exit(main(results_dir=pathlib.Path(__file__).resolve().parent / "results"))
