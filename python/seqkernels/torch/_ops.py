"""The kernels as torch custom operators, so that ``torch.compile`` traces a model with the
drop-ins into one graph instead of breaking it at opaque Python calls:

* ``seqkernels::recurrent_layer``: one layer, all directions, forward (with the training
  workspace when a backward will follow);
* ``seqkernels::recurrent_layer_backward``: its fused backward through time.

Each has a fake (shape) implementation for tracing; the forward's autograd formula (in
:mod:`._autograd`) calls the backward op, or, when a graph of the gradient is requested
(``create_graph=True``), differentiates the torch-op twin of :mod:`._differentiable`.

The layer's description travels as plain arguments (mode, sizes, flags). The CPU pack buffers
(a cache of packed ``W_hh`` kept by each module) cannot be op arguments; they are looked up by a
key in :data:`_PACKS` (0: none, the kernels then pack privately per call).
"""

from __future__ import annotations

import itertools
import weakref

import torch
from torch import Tensor

from ..nn import _layer_plan
from . import _kernels
from ._kernels import LayerSpec

_PACKS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_NEXT_KEY = itertools.count(1)


class Packs(list):
    """One layer's pack buffers (a list that can be weakly referenced, so the registry does not keep
    a deleted module's buffers alive)."""

    def __init__(self, buffers):
        super().__init__(buffers)
        self.key = next(_NEXT_KEY)
        _PACKS[self.key] = self

    def __deepcopy__(self, memo):
        # A copied module gets buffers (and a key) of its own.
        return Packs([b.copy() for b in self])

    def __reduce__(self):
        return Packs, ([b.copy() for b in self],)


def packs_key(packs) -> int:
    return 0 if packs is None else packs.key


def packs_of(key: int):
    """The pack buffers registered under ``key``, or None (key 0, or their module is gone)."""
    return _PACKS.get(key) if key else None


def _spec(mode, reset_after, nonlinearity, hidden_size, num_directions, bias, proj_size) -> LayerSpec:
    return LayerSpec(mode, reset_after, nonlinearity, hidden_size, num_directions, bias, proj_size)


def _lengths(lengths):
    return None if lengths is None else lengths.numpy()


@torch.library.custom_op("seqkernels::recurrent_layer", mutates_args=())
def recurrent_layer(
    x: Tensor,
    h0: Tensor | None,
    c0: Tensor | None,
    weights: list[Tensor],
    lengths: Tensor | None,
    mode: str,
    reset_after: bool,
    nonlinearity: str,
    hidden_size: int,
    num_directions: int,
    bias: bool,
    proj_size: int,
    training: bool,
    packs: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(y, h_n, c_n, workspaces)``; ``c_n`` is empty except for LSTM, ``workspaces`` empty unless
    ``training``. ``lengths``: int32 CPU tensor ``(B,)`` or None."""
    spec = _spec(mode, reset_after, nonlinearity, hidden_size, num_directions, bias, proj_size)
    y, h_n, c_n, ws = _kernels.layer_forward(
        spec, x, h0, c0, list(weights), _lengths(lengths), training, packs_of(packs)
    )
    empty = x.new_empty((0,))
    return y, h_n, empty if c_n is None else c_n, empty.clone() if ws is None else ws


@recurrent_layer.register_fake
def _(
    x,
    h0,
    c0,
    weights,
    lengths,
    mode,
    reset_after,
    nonlinearity,
    hidden_size,
    num_directions,
    bias,
    proj_size,
    training,
    packs,
):
    T, B, _ = x.shape
    D, H, R = num_directions, hidden_size, proj_size or hidden_size
    y = x.new_empty((T, B, D * R))
    h_n = x.new_empty((D, B, R))
    c_n = x.new_empty((D, B, H)) if mode == "lstm" else x.new_empty((0,))
    ws = x.new_empty((0,))
    if training:
        # The workspace size is an integer function of the shapes; a symbolic size specialises.
        cell = _layer_plan.Cell(mode, reset_after, nonlinearity, proj_size)
        size = _layer_plan.workspace_size(cell, int(T), int(B), H)
        ws = x.new_empty((D, size))
    return y, h_n, c_n, ws


@torch.library.custom_op("seqkernels::recurrent_layer_backward", mutates_args=())
def recurrent_layer_backward(
    x: Tensor,
    weights: list[Tensor],
    lengths: Tensor | None,
    workspaces: Tensor,
    dy: Tensor,
    dh_n: Tensor | None,
    dc_n: Tensor | None,
    mode: str,
    reset_after: bool,
    nonlinearity: str,
    hidden_size: int,
    num_directions: int,
    bias: bool,
    proj_size: int,
    packs: int,
) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
    """``(dx, dh0, dc0, [dweights])``; ``dc0`` is empty except for LSTM."""
    spec = _spec(mode, reset_after, nonlinearity, hidden_size, num_directions, bias, proj_size)
    dx, dh0, dc0, dweights = _kernels.layer_backward(
        spec,
        x,
        list(weights),
        _lengths(lengths),
        workspaces,
        dy.contiguous(),
        None if dh_n is None else dh_n.contiguous(),
        None if dc_n is None else dc_n.contiguous(),
        packs_of(packs),
    )
    return dx, dh0, x.new_empty((0,)) if dc0 is None else dc0, dweights


@recurrent_layer_backward.register_fake
def _(
    x,
    weights,
    lengths,
    workspaces,
    dy,
    dh_n,
    dc_n,
    mode,
    reset_after,
    nonlinearity,
    hidden_size,
    num_directions,
    bias,
    proj_size,
    packs,
):
    T, B, _ = x.shape
    dh0 = x.new_empty((num_directions, B, proj_size or hidden_size))
    dc0 = x.new_empty((num_directions, B, hidden_size)) if mode == "lstm" else x.new_empty((0,))
    return torch.empty_like(x), dh0, dc0, [torch.empty_like(w) for w in weights]
