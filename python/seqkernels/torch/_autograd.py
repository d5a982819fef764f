"""Autograd for one recurrent layer (all its directions) through the seqkernels kernels: eagerly an
``autograd.Function`` over the kernels, and the same formula registered for the
``seqkernels::recurrent_layer`` custom op (:mod:`._ops`) that torch.compile traces.

One op per layer rather than per direction: both directions write their halves of one ``y`` and
add into one ``dx``, so a bidirectional layer needs no concatenation or extra copies.

First-order gradients run the fused backward op. When autograd asks for a graph of the gradient
(``create_graph=True``, so grad mode is on inside backward) they come from the layer recomputed in
differentiable torch ops (:mod:`._differentiable`) from the saved inputs instead: the fused
backward writes numbers and builds no graph, and a silently constant gradient would give wrong
second derivatives. Dropout sits between layers, outside this function, so the recomputation sees
the masks of the forward.
"""

from __future__ import annotations

import torch

from . import _differentiable, _kernels, _ops
from ._kernels import LayerSpec

# The op's arguments after the tensors: everything that describes the layer.
_N_CONFIG = 9  # mode, reset_after, nonlinearity, hidden_size, num_directions, bias, proj_size, training, packs


def _save(ctx, spec, packs, wants, x, h0, c0, lengths, workspaces, weights):
    ctx.spec, ctx.packs, ctx.wants = spec, packs, wants
    ctx.set_materialize_grads(False)  # unused h_n / c_n arrive as None: the kernel skips them
    # Workspaces go through save_for_backward too, so autograd frees them after backward (unless
    # retain_graph) and saved-tensor hooks see them. h0/c0 only serve a double backward.
    ctx.save_for_backward(x, h0, c0, lengths, workspaces, *weights)


def _gradients(ctx, dy, dh_n, dc_n, fused_backward):
    """Gradients of ``(x, h0, c0, *weights)`` (None where not wanted), by ``fused_backward`` or, in
    a double backward, by the differentiable recomputation."""
    spec, wants = ctx.spec, ctx.wants
    x, h0, c0, lengths, workspaces, *weights = ctx.saved_tensors
    if not spec.is_lstm:
        dc_n = None
    if torch.is_grad_enabled() or _batched(dy, dh_n, dc_n):
        # A graph of the gradient is wanted, or the backward runs under vmap (batched gradients:
        # jacobians, gradcheck's batched check), where the kernels cannot see through the batching.
        return _differentiable_grads(spec, x, h0, c0, weights, lengths, (dy, dh_n, dc_n), wants)
    if dy is None:
        dy = x.new_zeros((x.shape[0], x.shape[1], spec.num_directions * spec.state_size))
    if workspaces is None or workspaces.numel() == 0:
        # Called without training=True (a caller of the op that did not ask for a workspace):
        # recompute the forward to get one rather than fail.
        workspaces = _ops.recurrent_layer(x, h0, c0, weights, lengths, *spec, True, ctx.packs)[3]
    dx, dh0, dc0, dweights = fused_backward(ctx, x, weights, lengths, workspaces, dy, dh_n, dc_n)
    return [g if w else None for g, w in zip((dx, dh0, dc0 if spec.is_lstm else None, *dweights), wants)]


def _batched(*tensors) -> bool:
    """True when a cotangent is a batched tensor (the backward runs under vmap, or under autograd's
    own batching for ``is_grads_batched``)."""
    f = torch._C._functorch
    return any(t is not None and (f.is_batchedtensor(t) or f.is_legacy_batchedtensor(t)) for t in tensors)


def _differentiable_grads(spec, x, h0, c0, weights, lengths, cotangents, wants):
    """The gradients as a graph (for a double backward): recompute the forward in torch ops from the
    saved inputs, then ``autograd.grad(..., create_graph=True)`` over it."""
    inputs = (x, h0, c0, *weights)
    wrt = [i for i, w in enumerate(wants) if w]
    with torch.enable_grad():
        outs = _differentiable.layer(spec, x, h0, c0, weights, lengths)
        pairs = [(o, g) for o, g in zip(outs, cotangents) if o is not None and g is not None]
        grads = (
            torch.autograd.grad(
                [o for o, _ in pairs],
                [inputs[i] for i in wrt],
                [g for _, g in pairs],
                create_graph=True,
                allow_unused=True,
            )
            if pairs and wrt
            else ()
        )
    result = [None] * len(inputs)
    for i, g in zip(wrt, grads):
        result[i] = torch.zeros_like(inputs[i]) if g is None else g
    return result


