"""The benches' competing load (harness.Contention): busy processes that spin only when asked, end
by themselves, and never outlive the bench — normal exit, exception, Ctrl-C or a killed parent."""

import subprocess
import sys
import time

import pytest

from seqkernels.benchmarks import harness as hz

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads process states from /proc")


def state(pid):
    """The process's state letter (R running, S sleeping, T stopped, Z zombie), None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def gone(pids):
    return all(state(p) in (None, "Z") for p in pids)


def test_contenders_spin_only_inside_busy_and_are_killed_at_exit():
    with hz.Contention(2, settle=0.05) as load:
        pids = load.pids
        assert len(pids) == 2 and all(state(p) == "T" for p in pids)  # stopped until asked
        with load.busy():
            assert all(state(p) in ("R", "S") for p in pids)
        assert wait_for(lambda: all(state(p) == "T" for p in pids))
    assert all(state(p) is None for p in pids)  # killed and reaped


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_an_exception_inside_the_timed_block_still_kills_them(exc):
    with pytest.raises(exc):
        with hz.Contention(1, settle=0.0) as load:
            pids = load.pids
            with load.busy():
                raise exc()
    assert all(state(p) is None for p in pids)


def test_a_contender_past_its_time_limit_ends_and_is_restarted():
    with hz.Contention(1, limit=0.3, settle=0.0) as load:
        first = load.pids[0]
        with load.busy():
            assert wait_for(lambda: state(first) in (None, "Z"), timeout=10)
        with load.busy():
            assert load.pids[0] != first and state(load.pids[0]) in ("R", "S")
    assert gone(load.pids + [first])


@pytest.mark.parametrize("spinning", [False, True])
def test_contenders_die_with_a_killed_parent(spinning):
    # a parent that starts a contender and vanishes without any cleanup (os._exit skips `finally`)
    code = (
        "import os, sys, time\nfrom seqkernels.benchmarks import harness as hz\n"
        "load = hz.Contention(1, settle=0.0).__enter__()\n"
        + ("load.busy().__enter__()\n" if spinning else "")
        + "print(load.pids[0], flush=True)\nos._exit(0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    pid = int(out.stdout.split()[0])
    assert wait_for(lambda: gone([pid]), timeout=10), f"contender {pid} outlived its parent (state {state(pid)})"


def test_no_processes_means_no_contended_timing():
    calls = []
    with hz.Contention(0) as load:
        m = hz.measure(lambda: calls.append(1) or {"a": {"median_ms": 1.0}}, load)
    assert calls == [1] and m["contended"] is None and m["quiet"] == {"a": {"median_ms": 1.0}}


def test_measure_times_quiet_then_contended():
    seen = []

    def timing():
        seen.append([state(p) for p in load.pids])
        return {"a": {"median_ms": 1.0}}

    with hz.Contention(1, settle=0.0) as load:
        m = hz.measure(timing, load)
    assert seen[0] == ["T"] and seen[1][0] in ("R", "S")
    assert m["quiet"] and m["contended"] and "contended_others_pct" in m


@pytest.mark.parametrize("kwargs", [{"processes": -1}, {"processes": 1.0}, {"processes": 1, "limit": 0}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        hz.Contention(**kwargs)
