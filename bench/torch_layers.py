"""Training-step benchmark of seqkernels.torch.LSTM vs torch.nn.LSTM; the code is
seqkernels.benchmarks.torch_layers."""
import pathlib, sys
from seqkernels.benchmarks.torch_layers import main
sys.exit(main(results_dir=pathlib.Path(__file__).resolve().parent / "results"))