def _numpy_lengths(lengths):
    return None if lengths is None else lengths.numpy()


# ---- traced path: the custom op's autograd formula (torch.compile, meta tensors) -----------------------
def _op_setup_context(ctx, inputs, output):
    x, h0, c0, weights, lengths, mode, reset_after, nonlinearity, hidden, directions, bias, proj, _, packs = inputs
    ctx.mark_non_differentiable(output[3])
    _save(
        ctx,
        LayerSpec(mode, reset_after, nonlinearity, hidden, directions, bias, proj),
        packs,
        [t is not None and t.requires_grad for t in (x, h0, c0, *weights)],
        x,
        h0,
        c0,
        lengths,
        output[3],
        weights,
    )


def _op_fused_backward(ctx, x, weights, lengths, workspaces, dy, dh_n, dc_n):
    return _ops.recurrent_layer_backward(x, weights, lengths, workspaces, dy, dh_n, dc_n, *ctx.spec, ctx.packs)


def _op_backward(ctx, dy, dh_n, dc_n, _dworkspaces):
    g = _gradients(ctx, dy, dh_n, dc_n, _op_fused_backward)
    return (g[0], g[1], g[2], list(g[3:]), None, *([None] * _N_CONFIG))


torch.library.register_autograd("seqkernels::recurrent_layer", _op_backward, setup_context=_op_setup_context)


# ---- eager path: the kernels called directly (no op dispatch: it costs more than a small layer) --------
def _eager_fused_backward(ctx, x, weights, lengths, workspaces, dy, dh_n, dc_n):
    return _kernels.layer_backward(
        ctx.spec,
        x,
        weights,
        _numpy_lengths(lengths),
        workspaces,
        dy.contiguous(),
        None if dh_n is None else dh_n.contiguous(),
        None if dc_n is None else dc_n.contiguous(),
        _ops.packs_of(ctx.packs),
    )


class _LayerFunction(torch.autograd.Function):
    """``(x, h0, c0, *weights) -> (y, h_n, c_n or empty)`` for one layer, eagerly."""

    @staticmethod
    def forward(ctx, spec: LayerSpec, lengths, packs, x, h0, c0, *weights):
        y, h_n, c_n, workspaces = _kernels.layer_forward(
            spec, x, h0, c0, weights, _numpy_lengths(lengths), training=True, packs=_ops.packs_of(packs)
        )
        _save(ctx, spec, packs, ctx.needs_input_grad[3:], x, h0, c0, lengths, workspaces, weights)
        return (y, h_n, c_n) if spec.is_lstm else (y, h_n)

    @staticmethod
    def backward(ctx, dy, dh_n, dc_n=None):
        return (None, None, None, *_gradients(ctx, dy, dh_n, dc_n, _eager_fused_backward))


def recurrent_layer(spec: LayerSpec, x, h0, c0, weights, lengths, packs=None):
    """One layer: through autograd when any input needs a gradient (a workspace is then kept),
    otherwise the inference path (no workspace, no graph). Under torch.compile (and for meta
    tensors) through the custom op, so that it is traced. ``lengths``: int32 CPU tensor ``(B,)`` or
    None. Returns ``(y, h_n, c_n or None)``."""
    tensors = (x, h0, c0, *weights)
    training = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    key = _ops.packs_key(packs)
    if torch.compiler.is_compiling() or x.device.type == "meta":
        y, h_n, c_n, _ = _ops.recurrent_layer(x, h0, c0, list(weights), lengths, *spec, training, key)
        return y, h_n, (c_n if spec.is_lstm else None)
    if training:
        out = _LayerFunction.apply(spec, lengths, key, x, h0, c0, *weights)
        return out if spec.is_lstm else (out[0], out[1], None)
    y, h_n, c_n, _ = _kernels.layer_forward(
        spec, x, h0, c0, weights, _numpy_lengths(lengths), training=False, packs=packs
    )
    return y, h_n, c_n
