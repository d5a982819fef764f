"""Autograd for one recurrent layer (all its directions) through the seqkernels kernels."""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from . import _kernels
from ._kernels import LayerSpec


class _LayerFunction(torch.autograd.Function):
    """``(x, h0, c0, *weights) -> (y, h_n[, c_n])`` for one layer. One Function per layer rather
    than per direction: both directions write their halves of one ``y`` and add into one ``dx``,
    so a bidirectional layer needs no concatenation or extra copies."""

    @staticmethod
    def forward(ctx, spec: LayerSpec, lengths, packs, x, h0, c0, *weights):
        y, h_n, c_n, workspaces = _kernels.layer_forward(spec, x, h0, c0, weights, lengths, training=True,
                                                         packs=packs)
        # Workspaces go through save_for_backward too, so autograd frees them after backward
        # (unless retain_graph) and saved-tensor hooks see them.
        ctx.save_for_backward(x, *weights, *workspaces)
        ctx.spec, ctx.lengths, ctx.packs, ctx.num_weights = spec, lengths, packs, len(weights)
        ctx.set_materialize_grads(False)  # unused h_n / c_n arrive as None: the kernel skips them
        return (y, h_n, c_n) if spec.is_lstm else (y, h_n)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh_n, dc_n=None):
        spec = ctx.spec
        saved = ctx.saved_tensors
        x, weights, workspaces = saved[0], saved[1:1 + ctx.num_weights], saved[1 + ctx.num_weights:]
        T, B, _ = x.shape
        if dy is None:
            dy = x.new_zeros((T, B, spec.num_directions * spec.state_size))
        dy = dy.contiguous()
        dh_n = None if dh_n is None else dh_n.contiguous()
        dc_n = None if dc_n is None else dc_n.contiguous()
        dx, dh0, dc0, dweights = _kernels.layer_backward(spec, x, weights, ctx.lengths, workspaces, dy, dh_n, dc_n,
                                                         packs=ctx.packs)
        need = ctx.needs_input_grad  # (spec, lengths, packs, x, h0, c0, *weights)
        return (None, None, None, dx if need[3] else None, dh0 if need[4] else None, dc0 if need[5] else None,
                *(g if n else None for g, n in zip(dweights, need[6:])))


def recurrent_layer(spec: LayerSpec, x, h0, c0, weights, lengths, packs=None):
    """One layer: through autograd when any input needs a gradient, otherwise the inference path
    (no workspace, no graph). Returns ``(y, h_n, c_n or None)``."""
    tensors = (x, h0, c0, *weights)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        out = _LayerFunction.apply(spec, lengths, packs, x, h0, c0, *weights)
        return out if spec.is_lstm else (out[0], out[1], None)
    y, h_n, c_n, _ = _kernels.layer_forward(spec, x, h0, c0, weights, lengths, training=False, packs=packs)
    return y, h_n, c_n
