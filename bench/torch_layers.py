"""The drop-in torch layers in a torch model vs torch.nn's; the code is seqkernels.benchmarks.torch_layers."""

import pathlib
import sys

try:
    import torch  # noqa: F401  (first, as users import it: seqkernels then shares its OpenMP runtime)
except ImportError:
    pass
from seqkernels.benchmarks.torch_layers import main

sys.exit(main(results_dir=pathlib.Path(__file__).resolve().parent / "results"))
