"""Optimisers (``SGD``, ``Adam``) and global-norm gradient clipping over a module's named
parameters and gradients.

An optimiser holds the *module* (a :class:`seqkernels.nn.Module`, a recurrent layer, or anything
with ``params``/``grads`` dicts), not the arrays: layers replace their ``grads`` dict on every
backward (and a recurrent layer's ``load_state_dict`` replaces its arrays), so ``step()`` looks
parameters and gradients up by name each time and updates the parameter arrays in place. A
parameter without a gradient is skipped, as torch skips ``grad is None``. The update rules are
PyTorch's (single-tensor, CPU code path); the float64 loop forms are
:func:`seqkernels.reference.training.sgd_step` / ``adam_step`` / ``clip_grad_norm``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._arrays import array_module, check_nonneg_real
from .module import Module

__all__ = ["SGD", "Adam", "clip_grad_norm"]


def _named(obj, what):
    """``dict(name -> array)`` of a module's parameters (``what="params"``) or gradients."""
    if isinstance(obj, Module):
        return dict(obj.named_parameters() if what == "params" else obj.named_grads())
    d = getattr(obj, what, None)
    if not isinstance(d, dict):
        raise TypeError(
            f"module: expected a seqkernels.nn Module or layer with .params and .grads dicts, got {type(obj).__name__}"
        )
    return d


class Optimizer:
    """Shared machinery: the module, the learning rate, per-parameter state keyed by name."""

    def __init__(self, module, lr):
        _named(module, "params")  # type check
        self.module = module
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        self.lr = float(lr)
        self.state: dict[str, dict] = {}

    def _pairs(self):
        params, grads = _named(self.module, "params"), _named(self.module, "grads")
        for name, p in params.items():
            g = grads.get(name)
            if g is None:
                continue
            if g.shape != p.shape:
                raise ValueError(f"grads[{name!r}]: shape {g.shape} does not match the parameter's {p.shape}")
            yield name, p, g

    def zero_grad(self):
        if isinstance(self.module, Module):
            self.module.zero_grad()
        else:
            self.module.grads = {}

    def state_dict(self) -> dict:
        """Flat dict of arrays (for ``numpy.savez``): ``"<param>/<slot>"`` plus ``"lr"``."""
        out = {"lr": np.array(self.lr)}
        for name, st in self.state.items():
            for slot, v in st.items():
                out[f"{name}/{slot}"] = np.array(v, copy=True)
        return out

    def load_state_dict(self, state):
        self.lr = float(state["lr"])
        self.state = {}
        for key, v in state.items():
            if key == "lr":
                continue
            name, _, slot = key.rpartition("/")
            self.state.setdefault(name, {})[slot] = int(v) if slot == "step" else np.array(v, copy=True)
        return self


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay,
    as ``torch.optim.SGD``::

        g = grad + weight_decay * p
        buf = g (first step) or momentum * buf + (1 - dampening) * g
        g = g + momentum * buf (nesterov) or buf
        p -= lr * g
    """

    def __init__(self, module, lr=0.01, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(module, lr)
        self.momentum = check_nonneg_real(momentum, "momentum")
        self.dampening = check_nonneg_real(dampening, "dampening")
        self.weight_decay = check_nonneg_real(weight_decay, "weight_decay")
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov: Nesterov momentum requires momentum > 0 and dampening = 0")

    def step(self):
        for name, p, g in self._pairs():
            if self.weight_decay:
                g = g + self.weight_decay * p
            if self.momentum:
                st = self.state.setdefault(name, {})
                buf = st.get("momentum_buffer")
                if buf is None:
                    buf = st["momentum_buffer"] = g.copy()
                else:
                    buf *= self.momentum
                    buf += (1 - self.dampening) * g
                g = g + self.momentum * buf if self.nesterov else buf
            p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba) as ``torch.optim.Adam``; ``decoupled_weight_decay=True`` is ``AdamW``::

        g = grad + weight_decay * p            (AdamW instead: p *= 1 - lr * weight_decay)
        m = β1 m + (1 - β1) g                  v = β2 v + (1 - β2) g²
        p -= (lr / (1 - β1^t)) * m / (sqrt(v) / sqrt(1 - β2^t) + eps)

    with ``t`` counted per parameter (steps in which it had a gradient).
    """

    def __init__(self, module, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False):
        super().__init__(module, lr)
        if not (
            isinstance(betas, (tuple, list))
            and len(betas) == 2
            and all(isinstance(b, numbers.Real) and 0.0 <= b < 1.0 for b in betas)
        ):
            raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = check_nonneg_real(eps, "eps")
        self.weight_decay = check_nonneg_real(weight_decay, "weight_decay")
        self.decoupled_weight_decay = bool(decoupled_weight_decay)

    def step(self):
        b1, b2 = self.betas
        for name, p, g in self._pairs():
            xp = array_module(p)
            st = self.state.get(name)
            if st is None:
                st = self.state[name] = {"step": 0, "exp_avg": xp.zeros_like(p), "exp_avg_sq": xp.zeros_like(p)}
            st["step"] += 1
            t = st["step"]
            if self.weight_decay and self.decoupled_weight_decay:
                p *= 1 - self.lr * self.weight_decay
            elif self.weight_decay:
                g = g + self.weight_decay * p
            m, v = st["exp_avg"], st["exp_avg_sq"]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            step_size = self.lr / (1 - b1**t)
            denom = xp.sqrt(v) / math.sqrt(1 - b2**t) + self.eps
            p -= step_size * (m / denom)


def clip_grad_norm(grads, max_norm, norm_type=2.0):
    """Scale gradients in place so that their global norm is at most ``max_norm``
    (``torch.nn.utils.clip_grad_norm_``: factor ``max_norm / (total + 1e-6)``, applied when < 1).

    grads: a module (its current gradients), a dict of arrays, or a list of arrays.
    norm_type: p of the p-norm of all gradients taken together (2 by default), or ``inf`` for the
    largest magnitude. Returns the total norm *before* clipping, as a Python float (``inf``/NaN
    when a gradient holds them; then nothing is scaled, so the caller can detect and skip the step).
    """
    if isinstance(grads, dict):
        arrays = list(grads.values())
    elif isinstance(grads, (list, tuple)):
        arrays = list(grads)
    else:
        arrays = list(_named(grads, "grads").values())
    check_nonneg_real(max_norm, "max_norm")
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real) or not norm_type > 0:
        raise ValueError(f"norm_type must be a number > 0 or inf, got {norm_type!r}")
    if not arrays:
        return 0.0
    xp = array_module(*arrays)
    if norm_type == math.inf:
        total = max(float(xp.abs(g).max()) if g.size else 0.0 for g in arrays)
    else:
        # each gradient's p-th power sum in float64, then the root (float32 sums lose digits)
        total = sum(float((xp.abs(g.astype("float64")) ** norm_type).sum()) for g in arrays) ** (1.0 / norm_type)
    if not math.isfinite(total):
        return total
    coef = float(max_norm) / (total + 1e-6)
    if coef < 1.0:
        for g in arrays:
            g *= coef
    return total
