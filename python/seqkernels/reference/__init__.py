"""Float64 NumPy reference for the recurrent layers: the executable form of docs/ops.md §1.

Written for reading, not speed: every C++ and CUDA kernel of ``seqkernels`` is checked against it.
Computation happens in the dtype of the input ``x`` (float64 normally).

* :mod:`.cells` - one time step of LSTM / GRU / RNN, forward and hand-derived backward.
* :mod:`.recurrent` - whole sequences (layers, directions, variable lengths, dropout masks),
  forward and backward through time, plus PyTorch-style parameter initialisation.
"""

from .cells import (
    gru_cell_backward,
    gru_cell_forward,
    lstm_cell_backward,
    lstm_cell_forward,
    rnn_cell_backward,
    rnn_cell_forward,
    sigmoid,
)
from .recurrent import GATES, backward, forward, init_params, param_names
from .search import beam_step

__all__ = [
    "GATES",
    "backward",
    "beam_step",
    "forward",
    "gru_cell_backward",
    "gru_cell_forward",
    "init_params",
    "lstm_cell_backward",
    "lstm_cell_forward",
    "param_names",
    "rnn_cell_backward",
    "rnn_cell_forward",
    "sigmoid",
]
