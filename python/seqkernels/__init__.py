"""seqkernels: fast fused CPU/CUDA kernels for recurrent networks, exact against a float64 NumPy
reference (:mod:`seqkernels.reference`).

The CPU extension ``seqkernels._C`` is always present; ``seqkernels._cuda`` exists when the package
was built with a CUDA compiler.
"""

from __future__ import annotations

from importlib import metadata as _metadata

# Order matters here (so the import sorter leaves this block alone): _backend loads OpenBLAS and
# the extension before any module that uses them, and glove/models build on nn and search.
from ._backend import build_info, cuda_available, cuda_device_name  # isort: skip
from . import metrics, nn, ops, reference, search  # isort: skip
from . import glove, models  # isort: skip

try:
    __version__ = _metadata.version("seqkernels")
except _metadata.PackageNotFoundError:  # running from a source tree with a built extension
    from ._backend import _C

    __version__ = _C.__version__

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
