"""Keep NumPy's own BLAS on one thread while the recurrent kernels run.

The fused kernels run an OpenMP team with one barrier per time step. NumPy's OpenBLAS (a separate
copy from the single-threaded one ``seqkernels._C`` uses) keeps its worker threads spinning for a
while after every GEMM; those spinners take the cores the OpenMP team is waiting on, and each step's
barrier then stalls for a scheduler slice. Measured on the 2-core development machine: a small
Seq2Seq training step took 23 ms with NumPy's BLAS on 2 threads and 3.5 ms with it on 1 thread.
The GEMMs of the training layers are small, so one thread costs them little.

:func:`single_threaded_blas` finds every OpenBLAS loaded into the process (Linux: from
``/proc/self/maps``), sets it to one thread for the duration of a ``with`` block and restores the
previous count afterwards (nested blocks restore at the outermost). Elsewhere it does nothing.
Not thread-safe: do not train from several Python threads at once.
"""

from __future__ import annotations

import ctypes
import os
from contextlib import contextmanager

_SUFFIXES = ("64_", "_64_", "")
_PREFIXES = ("scipy_openblas", "openblas")
_controls = None
_depth = 0
_saved: list = []


def _find_controls():
    """``[(get_num_threads, set_num_threads), ...]`` for every OpenBLAS mapped into the process."""
    paths = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rsplit(None, 1)[-1] if "/" in line else ""
                if "openblas" in os.path.basename(path).lower() and path not in paths:
                    paths.append(path)
    except OSError:
        return []
    out = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            pair = None
            for suffix in _SUFFIXES:
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype = ctypes.c_int
                    put.argtypes = [ctypes.c_int]
                    pair = (get, put)
                    break
            if pair is not None:
                out.append(pair)
                break
    return out


@contextmanager
def single_threaded_blas():
    global _controls, _depth, _saved
    if _controls is None:
        import numpy  # noqa: F401  (make sure NumPy's BLAS is loaded before looking for it)

        _controls = _find_controls()
    if _depth == 0:
        _saved = [get() for get, _ in _controls]
        for _, put in _controls:
            put(1)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            for (_, put), n in zip(_controls, _saved):
                put(n)
