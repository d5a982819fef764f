"""``Module``: named parameters and gradients, train/eval, state dicts and ``.npz`` files for
layers and models built from layers; ``Sequential`` runs layers in order.

Conventions (the same as the recurrent layers of :mod:`seqkernels.nn.recurrent`):

* ``module.params`` and ``module.grads`` are dicts of the module's *own* arrays keyed by name;
  ``named_parameters()`` / ``named_grads()`` add every child's, prefixed ``"child."`` as in a torch
  state dict. Children are the attributes holding a layer (a ``Module`` or anything with ``params``,
  ``grads`` and ``train``, such as ``seqkernels.nn.LSTM``), in the order they were assigned.
* One training-mode forward allows one ``backward``; backward *overwrites* ``grads`` (it does not
  accumulate). A parameter without an entry in ``grads`` (a frozen embedding, or a layer that was
  not used) is skipped by the optimisers.
* Optimisers update the parameter arrays in place, so references to them stay valid.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ._arrays import to_numpy

__all__ = ["Module", "Sequential", "META_KEY"]

#: Key under which :meth:`Module.save` stores JSON metadata in the ``.npz`` (models use it for
#: their configuration and vocabulary); :meth:`Module.load` ignores it.
META_KEY = "__meta__"


def is_layer(obj) -> bool:
    """True for objects that take part in parameter collection: Modules and the recurrent layers."""
    return isinstance(obj, Module) or (
        not isinstance(obj, type)
        and isinstance(getattr(obj, "params", None), dict)
        and hasattr(obj, "grads")
        and callable(getattr(obj, "train", None))
    )


class Module:
    """Base class of the training layers and models (see the module docstring)."""

    def __init__(self):
        self.params: dict = {}
        self.grads: dict = {}
        self.training = True

    # ---- calling ------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.backward")

    # ---- structure ----------------------------------------------------------------------------
    def children(self):
        """``[(name, layer), ...]`` for the direct children, in assignment order."""
        return [(k, v) for k, v in vars(self).items() if k not in ("params", "grads") and is_layer(v)]

    def named_parameters(self) -> list:
        """``[(name, array), ...]`` of this module's parameters and all its children's."""
        out = list(self.params.items())
        for cname, child in self.children():
            items = child.named_parameters()
            out += [(f"{cname}.{k}", v) for k, v in (items.items() if isinstance(items, dict) else items)]
        return out

    def parameters(self) -> list:
        return [v for _, v in self.named_parameters()]

    def named_grads(self) -> list:
        """``[(name, array), ...]`` of the gradients set by the last ``backward`` (names as in
        :meth:`named_parameters`; parameters without a gradient are absent)."""
        out = list(self.grads.items())
        for cname, child in self.children():
            if isinstance(child, Module):
                out += [(f"{cname}.{k}", v) for k, v in child.named_grads()]
            else:
                out += [(f"{cname}.{k}", v) for k, v in child.grads.items()]
        return out

    def zero_grad(self):
        """Forget all gradients (``grads`` becomes empty everywhere)."""
        self.grads = {}
        for _, child in self.children():
            if isinstance(child, Module):
                child.zero_grad()
            else:
                child.grads = {}
        return self

    def num_parameters(self) -> int:
        return int(sum(int(np.prod(v.shape)) for v in self.parameters()))

    def train(self, mode: bool = True):
        """Training mode (dropout on, activations saved for backward) for this module and children."""
        self.training = bool(mode)
        for _, child in self.children():
            child.train(mode)
        return self

    def eval(self):
        """Inference mode for this module and its children."""
        return self.train(False)

    # ---- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Copies of all parameters, keyed as in :meth:`named_parameters`."""
        return {k: to_numpy(v).copy() for k, v in self.named_parameters()}

    def load_state_dict(self, state_dict, strict: bool = True):
        """Load parameters (NumPy arrays or torch tensors) keyed as in :meth:`state_dict`. With
        ``strict``, the keys must match exactly; shapes must always match."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict: expected a dict, got {type(state_dict).__name__}")
        expected = [k for k, _ in self.named_parameters()]
        if strict:
            missing = [k for k in expected if k not in state_dict]
            unexpected = sorted(set(state_dict) - set(expected) - {META_KEY})
            if missing or unexpected:
                raise ValueError(
                    f"state_dict does not match {type(self).__name__}: missing {missing}, unexpected {unexpected}"
                )
        self._load_own(state_dict)
        for cname, child in self.children():
            prefix = cname + "."
            sub = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
            if isinstance(child, Module):
                child.load_state_dict(sub, strict=strict)
            elif sub or strict:
                child.load_state_dict(sub, strict=strict)
        return self

    def _load_own(self, state_dict):
        for k, cur in self.params.items():
            if k not in state_dict:
                continue
            v = to_numpy(state_dict[k])
            if v.shape != cur.shape:
                raise ValueError(f"state_dict[{k!r}]: expected shape {cur.shape}, got {v.shape}")
            if v.dtype.kind != "f":
                raise TypeError(f"state_dict[{k!r}]: expected a floating-point array, got {v.dtype}")
            cur[...] = v  # in place: optimisers and callers keep valid references

    def _meta(self) -> dict | None:
        """JSON-serialisable metadata stored beside the parameters by :meth:`save` (models override)."""
        return None

    def save(self, path):
        """Write the state dict (plus the metadata of models) to ``path`` as an uncompressed ``.npz``
        (NumPy appends ``.npz`` when the name lacks it). Returns the path written."""
        path = os.fspath(path)
        if not path.endswith(".npz"):
            path += ".npz"
        arrays = self.state_dict()
        meta = self._meta()
        if meta is not None:
            arrays[META_KEY] = np.array(json.dumps(meta))
        tmp = path + ".tmp.npz"  # write then rename, so a crash never leaves a half-written file
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        return path

    def load(self, path, strict: bool = True):
        """Load parameters written by :meth:`save` into this module (same architecture)."""
        with np.load(os.fspath(path), allow_pickle=False) as f:
            state = {k: f[k] for k in f.files if k != META_KEY}
        return self.load_state_dict(state, strict=strict)


def read_meta(path) -> dict:
    """The metadata :meth:`Module.save` stored in ``path`` (``{}`` when there is none)."""
    with np.load(os.fspath(path), allow_pickle=False) as f:
        return json.loads(str(f[META_KEY])) if META_KEY in f.files else {}


class Sequential(Module):
    """Layers called in order; ``backward`` runs them in reverse.

    Every layer maps one array to one array. For a layer that returns a tuple (the recurrent layers
    return ``(y, h_n)``) only the first element is passed on, and its ``backward`` gets ``dy`` alone
    (no gradient for the final state) and hands back the first element of its result. A layer whose
    backward returns None (an ``Embedding``: token ids have no gradient) ends the backward pass.
    Parameter names are prefixed by the layer's position, ``"0.weight"``, as in ``torch.nn.Sequential``.
    """

    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            if not is_layer(layer) or not callable(layer):
                raise TypeError(f"layers[{i}]: expected a seqkernels.nn layer, got {type(layer).__name__}")
        self.layers = list(layers)

    def children(self):
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
            if isinstance(x, tuple):
                x = x[0]
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
            if isinstance(dy, tuple):
                dy = dy[0]
            if dy is None:
                break
        return dy

    def __repr__(self):
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"
