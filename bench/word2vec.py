"""word2vec benchmark (seqkernels vs gensim); the code is seqkernels.benchmarks.word2vec."""

import pathlib
import sys

from seqkernels.benchmarks.word2vec import main

sys.exit(main(results_dir=pathlib.Path(__file__).resolve().parent / "results"))
