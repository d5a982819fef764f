"""The benchmark scripts' machinery on tiny shapes: every variant validates and a row comes out
(the timings themselves are not tested)."""

import subprocess
import sys

import pytest

from seqkernels.benchmarks import rnn, search


def test_search_bench_row_on_a_tiny_shape():
    row = search.bench_shape(3, 2, 50, search.FACTORIES, threads=1, repeats=2)
    assert row["ours_ms"] > 0 and row["ref_ms"] > 0 and row["x_ref"] > 0


def test_search_controls_rows_on_a_tiny_shape():
    rows = search.bench_controls(3, 2, 300, 9, threads=1, repeats=2)
    assert [r["control"] for r in rows][0] == "off" and len(rows) == 7
    assert all(r["ms"] > 0 and r["off_ms"] > 0 for r in rows)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rnn_bench_row_on_a_tiny_shape(cell):
    row = rnn.bench_shape(cell, 2, 8, 3, "fwd+bwd", rnn.variants("cpu"), threads=1, repeats=2)
    assert row["ours_ms"] > 0 and row["gflops"] > 0


@pytest.mark.parametrize("suite", ["rnn", "search"])
def test_cli_bench_help(suite):
    out = subprocess.run([sys.executable, "-m", "seqkernels", "bench", suite, "--help"], capture_output=True,
                         text=True, check=True)
    assert "--quick" in out.stdout
