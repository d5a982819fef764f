import numpy as np
import pytest


def _cuda_ready() -> bool:
    try:
        import cupy  # noqa: F401

        import seqkernels

        return seqkernels.cuda_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _cuda_ready():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU, CuPy and the seqkernels._cuda extension")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
