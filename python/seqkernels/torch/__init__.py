"""Drop-in replacements for ``torch.nn.LSTM``, ``torch.nn.GRU`` and ``torch.nn.RNN`` whose forward
and backward run on the seqkernels kernels::

    from seqkernels.torch import LSTM          # instead of torch.nn.LSTM
    lstm = LSTM(128, 256, num_layers=2, bidirectional=True, dropout=0.1)
    lstm.load_state_dict(torch_lstm.state_dict())   # torch.nn weights load unchanged

``patch()`` (or ``with patched():``) makes ``torch.nn.LSTM/GRU/RNN`` and the cells these classes for
code that builds them itself; ``unpatch()`` restores torch's (limits: :mod:`._patch`).

Needs torch (``pip install seqkernels[torch]``); the rest of seqkernels does not, and
``import seqkernels`` never imports this module. float32/float64 tensors on the CPU (the C++
kernels) or on CUDA (the CUDA kernels, through CuPy views on torch's current stream; needs CuPy and
the CUDA build; never run on a GPU yet). Tensors on other devices raise RuntimeError (meta tensors
get the output shapes, as with torch.nn).
"""

try:
    import torch as _torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised by the no-torch subprocess test
    raise ImportError(
        "seqkernels.torch needs PyTorch: pip install torch (or seqkernels[torch]); the rest of "
        "seqkernels works without it"
    ) from e

from ._patch import is_patched, patch, patched, unpatch
from .cells import GRUCell, LSTMCell, RNNCell
from .recurrent import GRU, LSTM, RNN

__all__ = ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell", "patch", "unpatch", "patched", "is_patched"]
