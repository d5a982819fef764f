"""Small array helpers shared by the training layers: which array library an array belongs to, and
argument checks whose messages name the argument.

The layers call ``xp = array_module(x)`` and then only ``xp.*`` functions, so CuPy arrays take the
same code path. The training layers are tested on NumPy only; the recurrent layers have their own
CUDA path (``nn/_cuda_recurrent.py``, tested only where a GPU is present).
"""

from __future__ import annotations

import numbers

import numpy as np

_FLOAT_DTYPES = (np.float32, np.float64)


def is_cupy(x) -> bool:
    return type(x).__module__.split(".")[0] == "cupy"


def array_module(*arrays):
    """``cupy`` if any argument is a CuPy array (imported only then), ``numpy`` otherwise."""
    for a in arrays:
        if is_cupy(a):
            import cupy

            return cupy
    return np


def to_numpy(v) -> np.ndarray:
    """A NumPy array from a torch tensor, a CuPy array (copied to the host) or any array-like."""
    if type(v).__module__.split(".")[0] == "torch":
        return v.detach().cpu().numpy()
    if is_cupy(v):  # pragma: no cover - CuPy only
        return v.get()
    return np.asarray(v)


def scatter_add(xp, target, index, values):
    """``target[index[i]] += values[i]`` with repeated indices accumulated."""
    if xp is np:
        np.add.at(target, index, values)
    else:  # pragma: no cover - CuPy only
        import cupyx

        cupyx.scatter_add(target, index, values)


def check_float_dtype(dtype, name="dtype"):
    dtype = np.dtype(dtype)
    if dtype.type not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {dtype}")
    return dtype


def check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_probability(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_nonneg_real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0 or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def as_array(x, name):
    """NumPy/CuPy arrays pass through; lists become NumPy arrays; torch tensors and other objects
    are rejected with a message naming ``name``."""
    if isinstance(x, np.ndarray) or is_cupy(x):
        return x
    if isinstance(x, (list, tuple)) or isinstance(x, (numbers.Number, np.generic)):
        return np.asarray(x)
    if type(x).__module__.split(".")[0] == "torch":
        raise TypeError(f"{name}: got a torch.Tensor; pass tensor.detach().cpu().numpy()")
    raise TypeError(f"{name}: expected a NumPy array, got {type(x).__name__}")


def float_input(x, name, dtype):
    """A floating-point array cast to ``dtype`` (integers are rejected: they are token ids, not
    activations, and passing them here is almost always a bug)."""
    x = as_array(x, name)
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating-point array, got dtype {x.dtype}")
    return x.astype(dtype, copy=False)


def int_input(x, name):
    x = as_array(x, name)
    if x.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer array of token ids, got dtype {x.dtype}")
    return x
