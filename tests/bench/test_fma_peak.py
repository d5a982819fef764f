"""The benchmarks' measured FMA peak (seqkernels._C.fma_peak and harness.measure_fma_peak): every
CPU capability's loop runs and returns a sane rate; bad arguments are refused. No timed assertions."""

import math
import platform

import pytest

from seqkernels import _C
from seqkernels.benchmarks import harness as hz

LANES = {"default": 4, "avx2": 8, "avx512": 16}


def test_every_capability_loop_gives_a_positive_finite_rate(cpu_capability):
    r = _C.fma_peak(1, 0.02)
    assert math.isfinite(r["gflops"]) and r["gflops"] > 0
    assert r["flops"] > 0 and 0 < r["seconds"] < 10
    assert r["cpu_capability"] == cpu_capability and r["lanes"] == LANES[cpu_capability]
    if platform.machine().lower() in ("x86_64", "amd64"):  # plain x86-64 has no FMA instruction
        assert r["fused"] == (cpu_capability != "default")
    # the rate is the FLOPs over the wall time, as documented
    assert r["gflops"] == pytest.approx(r["flops"] / r["seconds"] * 1e-9)


def test_several_threads_run_together():
    r = _C.fma_peak(3, 0.02)
    assert r["threads"] == 3 and math.isfinite(r["gflops"]) and r["gflops"] > 0


@pytest.mark.parametrize(
    "threads, seconds",
    [(0, 0.1), (-1, 0.1), (5000, 0.1), (1, 0.0), (1, -1.0), (1, 61.0), (1, float("nan")), (1, float("inf"))],
)
def test_bad_arguments_raise_value_error(threads, seconds):
    with pytest.raises(ValueError, match="threads|seconds"):
        _C.fma_peak(threads, seconds)


def test_harness_keeps_the_best_of_its_trials():
    peak = hz.measure_fma_peak(1, trials=2, seconds=0.02)
    assert len(peak["trials_gflops"]) == 2
    assert peak["gflops"] == pytest.approx(max(peak["trials_gflops"]), abs=0.01)
    assert peak["threads"] == 1 and peak["cpu_capability"] == _C.cpu_capability()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threads": 0},
        {"threads": 1.5},
        {"threads": True},
        {"threads": 1, "trials": 0},
        {"threads": 1, "seconds": 0},
        {"threads": 1, "seconds": "1"},
    ],
)
def test_harness_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        hz.measure_fma_peak(**kwargs)


def test_pct_of_peak():
    assert hz.pct_of_peak(50.0, 200.0) == 25.0
    assert hz.pct_of_peak(None, 200.0) is None and hz.pct_of_peak(50.0, None) is None
