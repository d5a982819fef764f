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
