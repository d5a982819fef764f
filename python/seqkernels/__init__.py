"""seqkernels: fast fused CPU/CUDA kernels for recurrent networks, exact against a float64 NumPy
reference (:mod:`seqkernels.reference`).

The CPU extension ``seqkernels._C`` is always present; ``seqkernels._cuda`` exists when the package
was built with a CUDA compiler.
"""

from __future__ import annotations

import importlib as _importlib

# _backend loads OpenBLAS and the extension before any module that uses them.
from ._backend import build_info, cuda_available, cuda_device_name

# The subpackages load on first use (``seqkernels.nn``, ``from seqkernels import glove``): the
# command line starts in a fraction of the time when it needs one of them only.
_SUBPACKAGES = ("glove", "metrics", "models", "nn", "ops", "reference", "search")


def __getattr__(name):
    if name in _SUBPACKAGES:
        module = _importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    if name == "__version__":
        from importlib import metadata

        try:
            version = metadata.version("seqkernels")
        except metadata.PackageNotFoundError:  # running from a source tree with a built extension
            from ._backend import _C

            version = _C.__version__
        globals()["__version__"] = version
        return version
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBPACKAGES) | {"__version__"})


__all__ = [
    "glove",
    "metrics",
    "models",
    "nn",
    "ops",
    "reference",
    "search",
    "build_info",
    "cuda_available",
    "cuda_device_name",
    "__version__",
]
