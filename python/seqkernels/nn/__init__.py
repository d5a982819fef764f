"""Layers with explicit forward and backward over NumPy arrays, and what it takes to train them.

* Recurrent layers: :class:`LSTM`, :class:`GRU`, :class:`RNN` (fused C++ kernels; CUDA kernels on
  CuPy arrays after ``.to("cuda")``), and their one-step cells :class:`LSTMCell`, :class:`GRUCell`,
  :class:`RNNCell`.
* Training pieces: :class:`Embedding`, :class:`Linear`, :class:`Dropout`, :class:`Tanh`,
  :class:`Attention`, :func:`softmax_cross_entropy`, :func:`log_softmax`, :class:`SGD`,
  :class:`Adam`, :func:`clip_grad_norm`, and :class:`Module` / :class:`Sequential` (named
  parameters and gradients, train/eval, state dicts, ``save``/``load`` to ``.npz``).
* Text CNN (Kim 2014): :class:`Conv1d`, :class:`MaxPool1d`, :class:`MaxOverTime`, :class:`ReLU` and
  :class:`TextCNN` (several filter widths, concatenated), time-major like the recurrent layers.
* :func:`single_threaded_blas`: wrap hand-written training loops in it (the models do) so NumPy's
  BLAS threads do not compete with the recurrent kernels' OpenMP team.

Each training piece is tested against its float64 loop form in
:mod:`seqkernels.reference.training`, finite differences, and torch where torch has the op.
"""

from ._blas import single_threaded_blas
from .cells import GRUCell, LSTMCell, RNNCell
from .conv import Conv1d, MaxOverTime, MaxPool1d, ReLU, TextCNN
from .layers import Attention, Dropout, Embedding, Linear, Tanh
from .loss import log_softmax, softmax_cross_entropy
from .module import Module, Sequential
from .optim import SGD, Adam, clip_grad_norm
from .recurrent import GRU, LSTM, RNN

__all__ = [
    "LSTM",
    "GRU",
    "RNN",
    "LSTMCell",
    "GRUCell",
    "RNNCell",
    "Attention",
    "Dropout",
    "Embedding",
    "Linear",
    "Tanh",
    "Conv1d",
    "MaxOverTime",
    "MaxPool1d",
    "ReLU",
    "TextCNN",
    "log_softmax",
    "softmax_cross_entropy",
    "Module",
    "Sequential",
    "SGD",
    "Adam",
    "clip_grad_norm",
    "single_threaded_blas",
]
