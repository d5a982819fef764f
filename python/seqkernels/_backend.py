"""Which compiled backend serves an array, and what the build contains.

NumPy arrays go to the C++ kernels in ``seqkernels._C``. The CUDA kernels (``seqkernels._cuda``,
built when nvcc was present) serve CuPy arrays and other objects exposing
``__cuda_array_interface__``.
"""

from __future__ import annotations

import importlib
import os
import sys

# OpenBLAS from the scipy-openblas32 wheel: importing the package loads libscipy_openblas.so into
# the process (RTLD_GLOBAL), so _C's dependency on it resolves wherever pip put the wheel.
import scipy_openblas32  # noqa: F401  (imported for its side effect)

from . import _C

try:
    # import_module, not `from . import _cuda`: that form reports a missing submodule as a plain
    # ImportError ("cannot import name"), which would read as a CUDA module that failed to load.
    _cuda = importlib.import_module(f"{__package__}._cuda")
except ImportError as exc:  # built without a CUDA compiler, or the module does not load here
    _cuda = None
    # Kept for build_info(): a missing module is a CPU-only build, anything else is a load failure.
    _cuda_import_error = (
        ""
        if isinstance(exc, ModuleNotFoundError) and exc.name == f"{__package__}._cuda"
        else f"{type(exc).__name__}: {exc}"
    )
else:
    _cuda_import_error = ""

# Threads of the CPU kernels (seqkernels/thread_team.h). torch's CPU ops run on libgomp's pool,
# whose workers keep spinning for a while after each op; our own threads would then compete with
# them for the cores (a layer right after a torch op ran up to 1.6x slower). Once torch is in the
# process our team runs on that same pool instead, and the spinning workers take our work.
# SEQKERNELS_TEAM: "auto" (default: share once torch is imported), "own" (never), "openmp" (share
# whenever a libgomp is loaded, torch or not).
TEAM_MODES = ("auto", "own", "openmp")
_team_mode = os.environ.get("SEQKERNELS_TEAM", "auto").strip().lower() or "auto"
if _team_mode not in TEAM_MODES:
    raise ValueError(f"SEQKERNELS_TEAM: expected one of {', '.join(TEAM_MODES)}, got {_team_mode!r}")
_team_sharing = False


def follow_torch_threads() -> None:
    """Turn team sharing on once it applies (cheap: one dict lookup until then, nothing after).
    Called before the recurrent kernels run, so a torch imported after seqkernels is seen too."""
    global _team_sharing
    if _team_sharing or _team_mode == "own":
        return
    if _team_mode == "openmp" or "torch" in sys.modules:
        _C.set_team_sharing(True)
        _team_sharing = True


follow_torch_threads()

# The oldest Linux driver of each CUDA major version (NVIDIA's CUDA release notes; minor version
# compatibility lets a driver of that major version run the runtime of any of its minor releases).
_MIN_DRIVER = {12: "525.60.13", 13: "580.65.06"}


def cuda_available() -> bool:
    """True when the CUDA extension was built and at least one CUDA device is visible."""
    return _cuda is not None and _cuda.device_count() > 0


def cuda_device_name(device: int = 0) -> str | None:
    """Name of CUDA device ``device``, or None when no CUDA device is available."""
    if not cuda_available():
        return None
    return _cuda.device_properties(device)["name"]


def _cuda_version(v: int) -> str:
    """CUDA's 1000*major + 10*minor as "major.minor"."""
    return f"{v // 1000}.{v % 1000 // 10}"


def cuda_unavailable_reason(cuda_module=None, import_error: str | None = None) -> str:
    """Why the CUDA kernels cannot run here, in words ("" when a device is usable). Reads the state
    of this process unless a stand-in module / import error is given (the tests simulate failures)."""
    cuda_module = _cuda if cuda_module is None and import_error is None else cuda_module
    import_error = _cuda_import_error if import_error is None else import_error
    if cuda_module is None:
        if import_error:
            return f"seqkernels._cuda is present but failed to load ({import_error})"
        return (
            "this build has no CUDA extension (built without nvcc, or with SEQKERNELS_CUDA=OFF); "
            "install a seqkernels wheel, or build from source with the CUDA toolkit"
        )
    st = cuda_module.driver_status()
    if st["device_count"] > 0:
        return ""
    runtime = st["runtime_version"]
    need = f"CUDA {_cuda_version(runtime)}"
    min_driver = _MIN_DRIVER.get(runtime // 1000)
    need_driver = f" (Linux driver >= {min_driver})" if min_driver else ""
    if st["driver_version"] == 0:
        return f"no NVIDIA driver found (libcuda.so.1 did not load); this build needs one for {need}{need_driver}"
    if st["driver_version"] < runtime and "InsufficientDriver" in st["error"]:
        hint = " or install seqkernels-cuda12" if st["driver_version"] // 1000 == 12 < runtime // 1000 else ""
        return (
            f"the NVIDIA driver supports CUDA {_cuda_version(st['driver_version'])}, this build needs "
            f"{need}{need_driver}: update the driver{hint} ({st['error']})"
        )
    return f"no usable CUDA device ({st['error'] or 'the driver reports 0 devices'})"


def build_info() -> dict:
    """Version, BLAS (library, configuration, CPU kernel family, threads), OpenMP threads, whether the
    CUDA extension was built and sees a device, and if it cannot run, why (``cuda_unavailable``)."""
    info = dict(_C.build_info())
    info["cuda_extension"] = _cuda is not None
    if _cuda is not None:
        info["cuda_archs"] = _cuda.cuda_archs  # CMAKE_CUDA_ARCHITECTURES of the build
        st = _cuda.driver_status()
        info["cuda_runtime"] = _cuda_version(st["runtime_version"])
        info["cuda_driver"] = _cuda_version(st["driver_version"]) if st["driver_version"] else "none"
    info["cuda_devices"] = _cuda.device_count() if _cuda is not None else 0
    if info["cuda_devices"]:
        info["cuda_device"] = _cuda.device_properties(0)["name"]
    else:
        info["cuda_unavailable"] = cuda_unavailable_reason()
    return info


def require_numpy(x, name: str):
    """Reject arrays of other libraries with a clear message (CPU layers take NumPy arrays)."""
    import numpy as np

    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple)):
        return np.asarray(x)
    if hasattr(x, "__cuda_array_interface__"):
        raise TypeError(
            f"{name}: got a GPU array ({type(x).__name__}) for a CPU layer; pass a NumPy "
            "array, or move the layer to the GPU with layer.to('cuda')"
        )
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        raise TypeError(f"{name}: got a torch.Tensor; pass tensor.detach().cpu().numpy() or use a NumPy array")
    raise TypeError(f"{name}: expected a NumPy array, got {type(x).__name__}")
