"""``patch()`` / ``unpatch()`` / ``patched()``: make ``torch.nn.LSTM/GRU/RNN`` and
``torch.nn.LSTMCell/GRUCell/RNNCell`` the seqkernels drop-ins for code that builds them deep
inside other libraries, and put torch's classes back.

What it does: rebinds those six names in ``torch.nn``, ``torch.nn.modules`` and
``torch.nn.modules.rnn``. Limits (also in the README): a name imported *before* ``patch()``
(``from torch.nn import LSTM`` at the top of a library) keeps torch's class; modules built before
``patch()`` stay torch.nn modules; while patched, ``isinstance(m, torch.nn.LSTM)`` tests for the
drop-in (and torch.nn's own instances fail it); the drop-ins are not subclasses of
``torch.nn.RNNBase``; what they do not support raises as it would when built directly.
"""

from __future__ import annotations

import contextlib
import threading

import torch

from . import cells, recurrent

_NAMES = ("LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell")
_OURS = {**{n: getattr(recurrent, n) for n in _NAMES[:3]}, **{n: getattr(cells, n) for n in _NAMES[3:]}}
_lock = threading.Lock()
_originals: dict | None = None  # (module, name) -> torch's class, while patched


def _namespaces():
    return (torch.nn, torch.nn.modules, torch.nn.modules.rnn)


def is_patched() -> bool:
    return _originals is not None


def patch() -> None:
    """Make torch.nn's recurrent layers and cells the seqkernels drop-ins (idempotent)."""
    global _originals
    with _lock:
        if _originals is not None:
            return
        _originals = {(ns, n): getattr(ns, n) for ns in _namespaces() for n in _NAMES}
        for ns in _namespaces():
            for n in _NAMES:
                setattr(ns, n, _OURS[n])


def unpatch() -> None:
    """Put torch.nn's own classes back (a no-op when not patched)."""
    global _originals
    with _lock:
        if _originals is None:
            return
        for (ns, n), cls in _originals.items():
            setattr(ns, n, cls)
        _originals = None


@contextlib.contextmanager
def patched():
    """``with patched(): ...`` — the drop-ins inside the block, torch's classes after it (also on an
    exception). Inside an outer ``patch()`` it leaves the patch in place."""
    outer = is_patched()
    patch()
    try:
        yield
    finally:
        if not outer:
            unpatch()
