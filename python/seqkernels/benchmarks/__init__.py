"""Benchmarks shipped with the package (``seqkernels bench ...``; the ``bench/`` scripts wrap them)."""
