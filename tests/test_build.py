"""The installed build: extension modules, build information, the command line."""

import platform
import subprocess
import sys

import pytest

import seqkernels as sk


def test_version_and_build_info():
    info = sk.build_info()
    assert info["version"] == sk.__version__
    assert info["blas"] == "scipy-openblas32"
    assert info["blas_threads"] == 1  # all parallelism is the OpenMP team (see blas.h)
    assert info["openmp_threads"] >= 1
    assert isinstance(info["cuda_extension"], bool)


def test_cuda_queries_never_fail_without_a_gpu():
    assert isinstance(sk.cuda_available(), bool)
    if not sk.cuda_available():
        assert sk.cuda_device_name() is None


def test_cli_info_runs():
    out = subprocess.run([sys.executable, "-m", "seqkernels", "info"], capture_output=True, text=True, check=True)
    assert "seqkernels" in out.stdout and "blas" in out.stdout


# ---- why CUDA is unavailable (build_info()["cuda_unavailable"], `seqkernels info`) -------------
def test_build_info_says_why_cuda_is_unavailable():
    info = sk.build_info()
    if info["cuda_devices"]:
        assert "cuda_unavailable" not in info
    else:
        assert isinstance(info["cuda_unavailable"], str) and len(info["cuda_unavailable"]) > 20


def test_a_cuda_module_that_fails_to_load_is_reported_with_its_error():
    # A finder ahead of the real ones makes `import seqkernels._cuda` fail as a broken library would.
    script = """
import sys
class Broken:
    def find_spec(self, name, path=None, target=None):
        if name == "seqkernels._cuda":
            raise ImportError("libcudart.so.13: cannot open shared object file")
sys.meta_path.insert(0, Broken())
import seqkernels
info = seqkernels.build_info()
assert info["cuda_extension"] is False and info["cuda_devices"] == 0, info
print(info["cuda_unavailable"])
from seqkernels.cli import main
main(["info"])
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    reason, cli = out.split("\n", 1)
    assert "failed to load" in reason and "libcudart.so.13: cannot open shared object file" in reason
    assert "cuda_unavailable" in cli and "libcudart.so.13" in cli


def test_a_build_without_the_cuda_module_says_so():
    # A finder ahead of the real ones hides seqkernels._cuda, as in a build made without nvcc.
    script = """
import sys
class Missing:
    def find_spec(self, name, path=None, target=None):
        if name == "seqkernels._cuda":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Missing())
