"""Shared benchmark harness: validation, timing, machine description, table and JSON output.

Every bench script (recurrent layers, torch layers, beam search, GloVe) follows the same pattern:
validate each variant against a baseline, time it (warm-up, then repeats; median and IQR), write a
JSON file of machine info plus one record per row, and print a fixed-width table last.

The recurrent benches also carry the instruments of a fair comparison: the machine's measured FMA
peak (each row's GFLOP/s as a percentage of it), the rows in both OpenBLAS environments (this
process's and the other, from a child process), and the same rows under a competing load.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = [
    "ValidationError",
    "validate",
    "to_host",
    "cuda_sync",
    "bench_parser",
    "parse_bench_args",
    "finish",
    "cpu_count",
    "perf_counter_timer",
    "torch_cuda_event_timer",
    "time_fn",
    "time_blocks",
    "time_interleaved",
    "cpu_snapshot",
    "others_load",
    "machine_info",
    "results_path",
    "write_json",
    "format_table",
    "log",
    "measure_fma_peak",
    "pct_of_peak",
    "OPENBLAS_VARS",
    "MACHINE_OPENBLAS_ENV",
    "openblas_env",
    "openblas_env_name",
    "openblas_env_variant",
    "openblas_env_line",
    "add_run_options",
    "start_run",
    "run_env_variants",
    "run_bench_child",
    "env_notes",
    "run_record",
    "peak_headline",
    "torch_imported_first",
    "import_order_notes",
    "Contention",
    "measure",
    "contended_fields",
    "contention_note",
    "fmt_x",
    "PEAK_COLUMNS",
    "LOADED_COLUMNS",
    "shape_arg",
]


# ---- validation --------------------------------------------------------------------------------
class ValidationError(AssertionError):
    """A variant's result differs from the baseline by more than the tolerance."""


def validate(ours, baseline, tol: float, what: str = "result") -> float:
    """Max |ours - baseline| relative to max |baseline|; raise ValidationError above ``tol``.

    The message names the worst element, both values and the limit. Returns the relative error.
    """
    ours, baseline = np.asarray(ours), np.asarray(baseline)
    if ours.shape != baseline.shape:
        raise ValidationError(f"{what}: shape {ours.shape} != baseline shape {baseline.shape}")
    diff = np.abs(ours.astype(np.float64) - baseline.astype(np.float64))
    if not np.isfinite(diff).all():
        raise ValidationError(f"{what}: non-finite values")
    scale = max(float(np.abs(baseline).max(initial=0.0)), np.finfo(np.float64).tiny)
    worst = tuple(int(i) for i in np.unravel_index(int(diff.argmax()), diff.shape)) if diff.size else ()
    rel = float(diff.max(initial=0.0)) / scale
    if rel > tol:
        raise ValidationError(
            f"{what}: max relative error {rel:.3e} > limit {tol:.1e} at {worst}: "
            f"got {float(ours[worst]):.7g}, baseline {float(baseline[worst]):.7g}, scale {scale:.3e}"
        )
    return rel


def to_host(a) -> np.ndarray:
    """NumPy copy of a NumPy array, CuPy array or torch tensor (for validation on the host)."""
    if hasattr(a, "detach"):  # torch
        return a.detach().cpu().numpy()
    if hasattr(a, "get") and not isinstance(a, np.ndarray):  # CuPy
        return a.get()
    return np.asarray(a)


# ---- timing ------------------------------------------------------------------------------------
def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def perf_counter_timer(fn, sync=None) -> float:
    """Milliseconds of one ``fn()`` call by the host clock. ``sync`` (e.g. ``torch.cuda.synchronize``
    or a CuPy stream's ``synchronize``) is called before the clock stops, so that asynchronous device
    work is counted."""
    t0 = time.perf_counter()
    fn()
    if sync is not None:
        sync()
    return (time.perf_counter() - t0) * 1e3


