"""Which compiled backend serves an array, and what the build contains.

NumPy arrays go to the C++ kernels in ``seqkernels._C``. The CUDA kernels (``seqkernels._cuda``,
built when nvcc was present) serve CuPy arrays and other objects exposing
``__cuda_array_interface__``.
"""

from __future__ import annotations

# OpenBLAS from the scipy-openblas32 wheel: importing the package loads libscipy_openblas.so into
# the process (RTLD_GLOBAL), so _C's dependency on it resolves wherever pip put the wheel.
import scipy_openblas32  # noqa: F401  (imported for its side effect)

from . import _C

try:
    from . import _cuda
except ImportError:  # built without a CUDA compiler
    _cuda = None


def cuda_available() -> bool:
    """True when the CUDA extension was built and at least one CUDA device is visible."""
    return _cuda is not None and _cuda.device_count() > 0


def cuda_device_name(device: int = 0) -> str | None:
    """Name of CUDA device ``device``, or None when no CUDA device is available."""
    if not cuda_available():
        return None
    return _cuda.device_properties(device)["name"]


def build_info() -> dict:
    """Version, BLAS (library, configuration, CPU kernel family, threads), OpenMP threads, and
    whether the CUDA extension was built and sees a device."""
    info = dict(_C.build_info())
    info["cuda_extension"] = _cuda is not None
    if _cuda is not None:
        info["cuda_archs"] = _cuda.cuda_archs  # CMAKE_CUDA_ARCHITECTURES of the build
    info["cuda_devices"] = _cuda.device_count() if _cuda is not None else 0
    if info["cuda_devices"]:
        info["cuda_device"] = _cuda.device_properties(0)["name"]
    return info


def require_numpy(x, name: str):
    """Reject arrays of other libraries with a clear message (CPU layers take NumPy arrays)."""
    import numpy as np

    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple)):
        return np.asarray(x)
    if hasattr(x, "__cuda_array_interface__"):
        raise TypeError(f"{name}: got a GPU array ({type(x).__name__}) for a CPU layer; pass a NumPy "
                        "array, or move the layer to the GPU with layer.to('cuda')")
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        raise TypeError(f"{name}: got a torch.Tensor; pass tensor.detach().cpu().numpy() or use "
                        "a NumPy array")
    raise TypeError(f"{name}: expected a NumPy array, got {type(x).__name__}")
