import numpy as np
import pytest


def _cuda_ready() -> bool:
    try:
        import cupy  # noqa: F401

        import seqkernels

        return seqkernels.cuda_available()
    except Exception:
        return False


def pytest_configure(config):
    # Registered here rather than in pyproject.toml: conftest.py is read by every run of these tests,
    # including one started outside the source tree, and --strict-markers rejects unknown marks.
    config.addinivalue_line("markers", "cuda: needs an NVIDIA GPU, CuPy and seqkernels._cuda; skipped otherwise")


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


def _cpu_capabilities():
    """The CPU kernel copies this machine can run (cpu_capability.h), narrowest first."""
    import seqkernels

    order = seqkernels._C.cpu_capabilities()
    return order[: order.index(seqkernels.build_info()["cpu_capability_best"]) + 1]


@pytest.fixture(params=_cpu_capabilities())
def cpu_capability(request):
    """Runs the test once per CPU kernel copy this CPU can run."""
    from seqkernels import _C

    before = _C.cpu_capability()
    _C.set_cpu_capability(request.param)
    yield request.param
    _C.set_cpu_capability(before)
