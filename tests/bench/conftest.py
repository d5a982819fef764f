import pytest


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """The benches set torch's (and so OpenMP's) thread count; later tests get it back."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
