import sys

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Run torch on one thread: the test matrices are small, and spinning worker threads slow
    down many-fold when other processes share the cores."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