import seqkernels
info = seqkernels.build_info()
assert info["cuda_extension"] is False, info
print(info["cuda_unavailable"])
"""
    reason = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert "no CUDA extension" in reason and "failed to load" not in reason, reason


class _FakeCuda:
    """Stands in for seqkernels._cuda with the driver_status() a given machine would report."""

    def __init__(self, driver, runtime=13000, devices=0, error=""):
        self.status = {"driver_version": driver, "runtime_version": runtime, "device_count": devices, "error": error}

    def driver_status(self):
        return self.status


def test_cuda_unavailable_reasons():
    from seqkernels._backend import cuda_unavailable_reason as why

    assert "no CUDA extension" in why(None, import_error="")
    assert why(_FakeCuda(13000, devices=1)) == ""
    no_driver = why(_FakeCuda(0, error="cudaErrorInsufficientDriver: CUDA driver version is insufficient"))
    assert "no NVIDIA driver" in no_driver and "CUDA 13.0" in no_driver and "580.65.06" in no_driver
    old = why(_FakeCuda(12040, error="cudaErrorInsufficientDriver: CUDA driver version is insufficient"))
    assert "supports CUDA 12.4" in old and "needs CUDA 13.0" in old and "580.65.06" in old
    assert "seqkernels-cuda12" in old
    older = why(_FakeCuda(11080, runtime=12090, error="cudaErrorInsufficientDriver: insufficient"))
    assert "supports CUDA 11.8" in older and "525.60.13" in older and "seqkernels-cuda12" not in older
    no_gpu = why(_FakeCuda(13000, error="cudaErrorNoDevice: no CUDA-capable device is detected"))
    assert "no usable CUDA device" in no_gpu and "cudaErrorNoDevice" in no_gpu


@pytest.mark.cuda
def test_cuda_device_properties():
    from seqkernels import _cuda

    props = _cuda.device_properties(0)
    assert props["multiprocessors"] > 0 and props["cooperative_launch"]
    with pytest.raises(ValueError, match="device: expected an index"):
        _cuda.device_properties(10_000)


def test_cpu_capability_selection():
    info = sk.build_info()
    caps = sk._C.cpu_capabilities()
    assert caps[0] == "default" and info["cpu_capability"] in caps and info["cpu_capability_best"] in caps
    if platform.machine() in ("x86_64", "AMD64"):
        assert caps == ["default", "avx2", "avx512"]
    before = sk._C.cpu_capability()
    try:
        sk._C.set_cpu_capability("default")
        assert sk._C.cpu_capability() == "default"
        with pytest.raises(ValueError, match="one of 'default', .*got 'sse9'"):
            sk._C.set_cpu_capability("sse9")
    finally:
        sk._C.set_cpu_capability(before)


def test_cpu_capability_environment_variable_caps_the_choice():
    import os

    env = dict(os.environ, SEQKERNELS_CPU_CAPABILITY="default")
    out = subprocess.run(
        [sys.executable, "-c", "import seqkernels as s; print(s.build_info()['cpu_capability'])"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "default"


# ---- CUDA architectures (cmake/cuda_archs.cmake; SEQKERNELS_CUDA_ARCHS) -----------------------
def _release_archs(tmp_path, listed: str) -> str:
    """The release list cmake/cuda_archs.cmake derives from an nvcc that prints ``listed``."""
    import os
    import shutil
    from pathlib import Path

    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake not on PATH")
    nvcc = tmp_path / "nvcc"
    nvcc.write_text("#!/bin/sh\nprintf '" + listed.replace("\n", "\\n") + "'\n")
    nvcc.chmod(0o755)
    module = Path(__file__).resolve().parents[1] / "cmake" / "cuda_archs.cmake"
    if not module.exists():  # a build-time helper: not in the wheel, only in the source tree
        pytest.skip("tests run outside the source tree: cmake/cuda_archs.cmake is not here")
    script = tmp_path / "print.cmake"
    script.write_text(f'include("{module}")\nseqkernels_release_cuda_archs("{nvcc}" archs)\nmessage("${{archs}}")\n')
    out = subprocess.run([cmake, "-P", str(script)], capture_output=True, text=True, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    return out.stderr.strip()  # message() writes to stderr


def test_release_cuda_archs_are_sm75_up_as_sass_plus_ptx_of_the_newest(tmp_path):
    nvcc13 = "sm_75\nsm_80\nsm_86\nsm_87\nsm_88\nsm_89\nsm_90\nsm_100\nsm_110\nsm_103\nsm_120\nsm_121\n"
    assert _release_archs(tmp_path, nvcc13) == (
        "75-real;80-real;86-real;87-real;88-real;89-real;90-real;100-real;103-real;110-real;120-real;121"
    )
    older = "sm_50\nsm_52\nsm_70\nsm_75\nsm_80\nsm_90\nsm_90a\n"  # below sm_75 and arch-specific: dropped
    assert _release_archs(tmp_path, older) == "75-real;80-real;90"


def test_cuda_extension_carries_the_architectures_it_was_built_for():
    import shutil

    from seqkernels._backend import _cuda

    if _cuda is None:
        pytest.skip("built without the CUDA extension")
    cuobjdump = shutil.which("cuobjdump")
    if cuobjdump is None:
        pytest.skip("cuobjdump not on PATH")
    archs = _cuda.cuda_archs.split()
    assert archs, "the build records its CMAKE_CUDA_ARCHITECTURES"
    if archs in (["native"], ["all"], ["all-major"]):
        pytest.skip(f"SEQKERNELS_CUDA_ARCHS={archs[0]}: no fixed list to compare")

    def listed(flag):
        return subprocess.run(
            [cuobjdump, flag, _cuda.__file__],
            capture_output=True,  # noqa: E731
            text=True,
            check=True,
        ).stdout

    sass = sorted({int(n) for n in __import__("re").findall(r"\.sm_(\d+)\.cubin", listed("--list-elf"))})
    ptx = sorted({int(n) for n in __import__("re").findall(r"\.sm_(\d+)\.ptx", listed("--list-ptx"))})
    want_sass = sorted(int(a.split("-")[0]) for a in archs if not a.endswith("-virtual"))
    want_ptx = sorted(int(a.split("-")[0]) for a in archs if not a.endswith("-real"))
    assert (sass, ptx) == (want_sass, want_ptx)
