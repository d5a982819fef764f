"""Keep NumPy's own BLAS on one thread while the recurrent kernels run.

The fused kernels run an OpenMP team with one barrier per time step. NumPy's OpenBLAS (a separate
copy from the single-threaded one ``seqkernels._C`` uses) keeps its worker threads spinning for a
while after every GEMM; those spinners take the cores the OpenMP team is waiting on, and each step's
barrier then stalls for a scheduler slice. Measured on the 2-core development machine: a small
Seq2Seq training step took 23 ms with NumPy's BLAS on 2 threads and 3.5 ms with it on 1 thread.
The GEMMs of the training layers are small, so one thread costs them little.

:func:`single_threaded_blas` limits every BLAS library loaded in the process to one thread for the
duration of a ``with`` block and restores the previous counts afterwards (threadpoolctl does the
finding and the limiting, for OpenBLAS, MKL and BLIS alike). Not thread-safe: do not train from
several Python threads at once.
"""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def single_threaded_blas():
    """``with single_threaded_blas(): ...`` runs the block with every BLAS on one thread."""
    import numpy  # noqa: F401  (NumPy's BLAS must be loaded to be found)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