def cuda_sync() -> None:
    """Wait for CuPy's current stream and, when torch is installed, for torch's device work."""
    import cupy

    cupy.cuda.get_current_stream().synchronize()
    try:
        import torch
    except ImportError:
        return
    torch.cuda.synchronize()


def torch_cuda_event_timer(fn, sync=None) -> float:
    """Milliseconds of one ``fn()`` call measured by CUDA events on torch's current stream: the hook
    for device timing (pass ``timer=torch_cuda_event_timer``). Kernels launched by CuPy on its
    default (legacy) stream are ordered with torch's default stream, so events bracket them too.
    Used by ``bench/rnn.py --device cuda``, which has never run on a GPU."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    if sync is not None:
        sync()
    end.synchronize()
    return float(start.elapsed_time(end))


def _stats(samples_ms) -> dict:
    s = np.asarray(samples_ms, dtype=np.float64)
    q1, med, q3 = np.percentile(s, [25, 50, 75])
    return {
        "median_ms": float(med),
        "iqr_ms": float(q3 - q1),
        "q1_ms": float(q1),
        "q3_ms": float(q3),
        "min_ms": float(s.min()),
        "n": int(s.size),
        "samples_ms": [round(float(v), 4) for v in s],
    }


def _run(fn, *, repeats, warmup, min_time, sync, timer):
    for _ in range(warmup):
        fn()
    if sync is not None:
        sync()
    samples = []
    # at least `repeats` runs; fast workloads keep going until `min_time` seconds (at most 10x repeats)
    while len(samples) < repeats or (sum(samples) < min_time * 1e3 and len(samples) < 10 * repeats):
        samples.append(timer(fn, sync))
    return samples


def time_fn(
    fn, *, repeats: int = 10, warmup: int = 2, min_time: float = 0.0, sync=None, timer=perf_counter_timer
) -> dict:
    """Run ``fn`` ``warmup`` times untimed, then at least ``repeats`` timed runs (more while their
    total is under ``min_time`` seconds). Returns median, IQR, min (ms), n and the samples."""
    return _stats(_run(fn, repeats=repeats, warmup=warmup, min_time=min_time, sync=sync, timer=timer))


def time_blocks(
    fns: dict,
    *,
    repeats: int = 10,
    warmup: int = 1,
    rounds: int = 2,
    min_time: float = 0.0,
    pause: float = 0.05,
    sync=None,
    timer=perf_counter_timer,
) -> dict:
    """Time several implementations of one workload on a shared machine; ``{name: stats}``.

    Each library keeps its own thread pool (OpenMP, OpenBLAS) whose workers spin for a while after a
    call; if another library runs meanwhile, the two sets of threads fight over the cores. So each
    implementation's runs form one block (warm-up included), and we sleep ``pause`` seconds between
    blocks so the previous library's workers go idle. The repeats are split over ``rounds`` rounds
    whose order alternates (A B C, then C B A, ...) so slow drift of the machine hits all alike; the
    statistics pool every timed run of an implementation.
    """
    names = list(fns)
    samples = {n: [] for n in names}
    per_block = max(1, -(-repeats // rounds))
    for r in range(rounds):
        for n in names if r % 2 == 0 else names[::-1]:
            time.sleep(pause)
            samples[n] += _run(
                fns[n], repeats=per_block, warmup=warmup, min_time=min_time / rounds, sync=sync, timer=timer
            )
    return {n: _stats(samples[n]) for n in names}


def time_interleaved(
    fns: dict,
    *,
    repeats: int = 10,
    warmup: int = 2,
    min_time: float = 0.0,
    max_time: float = 60.0,
    target_iqr_pct: float | None = None,
    sync=None,
    timer=perf_counter_timer,
) -> dict:
    """Time several implementations of one workload call by call: A B, then B A, ... so that both see
    the same moment of a shared machine and the same warm caches; ``{name: stats}``.

    After ``warmup`` untimed rounds, rounds continue until every variant has ``repeats`` samples and
    ``min_time`` seconds have passed, and then, when ``target_iqr_pct`` is given, until every
    variant's interquartile range is at most that percentage of its median, or ``max_time`` seconds.
    """
    names = list(fns)
    for r in range(warmup):
        for n in names if r % 2 == 0 else names[::-1]:
            fns[n]()
    if sync is not None:
        sync()
    samples = {n: [] for n in names}
    t0 = time.perf_counter()

    def spread_ok():
        if target_iqr_pct is None:
            return True
        return all(_stats(v)["iqr_ms"] <= target_iqr_pct / 100 * _stats(v)["median_ms"] for v in samples.values())

    r = 0
    while True:
        for n in names if r % 2 == 0 else names[::-1]:
            samples[n].append(timer(fns[n], sync))
        r += 1
        elapsed = time.perf_counter() - t0
        if r >= repeats and elapsed >= min_time and (elapsed >= max_time or spread_ok()):
            break
    return {n: _stats(samples[n]) for n in names}


# ---- machine description -----------------------------------------------------------------------
def cpu_snapshot():
    """(machine busy seconds, machine total seconds, this process's CPU seconds), or None off Linux.
    Two snapshots give :func:`others_load`."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    tick, t = os.sysconf("SC_CLK_TCK"), os.times()
    return (sum(v) - v[3] - v[4]) / tick, sum(v) / tick, t.user + t.system


def others_load(before, after):
    """Percent of the machine's CPU time that other processes used between two snapshots: a
    disturbed measurement on a shared machine shows here (None when unknown)."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    others = (after[0] - before[0]) - (after[2] - before[2])
    return 100.0 * max(0.0, others) / (after[1] - before[1])


def _cpu_model() -> dict:
    info = {"model": platform.processor() or platform.machine()}
    try:
        with open("/proc/cpuinfo") as f:
            fields = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines() if ":" in line)
    except OSError:
        return info
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    info["model"] = fields.get("model name", info["model"])
    for key, name in (("cpu family", "family"), ("model", "model_number"), ("cpu MHz", "mhz")):
        if key in fields:
            info[name] = fields[key]
    flags = fields.get("flags", "").split()
    info["simd"] = [f for f in ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return info


def torch_imported_first():
    """Whether torch was imported before seqkernels in this process (None: torch is not imported).
    The benches' scripts import torch first, as users do; the two then share torch's OpenMP runtime."""
    order = list(sys.modules)  # in import order
    if "torch" not in order or "seqkernels" not in order:
        return None
    return order.index("torch") < order.index("seqkernels")


def import_order_notes() -> list:
    """A note when torch was imported after seqkernels (as ``seqkernels bench ...`` does)."""
    if torch_imported_first() is False:
        return [
            "torch was imported after seqkernels in this process; the bench/*.py scripts import it first, as users do"
        ]
    return []


def machine_info() -> dict:
    """CPU model, core count, Python/NumPy/torch versions, the OpenBLAS environment variables, and
    seqkernels' ``build_info()``."""
    info = {
        "cpu": _cpu_model(),
        "cores": cpu_count(),
        "logical_cpus": os.cpu_count(),
        "openblas_env": openblas_env(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }  # others' work skews timings
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda
        info["torch_imported_first"] = torch_imported_first()
    except ImportError:
        info["torch"] = None
    import seqkernels

    info["seqkernels"] = seqkernels.build_info()
    return info


# ---- the measured FMA peak ---------------------------------------------------------------------
def measure_fma_peak(threads: int, *, trials: int = 3, seconds: float = 0.2) -> dict:
    """The machine's float32 FMA rate on ``threads`` threads (``seqkernels._C.fma_peak``: a
    register-resident loop of independent vector FMAs with the current CPU capability's widest
    vectors): the best of ``trials`` runs of ``seconds`` each, so a moment of disturbance on a shared
    machine does not lower it. Returns the best run's dict plus ``trials_gflops``."""
    for name, v, low in (("threads", threads, 1), ("trials", trials, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {v!r}")
    if isinstance(seconds, bool) or not (isinstance(seconds, (int, float)) and 0 < seconds <= 60):
        raise ValueError(f"seconds: expected a number in (0, 60], got {seconds!r}")
    from .._backend import _C

    runs = [_C.fma_peak(threads, float(seconds)) for _ in range(trials)]
    best = dict(max(runs, key=lambda r: r["gflops"]))
    best["trials_gflops"] = [round(r["gflops"], 2) for r in runs]
    return best


def pct_of_peak(gflops, peak_gflops):
    """``gflops`` as a percentage of the measured peak (None when either is unknown)."""
    if gflops is None or not peak_gflops:
        return None
    return 100.0 * gflops / peak_gflops


# ---- the OpenBLAS environment ------------------------------------------------------------------
# OpenBLAS reads these when the library loads. Some machines set them (this project's development
# machines set OPENBLAS_CORETYPE=Haswell, so OpenBLAS runs AVX2 kernels on an AVX-512 CPU); users'
# machines usually do not. A bench run therefore says which it ran under, and can run the rows the
# other way in a child process (the variables cannot be changed in a process that has loaded BLAS).
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
MACHINE_OPENBLAS_ENV = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"}


def openblas_env(environ=None) -> dict:
    """``{variable: value or None}`` for the OpenBLAS variables in ``environ`` (default: this process)."""
    environ = os.environ if environ is None else environ
    return {k: environ.get(k) for k in OPENBLAS_VARS}


def openblas_env_name(env: dict) -> str:
    """'default' when no OpenBLAS variable is set (a user's machine), else 'machine'."""
    return "default" if all(v is None for v in env.values()) else "machine"


def openblas_env_variant(name: str, current: dict | None = None) -> dict:
    """The variables of a variant: 'default' unsets them; 'machine' is this process's setting when it
    has one, else the development machines' (:data:`MACHINE_OPENBLAS_ENV`)."""
    current = openblas_env() if current is None else current
    if name == "default":
        return {k: None for k in OPENBLAS_VARS}
    if name == "machine":
        return dict(current) if openblas_env_name(current) == "machine" else dict(MACHINE_OPENBLAS_ENV)
    raise ValueError(f"OpenBLAS environment: expected 'default' or 'machine', got {name!r}")


def openblas_env_line(env: dict) -> str:
    what = "unset: the user's default" if openblas_env_name(env) == "default" else "set"
    return " ".join(f"{k}={'unset' if v is None else v}" for k, v in env.items()) + f" ({what})"


# ---- a competing load --------------------------------------------------------------------------
# A contender is a pure spin loop in its own Python process. It ends by itself after spinning for
# `limit` seconds of CPU time (time stopped does not count), when its parent goes away (checked
# every few milliseconds while it runs, and by PR_SET_PDEATHSIG on Linux even while stopped), and is
# killed by Contention.close(). It ignores SIGINT and runs in its own session, so Ctrl-C reaches the
# bench, whose `finally` kills it.
_SPIN_CODE = """\
import ctypes, os, signal, sys, time
parent, limit = int(sys.argv[1]), float(sys.argv[2])
signal.signal(signal.SIGINT, signal.SIG_IGN)
try:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except Exception:
    pass
sys.stdout.write("r"); sys.stdout.flush()
while os.getppid() == parent and time.process_time() < limit:
    for _ in range(100000):
        pass
"""


class Contention:
    """``processes`` busy processes, stopped (SIGSTOP) except inside :meth:`busy`::

        with Contention(1) as load:
            quiet = time_blocks(fns)
            with load.busy():
                contended = time_blocks(fns)

    Leaving the ``with`` (normally, by an exception or by Ctrl-C) kills them. Each ends by itself after
    ``limit`` seconds of spinning, and is then restarted by the next :meth:`busy`.
    """

    def __init__(self, processes: int, limit: float = 3600.0, settle: float = 0.2):
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 0:
            raise ValueError(f"processes: expected an integer >= 0, got {processes!r}")
        if not limit > 0:
            raise ValueError(f"limit: expected seconds > 0, got {limit!r}")
        self.processes, self.limit, self.settle = processes, float(limit), float(settle)
        self._procs = []

    @property
    def pids(self) -> list:
        return [p.pid for p in self._procs]

    def _spawn(self):
        p = subprocess.Popen(
            [sys.executable, "-c", _SPIN_CODE, str(os.getpid()), repr(self.limit)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            p.stdout.read(1)  # ready: its parent-death signal is armed, so stopping it is safe
        except BaseException:
            p.kill()
            p.wait()
            raise
        return p

    def _signal(self, sig):
        for p in self._procs:
            if p.poll() is None:
                p.send_signal(sig)

    def _stop(self):
        """SIGSTOP every contender and wait until each has stopped (a signal is delivered
        asynchronously; a quiet timing must not begin while one still runs)."""
        self._signal(signal.SIGSTOP)
        for p in self._procs:
            if p.poll() is not None:
                continue
            try:
                _, status = os.waitpid(p.pid, os.WUNTRACED)
            except ChildProcessError:
                continue
            if not os.WIFSTOPPED(status):  # it ended meanwhile and this wait reaped it
                p.returncode = os.waitstatus_to_exitcode(status)

    def __enter__(self):
        try:
            for _ in range(self.processes):
                self._procs.append(self._spawn())
            self._stop()
        except BaseException:
            self.close()
            raise
        return self

    @contextlib.contextmanager
    def busy(self):
        """The contenders spin inside this block (after ``settle`` seconds to ramp up)."""
        self._procs = [p if p.poll() is None else self._respawn(p) for p in self._procs]
        self._signal(signal.SIGCONT)
        try:
            time.sleep(self.settle)
            yield self
        finally:
            self._stop()

    def _respawn(self, old):
        old.stdout.close()
        return self._spawn()

    def close(self):
        """Kill and reap every contender (safe to call more than once)."""
        for p in self._procs:
            if p.poll() is None:
                p.kill()
        for p in self._procs:
            p.wait()
            p.stdout.close()
        self._procs = []

    def __exit__(self, *exc):
        self.close()
        return False


def measure(timing, contention: Contention | None = None) -> dict:
    """Run ``timing()`` (returns ``{name: stats}``) quietly and, when ``contention`` has processes,
    again while they spin. Returns ``{"quiet": stats, "quiet_others_pct": %, "contended": stats or
    None, "contended_others_pct": % or None}``; others_pct is other processes' share of the machine's
    CPU time (the contenders count as others)."""
    out = {}
    for phase in ("quiet", "contended"):
        if phase == "contended" and (contention is None or contention.processes == 0):
            out[phase], out[phase + "_others_pct"] = None, None
            continue
        with contention.busy() if phase == "contended" else contextlib.nullcontext():
            before = cpu_snapshot()
            out[phase] = timing()
            out[phase + "_others_pct"] = others_load(before, cpu_snapshot())
    return out


def contended_fields(m: dict, quiet_ms: dict, contention) -> dict:
    """A row's loaded columns from :func:`measure`'s result: each side's loaded median, its slowdown
    against its own quiet median, and ours against torch under load (``{}`` when not contended)."""
    loaded = m["contended"]
    if loaded is None:
        return {}
    lms = {n: s["median_ms"] for n, s in loaded.items()}
    ref = "torch" if "torch" in lms else None
    return {
        "contend": contention.processes,
        "ours_load_ms": lms["ours"],
        "torch_load_ms": lms.get(ref),
        "ours_slowdown": lms["ours"] / quiet_ms["ours"],
        "torch_slowdown": lms[ref] / quiet_ms[ref] if ref else None,
        "x_torch_load": lms[ref] / lms["ours"] if ref else None,
        "load_others_pct": m["contended_others_pct"],
        "stats_contended": loaded,
    }


def contention_note(processes: int) -> list:
    if not processes:
        return []
    return [
        f"loaded: the same row timed again while {processes} busy process(es) spin; slowdown = loaded / quiet "
        "median of the same side; others CPU % loaded includes the busy processes"
    ]


def fmt_x(v) -> str:
    """A ratio column: 1.23x."""
    return f"{v:.2f}x"


#: The table columns of the peak and of a contended run (the row keys of contended_fields).
PEAK_COLUMNS = [
    ("gflops", "ours GFLOP/s", ".1f"),
    ("pct_peak", "% peak", ".0f"),
    ("torch_gflops", "torch GFLOP/s", ".1f"),
    ("torch_pct_peak", "% peak", ".0f"),
]
LOADED_COLUMNS = [
    ("ours_load_ms", "ours loaded ms", ".2f"),
    ("torch_load_ms", "torch loaded ms", ".2f"),
    ("ours_slowdown", "ours slowdown", fmt_x),
    ("torch_slowdown", "torch slowdown", fmt_x),
    ("x_torch_load", "vs torch loaded", fmt_x),
    ("load_others_pct", "others CPU % loaded", ".0f"),
]


def shape_arg(cells, dims: str):
    """An argparse type for ``--shape CELL,<dims>`` (e.g. dims "B,H,T"): returns (cell, *ints)."""
    import argparse

    n = len(dims.split(","))

    def parse(text):
        parts = text.split(",")
        try:
            cell, sizes = parts[0].lower(), [int(v) for v in parts[1:]]
        except ValueError:
            cell, sizes = None, []
        if cell not in cells or len(sizes) != n or min(sizes) < 1:
            raise argparse.ArgumentTypeError(
                f"expected CELL,{dims} with CELL one of {', '.join(cells)} and positive sizes; got {text!r}"
            )
        return (cell, *sizes)

    return parse


# ---- one run: options, the peak, the environment variants -------------------------------------
def add_run_options(ap) -> None:
    """The options of the benches that report % of peak: --openblas-env, --contend, and the hidden
    options a parent passes to the child it starts for the other OpenBLAS environment."""
    import argparse

    ap.allow_abbrev = False  # the parent rewrites the child's options by their full names
    ap.add_argument(
        "--openblas-env",
        choices=["current", "default", "machine", "both"],
        default="current",
        help="OpenBLAS environment of the rows: 'current' (this process's; the default), 'default' "
        "(OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, as on users' machines), 'machine' (this "
        f"machine's setting, else {' '.join(f'{k}={v}' for k, v in MACHINE_OPENBLAS_ENV.items())}) "
        "or 'both' (default first). A variant other than this process's runs in a child process "
        "and its rows are merged into one table (column env)",
    )
    ap.add_argument(
        "--contend",
        type=int,
        default=0,
        metavar="N",
        help="also time every row while N busy processes (pure spin loops) compete for the CPUs, "
        "and show each side's slowdown against its quiet time (default 0: quiet only)",
    )
    ap.add_argument("--fma-peak-gflops", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--env-child", action="store_true", help=argparse.SUPPRESS)


def start_run(args) -> dict:
    """Print the OpenBLAS variables (first line of the output) and measure the FMA peak on
    ``args.threads`` threads, or take the parent's. Returns the peak's dict (gflops None on CUDA)."""
    if args.contend < 0:
        raise SystemExit("--contend must be >= 0")
    print("OpenBLAS environment:", openblas_env_line(openblas_env()), flush=True)
    if args.device != "cpu":
        return {"gflops": None, "note": "no FMA peak for device runs"}
    if args.fma_peak_gflops is not None:
        return {"gflops": args.fma_peak_gflops, "measured_by": "the parent process"}
    peak = measure_fma_peak(args.threads)
    print(
        f"float32 FMA peak: {peak['gflops']:.1f} GFLOP/s on {args.threads} threads "
        f"({peak['cpu_capability']} loop, best of {peak['trials_gflops']})",
        flush=True,
    )
    return peak


# The child imports torch before seqkernels, as the benches' scripts and users do.
_CHILD_CODE = """\
import importlib, sys
try:
    import torch  # noqa: F401
except ImportError:
    pass
sys.exit(importlib.import_module(sys.argv[1]).main(sys.argv[2:]))
"""


def _without_options(argv: list, options) -> list:
    """``argv`` without ``--opt value`` / ``--opt=value`` for each of ``options``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in options:
            skip = True
        elif not any(a.startswith(o + "=") for o in options):
            out.append(a)
    return out


def run_bench_child(module: str, argv: list, env_vars: dict, peak_gflops=None) -> dict:
    """Run bench ``module``'s ``main(argv)`` in a child process whose OpenBLAS variables are
    ``env_vars`` (None: unset), in this process's environment otherwise; return its JSON payload.
    Its progress goes to this process's stderr; a failure raises RuntimeError."""
    env = dict(os.environ)
    for k, v in env_vars.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    with tempfile.TemporaryDirectory(prefix="seqkernels-bench-") as d:
        path = Path(d) / "child.json"
        cmd = [
            sys.executable,
            "-c",
            _CHILD_CODE,
            module,
            *_without_options(argv, ("--openblas-env", "--json", "--fma-peak-gflops")),
            "--openblas-env",
            "current",
            "--json",
            str(path),
            "--env-child",
        ]
        if peak_gflops is not None:
            cmd += ["--fma-peak-gflops", repr(float(peak_gflops))]
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0 or not path.exists():
            raise RuntimeError(
                f"the bench run with {openblas_env_line(env_vars)} failed in a child process "
                f"(exit status {proc.returncode}; its messages are above). Its output ended:\n" + proc.stdout[-2000:]
            )
        return json.loads(path.read_text())


def run_env_variants(module: str, args, argv, run_here, peak: dict):
    """The rows of every OpenBLAS environment ``args.openblas_env`` asks for, each row tagged with
    ``env``: this process's variant by ``run_here()``, any other by :func:`run_bench_child`.
    Returns ``(rows, {env: {"vars", "ran_in", ...}})``."""
    current = openblas_env()
    here = openblas_env_name(current)
    names = {"current": [here], "both": ["default", "machine"]}.get(args.openblas_env, [args.openblas_env])
    argv = sys.argv[1:] if argv is None else list(argv)
    rows, record = [], {}
    for name in names:
        want = current if name == here else openblas_env_variant(name, current)
        if want == current:
            from .._backend import build_info

            got, rec = run_here(), {"vars": want, "ran_in": "this process", "blas_core": build_info().get("blas_core")}
        else:
            log(f"--- the rows with {openblas_env_line(want)}, in a child process ---")
            payload = run_bench_child(module, argv, want, peak.get("gflops"))
            got = payload["rows"]
            rec = {
                "vars": want,
                "ran_in": "child process",
                "blas_core": (payload.get("machine") or {}).get("seqkernels", {}).get("blas_core"),
                "machine": payload.get("machine"),
                "notes": payload.get("notes"),
                "seconds": payload.get("seconds"),
            }
        for r in got:
            r["env"] = name
        rows += got
        record[name] = rec
    return rows, record


def env_notes(envs: dict) -> list:
    """One note per OpenBLAS environment a run covered (the table's env column)."""
    return [
        f"env {name}: {openblas_env_line(rec['vars'])}, OpenBLAS core {rec.get('blas_core') or '?'}, "
        f"ran in {rec['ran_in']}"
        + (" (the headline: users' machines do not set these)" if name == "default" and len(envs) > 1 else "")
        for name, rec in envs.items()
    ]


def run_record(args, peak: dict, info: dict, envs: dict) -> dict:
    """The JSON keys every %-of-peak bench writes: the peak, CPU model, capability, threads, contention
    and the OpenBLAS environments."""
    return {
        "fma_peak": peak,
        "cpu_model": info["cpu"]["model"],
        "cpu_capability": info["seqkernels"].get("cpu_capability"),
        "threads": args.threads,
        "contend": args.contend,
        "openblas_env": {"this_process": openblas_env(), "variants": envs},
    }


def peak_headline(peak: dict, threads: int) -> str:
    g = peak.get("gflops")
    return f" | FMA peak {g:.0f} GFLOP/s on {threads} threads" if g else ""


# ---- output ------------------------------------------------------------------------------------
def results_path(name: str, device: str, results_dir=None) -> Path:
    """``<results_dir>/<name>-<device>.json`` — a stable name, overwritten by each run."""
    return Path(results_dir if results_dir is not None else Path("bench") / "results") / f"{name}-{device}.json"


def write_json(path, payload: dict) -> Path:
    """Write ``payload`` as indented JSON, atomically (a ``.tmp`` file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    os.replace(tmp, path)
    return path


def format_table(rows: list, columns: list) -> str:
    """Fixed-width text table. ``columns``: ``(key, header, fmt)``; ``fmt`` is a format spec or a
    callable; a value of None prints as ``n/a``. Text columns align left, numbers right."""

    def cell(row, key, fmt):
        v = row.get(key)
        if v is None:
            return "n/a"
        return fmt(v) if callable(fmt) else format(v, fmt)

    body = [[cell(r, k, f) for k, _, f in columns] for r in rows]
    widths = [max([len(h)] + [len(b[i]) for b in body]) for i, (_, h, _) in enumerate(columns)]
    left = [all(isinstance(r.get(k), str) for r in rows) for k, _, _ in columns]

    def line(vals):
        return "  ".join(v.ljust(w) if lf else v.rjust(w) for v, w, lf in zip(vals, widths, left)).rstrip()

    return "\n".join([line([h for _, h, _ in columns]), line(["-" * w for w in widths])] + [line(b) for b in body])


# ---- the command line and the end of a run, shared by every bench script ----------------------
def bench_parser(name: str, description: str, quick_help: str, repeats_help: str, threads_default=None):
    """An ArgumentParser with the options every bench takes: --device, --quick, --repeats, --threads,
    --json. Scripts add their own options, then call :func:`parse_bench_args`."""
    import argparse

    ap = argparse.ArgumentParser(prog=f"seqkernels bench {name}", description=description)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--repeats", type=int, default=None, help=repeats_help)
    ap.add_argument(
        "--threads",
        type=int,
        default=cpu_count() if threads_default is None else threads_default,
        help="threads for seqkernels and torch (default: all CPUs, %(default)s here)",
    )
    ap.add_argument("--json", default=None, help=f"output file (default bench/results/{name}-<device>.json)")
    return ap


def parse_bench_args(ap, argv):
    args = ap.parse_args(argv)
    for opt in ("repeats", "threads"):
        if getattr(args, opt) is not None and getattr(args, opt) < 1:
            ap.error(f"--{opt} must be >= 1")
    return args


def finish(
    name: str,
    args,
    argv,
    *,
    settings: dict,
    notes: list,
    info: dict,
    t0: float,
    rows: list,
    columns: list,
    results_dir=None,
    extra: dict | None = None,
    headline: str = "",
) -> Path:
    """Write the run's JSON (machine, settings, notes, rows) and print the header, notes and table
    (columns whose values are all missing are left out). Returns the JSON path."""
    path = args.json or results_path(name, args.device, results_dir)
    payload = {
        "benchmark": name,
        "device": args.device,
        "argv": sys.argv[1:] if argv is None else argv,
        "settings": settings,
        **(extra or {}),
        "notes": notes,
        "machine": info,
        "seconds": time.perf_counter() - t0,
        "rows": rows,
    }
    write_json(path, payload)
    c, sk = info["cpu"], info["seqkernels"]
    print(
        f"seqkernels {sk['version']} ({sk.get('cpu_capability', '?')} CPU kernels, {sk.get('blas_core', '?')} BLAS) | "
        f"torch {info['torch']} | numpy {info['numpy']} | {c['model']}, {info['cores']} cores{headline} | wrote {path}"
    )
    for n in notes:
        print("note:", n)
    shown = [col for col in columns if any(r.get(col[0]) is not None for r in rows)]
    print(format_table(rows, shown))
    return path


def log(msg: str) -> None:
    """Progress to stderr, so stdout ends with the table alone."""
    print(msg, file=sys.stderr, flush=True)
