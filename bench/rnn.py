"""Recurrent-layer benchmark (seqkernels vs torch.nn vs NumPy); the code is seqkernels.benchmarks.rnn."""
import pathlib, sys
from seqkernels.benchmarks.rnn import main
sys.exit(main(results_dir=pathlib.Path(__file__).resolve().parent / "results"))
