"""The installed build: extension modules, build information, the command line."""

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


@pytest.mark.cuda
def test_cuda_device_properties():
    from seqkernels import _cuda

    props = _cuda.device_properties(0)
    assert props["multiprocessors"] > 0 and props["cooperative_launch"]
    with pytest.raises(ValueError, match="device: expected an index"):
        _cuda.device_properties(10_000)


def test_cpu_capability_selection():
    info = sk.build_info()
    assert info["cpu_capability"] in ("default", "avx2", "avx512")
    before = sk._C.cpu_capability()
    try:
        sk._C.set_cpu_capability("default")
        assert sk._C.cpu_capability() == "default"
        with pytest.raises(ValueError, match="'default', 'avx2' or 'avx512'"):
            sk._C.set_cpu_capability("sse9")
    finally:
        sk._C.set_cpu_capability(before)


def test_cpu_capability_environment_variable_caps_the_choice():
    import os

    env = dict(os.environ, SEQKERNELS_CPU_CAPABILITY="default")
    out = subprocess.run([sys.executable, "-c", "import seqkernels as s; print(s.build_info()['cpu_capability'])"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "default"
