"""Shared pieces of the seqkernels.torch tests: building a torch.nn twin with the same weights,
running both on the same inputs, and comparing outputs and every gradient."""

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import seqkernels.torch as skt
from tests.tolerance import assert_close_rel

# name -> (seqkernels class, torch class, extra kwargs for both)
CELLS = {
    "lstm": (skt.LSTM, torch.nn.LSTM, {}),
    "gru": (skt.GRU, torch.nn.GRU, {}),
    "rnn_tanh": (skt.RNN, torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (skt.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
}

REL = {torch.float32: 1e-5, torch.float64: 1e-12}


def make_pair(cell, *args, dtype=torch.float32, **kwargs):
    """(ours, torch.nn twin) with torch's weights loaded into ours."""
    ours_cls, torch_cls, extra = CELLS[cell]
    ref = torch_cls(*args, **extra, **kwargs).to(dtype)
    ours = ours_cls(*args, **extra, **kwargs).to(dtype)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def make_input(kind, T, B, I, lengths, batch_first, dtype, gen):
    """A leaf tensor x (requires grad) and what is fed to the layer for input ``kind``:
    'tensor', 'unbatched', 'packed_sorted' (enforce_sorted=True), 'packed_unsorted'
    (enforce_sorted=False)."""
    if kind == "unbatched":
        x = torch.randn(T, I, generator=gen, dtype=dtype).requires_grad_()
        return x, x
    x = torch.randn((B, T, I) if batch_first else (T, B, I), generator=gen, dtype=dtype).requires_grad_()
    if kind == "tensor":
        return x, x
    enforce = kind == "packed_sorted"
    return x, pack_padded_sequence(x, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=enforce)


def outputs_of(module, inp, hx):
    """Flat list of output tensors: y (packed data when packed), h_n[, c_n]."""
    y, hidden = module(inp, hx)
    y = y.data if isinstance(y, PackedSequence) else y
    return [y, *(hidden if isinstance(hidden, tuple) else (hidden,))]


def compare(ours, ref, inp, hx, leaves, rel, gen, names=("y", "h_n", "c_n")):
    """Run both modules, backpropagate the same random cotangents, compare outputs and the
    gradients of ``leaves`` (dict name -> leaf tensor) and of every parameter."""
    outs_ref = outputs_of(ref, inp, hx)
    outs = outputs_of(ours, inp, hx)
    assert len(outs) == len(outs_ref)
    for name, a, b in zip(names, outs, outs_ref):
        assert a.shape == b.shape and a.dtype == b.dtype, f"{name}: {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
        assert_close_rel(name, a.detach().numpy(), b.detach().numpy(), rel)
    cot = [torch.randn(o.shape, generator=gen, dtype=o.dtype) for o in outs]
    wrt_ref = list(leaves.values()) + list(ref.parameters())
    wrt = list(leaves.values()) + list(ours.parameters())
    g_ref = torch.autograd.grad(outs_ref, wrt_ref, cot, retain_graph=True)  # the packing graph is shared
    g = torch.autograd.grad(outs, wrt, cot)
    grad_names = [f"d{k}" for k in leaves] + [f"d{k}" for k, _ in ours.named_parameters()]
    assert [k for k, _ in ours.named_parameters()] == [k for k, _ in ref.named_parameters()]
    for name, a, b in zip(grad_names, g, g_ref):
        assert_close_rel(name, a.numpy(), b.numpy(), rel)
    return outs, outs_ref


def raised_type(fn):
    """The type of the exception ``fn()`` raises, or None: to compare with torch.nn's."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the type is what is compared
        return type(e)
    return None
