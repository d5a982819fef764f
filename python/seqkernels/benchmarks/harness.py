"""Shared benchmark harness: validation, timing, machine description, table and JSON output.

Every bench script (recurrent layers, torch layers, beam search, GloVe) follows the same pattern:
validate each variant against a baseline, time it (warm-up, then repeats; median and IQR), write a
JSON file of machine info plus one record per row, and print a fixed-width table last.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["ValidationError", "validate", "to_host", "cuda_sync", "bench_parser", "parse_bench_args", "finish", "cpu_count", "perf_counter_timer", "torch_cuda_event_timer", "time_fn",
           "time_blocks", "cpu_snapshot", "others_load", "machine_info", "results_path", "write_json",
           "format_table", "log"]


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
        raise ValidationError(f"{what}: max relative error {rel:.3e} > limit {tol:.1e} at {worst}: "
                              f"got {float(ours[worst]):.7g}, baseline {float(baseline[worst]):.7g}, scale {scale:.3e}")
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
    return {"median_ms": float(med), "iqr_ms": float(q3 - q1), "q1_ms": float(q1), "q3_ms": float(q3),
            "min_ms": float(s.min()), "n": int(s.size), "samples_ms": [round(float(v), 4) for v in s]}


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


def time_fn(fn, *, repeats: int = 10, warmup: int = 2, min_time: float = 0.0, sync=None,
            timer=perf_counter_timer) -> dict:
    """Run ``fn`` ``warmup`` times untimed, then at least ``repeats`` timed runs (more while their
    total is under ``min_time`` seconds). Returns median, IQR, min (ms), n and the samples."""
    return _stats(_run(fn, repeats=repeats, warmup=warmup, min_time=min_time, sync=sync, timer=timer))


def time_blocks(fns: dict, *, repeats: int = 10, warmup: int = 1, rounds: int = 2, min_time: float = 0.0,
                pause: float = 0.05, sync=None, timer=perf_counter_timer) -> dict:
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
        for n in (names if r % 2 == 0 else names[::-1]):
            time.sleep(pause)
            samples[n] += _run(fns[n], repeats=per_block, warmup=warmup, min_time=min_time / rounds,
                               sync=sync, timer=timer)
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


def machine_info() -> dict:
    """CPU model, core count, Python/NumPy/torch versions, and seqkernels' ``build_info()``."""
    info = {"cpu": _cpu_model(), "cores": cpu_count(), "logical_cpus": os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None}  # others' work skews timings
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda
    except ImportError:
        info["torch"] = None
    import seqkernels

    info["seqkernels"] = seqkernels.build_info()
    return info


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
    ap.add_argument("--threads", type=int, default=cpu_count() if threads_default is None else threads_default,
                    help="threads for seqkernels and torch (default: all CPUs, %(default)s here)")
    ap.add_argument("--json", default=None, help=f"output file (default bench/results/{name}-<device>.json)")
    return ap


def parse_bench_args(ap, argv):
    args = ap.parse_args(argv)
    for opt in ("repeats", "threads"):
        if getattr(args, opt) is not None and getattr(args, opt) < 1:
            ap.error(f"--{opt} must be >= 1")
    return args


def finish(name: str, args, argv, *, settings: dict, notes: list, info: dict, t0: float, rows: list, columns: list,
           results_dir=None, extra: dict | None = None, headline: str = "") -> Path:
    """Write the run's JSON (machine, settings, notes, rows) and print the header, notes and table
    (columns whose values are all missing are left out). Returns the JSON path."""
    path = args.json or results_path(name, args.device, results_dir)
    payload = {"benchmark": name, "device": args.device, "argv": sys.argv[1:] if argv is None else argv,
               "settings": settings, **(extra or {}), "notes": notes, "machine": info,
               "seconds": time.perf_counter() - t0, "rows": rows}
    write_json(path, payload)
    c, sk = info["cpu"], info["seqkernels"]
    print(f"seqkernels {sk['version']} ({sk.get('cpu_capability', '?')} CPU kernels, {sk.get('blas_core', '?')} BLAS) | "
          f"torch {info['torch']} | numpy {info['numpy']} | {c['model']}, {info['cores']} cores{headline} | wrote {path}")
    for n in notes:
        print("note:", n)
    shown = [col for col in columns if any(r.get(col[0]) is not None for r in rows)]
    print(format_table(rows, shown))
    return path


def log(msg: str) -> None:
    """Progress to stderr, so stdout ends with the table alone."""
    print(msg, file=sys.stderr, flush=True)
