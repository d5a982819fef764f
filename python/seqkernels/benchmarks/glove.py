"""GloVe benchmark: vocabulary and co-occurrence counting (tokens/s, peak memory) and training
(seconds per epoch), seqkernels against Stanford GloVe's own programs on the same corpus.

    python bench/glove.py [--tokens 12000000] [--threads 2] [--memory 1.0] [--windows 10,15]
                          [--stanford DIR | --stanford-src DIR] [--workdir DIR] [--epochs 3] [--repeats 2]
                          [--spill-memory 0.1] [--dask-workers 1,2]

The corpus is built once from text already on the machine (Debian's /usr/share/doc, man pages and
info files, Python's pydoc topics): lower-cased, split into [a-z0-9]+ words, one output line per
input line; it is cached in --workdir (default $TMPDIR/seqkernels-glove-bench), never in the repo.

Every measurement runs in its own process, so that its peak RSS (from wait4) is its own: the
seqkernels rows run the Python API (the kernel's throughput; an interpreter with seqkernels
imported is the floor of their RSS, reported as "python floor") and the command line (end to end,
interpreter start included). Stanford rows run the binaries in --stanford DIR (vocab_count,
cooccur), built from github.com/stanfordnlp/GloVe src/ with its Makefile's flags; without them the
baseline is the figure quoted in issue 5 (0.7M tokens/s at window 10 on this machine kind).
--stanford-src DIR (a checkout of github.com/stanfordnlp/GloVe) builds them first, with its own
Makefile, in a copy under --workdir.

Temporary disk: every cooccur row reports the peak bytes of its spilled runs ("temp MiB"), polled
every 20 ms: seqkernels' unnamed temporary files through /proc/PID/fd, Stanford's overflow files by
listing their directory. The --spill-memory rows run both with a small -memory so that they spill.
The Dask rows count on a LocalCluster of 1 and 2 worker processes (one thread each) on this
machine, with the bytes checked against the local API's.
Before timing is trusted, outputs are compared: vocab.txt byte for byte, cooccurrence.bin keys
identical and values within 1e-9 relative (Stanford adds float64 in its own order; seqkernels
sums exactly, so the last bits differ). Each row keeps the fastest of --repeats runs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import harness as hz

ISSUE_BASELINE_TOKENS_PER_S = 0.7e6  # Stanford cooccur, window 10, 2-core machine (issue 5)
WORD = re.compile(rb"[a-z0-9]+(?:'[a-z]+)?")
TEXT_ROOTS = ("/usr/share/doc", "/usr/share/man", "/usr/share/info")
RECORD = np.dtype([("word1", "<i4"), ("word2", "<i4"), ("value", "<f8")])


# ---- corpus ------------------------------------------------------------------------------------
def _texts():
    """Raw texts on this machine, in a fixed order: pydoc topics first, then doc/man/info files."""
    try:
        from pydoc_data import topics

        yield b"\n".join(v.encode("utf-8", "replace") for _, v in sorted(topics.topics.items()))
    except ImportError:
        pass
    for root in TEXT_ROOTS:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    continue
                try:
                    data = gzip.open(path).read() if name.endswith(".gz") else open(path, "rb").read()
                except (OSError, EOFError, gzip.BadGzipFile):
                    continue
                if b"\0" in data[:4096]:
                    continue  # binary
                if "/man/" in path:  # drop roff requests, keep the text lines
                    data = b"\n".join(l for l in data.splitlines() if not l.startswith((b".", b"'")))
                yield data


def build_corpus(path: Path, tokens: int) -> dict:
    """Writes at least `tokens` tokens to `path` (cached: reused when it already has them)."""
    info_path = path.with_suffix(".json")
    if path.exists() and info_path.exists():
        info = json.loads(info_path.read_text())
        if info.get("tokens", 0) >= tokens:
            return info
    hz.log(f"building a {tokens:,}-token corpus in {path} from {', '.join(TEXT_ROOTS)} and pydoc topics ...")
    n = files = 0
    tmp = path.with_suffix(".partial")
    with open(tmp, "wb") as out:
        for text in _texts():
            files += 1
            for line in text.lower().splitlines():
                words = WORD.findall(line)
                if words:
                    out.write(b" ".join(words) + b"\n")
                    n += len(words)
            if n >= tokens:
                break
    if n < tokens:
        raise SystemExit(f"only {n:,} tokens of text found on this machine (wanted {tokens:,})")
    os.replace(tmp, path)
    info = {"tokens": n, "bytes": path.stat().st_size, "sources": files, "roots": list(TEXT_ROOTS) + ["pydoc topics"]}
    info_path.write_text(json.dumps(info))
    return info


# ---- measured processes ------------------------------------------------------------------------
GNU_TIME = "/usr/bin/time"


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


class TempDiskPoller:
    """Peak bytes of temporary files under `directory` while a process tree runs: named files by
    listing the directory, unnamed ones (O_TMPFILE, or unlinked) through the processes' open fds."""

    def __init__(self, directory: Path):
        import threading

        self.directory, self.peak, self.pid = Path(directory), 0, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self, pid: int):
        self.pid = pid
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak

    def _sample(self) -> int:
        total = 0
        with os.scandir(self.directory) as it:
            for e in it:
                try:
                    total += e.stat().st_size
                except OSError:
                    pass
        prefix = str(self.directory)
        for p in _descendants(self.pid):
            try:
                fds = os.listdir(f"/proc/{p}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    target = os.readlink(f"/proc/{p}/fd/{fd}")
                    if target.startswith(prefix) and target.endswith("(deleted)"):
                        total += os.stat(f"/proc/{p}/fd/{fd}").st_size
                except OSError:
                    pass
        return total

    def _loop(self):
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, self._sample())
            except OSError:
                pass


def run(cmd, stdin=None, stdout=None, env=None, temp_dir=None) -> dict:
    """Runs a command; returns wall seconds, peak RSS (MiB) and stdout text (when not redirected).

    The peak RSS comes from GNU time when present: a child forked from this (large) Python process
    counts the parent's pages in its own maximum until it execs, so wait4 on it over-reports."""
    fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
    fout = open(stdout, "wb") if stdout else subprocess.PIPE
    cmd = [str(c) for c in cmd]
    timed = [GNU_TIME, "-f", "SEQKERNELS_MAXRSS_KB %M", *cmd] if os.access(GNU_TIME, os.X_OK) else cmd
    before = _cpu_snapshot()
    t0 = time.perf_counter()
    p = subprocess.Popen(timed, stdin=fin, stdout=fout, stderr=subprocess.PIPE, env=env)
    poller = TempDiskPoller(temp_dir) if temp_dir else None
    if poller:
        poller.start(p.pid)
    out, err = p.communicate()
    seconds = time.perf_counter() - t0
    temp_peak = poller.stop() if poller else None
    for f in (fin, fout):
        if hasattr(f, "close"):
            f.close()
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({p.returncode}): {err.decode(errors='replace')[-2000:]}")
    found = re.findall(rb"SEQKERNELS_MAXRSS_KB (\d+)", err)
    rss_kb = int(found[-1]) if found else None
    return {
        "seconds": seconds,
        "rss_mb": rss_kb / 1024 if rss_kb is not None else None,
        "stdout": (out or b"").decode(),
        "temp_mb": temp_peak / 2**20 if temp_peak is not None else None,
        "others_cpu_pct": hz.others_load(before, _cpu_snapshot()),
    }


def _cpu_snapshot():
    """hz.cpu_snapshot, with the CPU time of this process's finished children counted as ours."""
    snap = hz.cpu_snapshot()
    if snap is None:
        return None
    t = os.times()
    return snap[0], snap[1], snap[2] + t.children_user + t.children_system


def python_env() -> dict:
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # NumPy's own OpenBLAS threads would spin beside ours
    return env


API_VOCAB = """
import json, sys, time
from seqkernels.glove import Vocabulary
t = time.perf_counter()
v = Vocabulary.from_corpus(sys.argv[1], min_count=int(sys.argv[2]), threads=int(sys.argv[3]))
s = time.perf_counter() - t
v.save(sys.argv[4])
print(json.dumps({"kernel_seconds": s, "tokens": v.tokens, "words": len(v)}))
"""

API_COOCCUR = """
import json, os, sys, time
from seqkernels.glove import Vocabulary, write_cooccurrence
vocab = Vocabulary.load(sys.argv[2])
if os.path.exists(sys.argv[3]):  # as for the programs, whose output file is truncated before the clock starts
    os.unlink(sys.argv[3])
t = time.perf_counter()
stats = write_cooccurrence(sys.argv[1], vocab, sys.argv[3], window_size=int(sys.argv[4]), memory=float(sys.argv[5]),
                           threads=int(sys.argv[6]))
stats["kernel_seconds"] = time.perf_counter() - t
print(json.dumps(stats))
"""

API_DASK = """
import json, sys, time
from distributed import Client, LocalCluster
from seqkernels.glove import Vocabulary, write_cooccurrence
vocab = Vocabulary.load(sys.argv[2])
with LocalCluster(n_workers=int(sys.argv[5]), threads_per_worker=1, processes=True, dashboard_address=":0") as c, \
        Client(c) as client:
    t = time.perf_counter()
    stats = write_cooccurrence(sys.argv[1], vocab, sys.argv[3], window_size=int(sys.argv[4]), memory=float(sys.argv[6]),
                               threads=1, client=client, work_dir=sys.argv[7], shard_bytes=int(sys.argv[8]))
    stats["kernel_seconds"] = time.perf_counter() - t
print(json.dumps(stats))
"""

API_TRAIN = """
import json, sys, time
from seqkernels.glove import Cooccurrence, GloVe, Vocabulary
vocab = Vocabulary.load(sys.argv[2])
cooc = Cooccurrence.load(sys.argv[1], vocabulary=vocab)
stamps = [time.perf_counter()]
model = GloVe(vector_size=int(sys.argv[4]), threads=int(sys.argv[5]), seed=1)
model.fit(cooc, epochs=int(sys.argv[3]), progress=False, callback=lambda e, c: stamps.append(time.perf_counter()))
epochs = [b - a for a, b in zip(stamps[1:], stamps[2:])]  # the first interval includes init and shuffle
print(json.dumps({"records": len(cooc), "epoch_seconds": epochs, "costs": model.costs_}))
"""


def with_json(result: dict) -> dict:
    """A run() result merged with the JSON its process printed."""
    return {**result, **json.loads(result["stdout"])}


def best_of(repeats: int, fn):
    """The fastest of `repeats` runs (by the kernel's own timer when it reports one)."""
    runs = [fn() for _ in range(repeats)]
    best = dict(min(runs, key=lambda r: r.get("kernel_seconds", r["seconds"])))
    best["all_seconds"] = [round(r.get("kernel_seconds", r["seconds"]), 4) for r in runs]
    best["rss_mb"] = max((r["rss_mb"] for r in runs if r["rss_mb"] is not None), default=None)
    best["temp_mb"] = max((r["temp_mb"] for r in runs if r.get("temp_mb") is not None), default=None)
    best["median_seconds"] = float(np.median([r.get("kernel_seconds", r["seconds"]) for r in runs]))
    best["others_cpu_pct"] = max((r["others_cpu_pct"] or 0.0) for r in runs)
    return best


def build_stanford(src: Path, work: Path) -> Path:
    """Builds Stanford GloVe's binaries from a checkout (its Makefile, its flags) in a copy under
    `work`; returns the directory holding them."""
    import shutil

    copy = work / "stanford-src"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(src / "src", copy / "src")
    shutil.copy(src / "Makefile", copy / "Makefile")
    hz.log(f"building Stanford GloVe from {src} ...")
    subprocess.run(["make", "-C", str(copy)], check=True, stdout=subprocess.DEVNULL)
    return copy / "build"


def compare_cooccurrence(ours: Path, theirs: Path) -> str:
    a, b = np.memmap(ours, dtype=RECORD, mode="r"), np.memmap(theirs, dtype=RECORD, mode="r")
    if len(a) != len(b):
        return f"FAIL: {len(a)} records vs Stanford's {len(b)}"
    if not (np.array_equal(a["word1"], b["word1"]) and np.array_equal(a["word2"], b["word2"])):
        return "FAIL: keys differ"
    rel = float(np.max(np.abs(a["value"] - b["value"]) / np.abs(b["value"]), initial=0.0))
    if rel > 1e-9:
        return f"FAIL: values differ by {rel:.2e}"
    return f"same keys, values within {rel:.1e}"


# ---- main --------------------------------------------------------------------------------------
def main(argv=None, results_dir=None) -> int:
    ap = argparse.ArgumentParser(prog="bench/glove.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=12_000_000, help="corpus size (default 12M tokens)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory", type=float, default=1.0, help="-memory in GB for both cooccurs (default 1.0)")
    ap.add_argument("--windows", default="10,15")
    ap.add_argument("--min-count", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3, help="training epochs timed (default 3)")
    ap.add_argument("--vector-size", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "--stanford",
        default=os.environ.get("STANFORD_GLOVE_DIR", "/tmp/stanford"),
        help="directory with Stanford's vocab_count and cooccur binaries",
    )
    ap.add_argument(
        "--stanford-src",
        default=os.environ.get("STANFORD_GLOVE_SRC"),
        help="a checkout of github.com/stanfordnlp/GloVe: build the binaries from it (overrides --stanford)",
    )
    ap.add_argument(
        "--spill-memory",
        type=float,
        default=0.1,
        help="-memory (GB) of the extra cooccur rows that spill to disk (0 = none)",
    )
    ap.add_argument("--dask-workers", default="1,2", help="LocalCluster sizes of the Dask rows ('' = none)")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "seqkernels-glove-bench"))
    ap.add_argument("--json", default=None, help="results file (default bench/results/glove-cpu.json)")
    args = ap.parse_args(argv)
    windows = [int(w) for w in args.windows.split(",")]
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    corpus = work / f"corpus-{args.tokens}.txt"
    corpus_info = build_corpus(corpus, args.tokens)
    tokens = corpus_info["tokens"]
    stanford = build_stanford(Path(args.stanford_src), work) if args.stanford_src else Path(args.stanford)
    have_stanford = all(os.access(stanford / b, os.X_OK) for b in ("vocab_count", "cooccur"))
    py, env = sys.executable, python_env()
    T = str(args.threads)
    rows, notes = [], []
    floor = run([py, "-c", "import seqkernels.glove"], env=env)["rss_mb"] or 0.0

    def row(step, impl, window, result, seconds_key="seconds", **extra):
        rows.append(
            {
                "step": step,
                "impl": impl,
                "window": window,
                "seconds": result[seconds_key],
                "median_seconds": result.get("median_seconds"),
                "temp_mb": result.get("temp_mb"),
                "peak_rss_mb": result["rss_mb"],
                "others_cpu_pct": result["others_cpu_pct"],
                "all_seconds": result["all_seconds"],
                "check": None,
                **extra,
            }
        )
        return rows[-1]

    def same_bytes(a: Path, b: Path, what: str) -> str:
        return f"same as {what}" if a.read_bytes() == b.read_bytes() else f"FAIL: differs from {what}"

    vocab_txt = work / "vocab.txt"
    # -- vocabulary --
    hz.log("vocab_count ...")
    ours = best_of(
        args.repeats, lambda: with_json(run([py, "-c", API_VOCAB, corpus, args.min_count, T, vocab_txt], env=env))
    )
    words = ours["words"]
    api_row = row("vocab_count", f"seqkernels API, {T} threads", None, ours, "kernel_seconds")
    cli = best_of(
        args.repeats,
        lambda: run(
            [
                py,
                "-m",
                "seqkernels",
                "glove",
                "vocab-count",
                "-min-count",
                args.min_count,
                "-threads",
                T,
                "-verbose",
                "0",
            ],
            stdin=corpus,
            stdout=work / "vocab_cli.txt",
            env=env,
        ),
    )
    row(
        "vocab_count",
        f"seqkernels CLI, {T} threads",
        None,
        cli,
        check=same_bytes(work / "vocab_cli.txt", vocab_txt, "API"),
    )
    if have_stanford:
        st = best_of(
            args.repeats,
            lambda: run(
                [stanford / "vocab_count", "-min-count", args.min_count, "-verbose", "0"],
                stdin=corpus,
                stdout=work / "vocab_st.txt",
            ),
        )
        api_row["check"] = same_bytes(vocab_txt, work / "vocab_st.txt", "Stanford's vocab.txt")
        row("vocab_count", "Stanford vocab_count", None, st, stanford=True)

    # -- co-occurrence --
    for w in windows:
        hz.log(f"cooccur window {w} ...")
        out, cli_out, st_out = (work / f"cooc-w{w}{tag}.bin" for tag in ("", "-cli", "-stanford"))
        api = best_of(
            args.repeats,
            lambda: with_json(run([py, "-c", API_COOCCUR, corpus, vocab_txt, out, w, args.memory, T], env=env)),
        )
        api_row = row(
            "cooccur",
            f"seqkernels API, {T} threads",
            w,
            api,
            "kernel_seconds",
            records=api["records"],
            runs_spilled=api["runs_spilled"],
            max_product=api["max_product"],
            phases_s={k: round(api[f"seconds_{k}"], 3) for k in ("tokenize", "count", "merge")},
        )
        cli = best_of(
            args.repeats,
            lambda: run(
                [
                    py,
                    "-m",
                    "seqkernels",
                    "glove",
                    "cooccur",
                    "-vocab-file",
                    vocab_txt,
                    "-window-size",
                    w,
                    "-memory",
                    args.memory,
                    "-threads",
                    T,
                    "-verbose",
                    "0",
                ],
                stdin=corpus,
                stdout=cli_out,
                env=env,
            ),
        )
        row("cooccur", f"seqkernels CLI, {T} threads", w, cli, check=same_bytes(cli_out, out, "API"))
        cli_out.unlink()
        if have_stanford:
            st = best_of(
                args.repeats,
                lambda: run(
                    [
                        stanford / "cooccur",
                        "-vocab-file",
                        vocab_txt,
                        "-window-size",
                        w,
                        "-memory",
                        args.memory,
                        "-overflow-file",
                        work / "overflow",
                        "-verbose",
                        "0",
                    ],
                    stdin=corpus,
                    stdout=st_out,
                ),
            )
            api_row["check"] = compare_cooccurrence(out, st_out)
            row("cooccur", "Stanford cooccur (1 thread)", w, st, stanford=True)
            st_out.unlink()

    # -- spilling to disk: peak temporary disk of both at a small -memory --
    tmp_ours, tmp_st = work / "tmp-ours", work / "tmp-stanford"
    for d in (tmp_ours, tmp_st):
        d.mkdir(exist_ok=True)
    w = windows[0]
    if args.spill_memory > 0:
        hz.log(f"cooccur window {w}, -memory {args.spill_memory} (spilling) ...")
        out, spill_out, st_out = (work / f"cooc-w{w}{tag}.bin" for tag in ("", "-spill", "-stanford-spill"))
        spill_env = {**env, "TMPDIR": str(tmp_ours)}
        api = best_of(
            args.repeats,
            lambda: with_json(
                run(
                    [py, "-c", API_COOCCUR, corpus, vocab_txt, spill_out, w, args.spill_memory, T],
                    env=spill_env,
                    temp_dir=tmp_ours,
                )
            ),
        )
        row(
            "cooccur",
            f"seqkernels API, {T} threads, -memory {args.spill_memory}",
            w,
            api,
            "kernel_seconds",
            records=api["records"],
            runs_spilled=api["runs_spilled"],
            memory=args.spill_memory,
            spilled_mb=api.get("spilled_bytes", 0) / 2**20,
            spilled_raw_mb=api.get("spilled_records", 0) * 16 / 2**20,
            check=same_bytes(spill_out, out, "the -memory " + str(args.memory) + " output"),
        )
        spill_out.unlink()
        if have_stanford:
            st = best_of(
                args.repeats,
                lambda: run(
                    [
                        stanford / "cooccur",
                        "-vocab-file",
                        vocab_txt,
                        "-window-size",
                        w,
                        "-memory",
                        args.spill_memory,
                        "-overflow-file",
                        tmp_st / "overflow",
                        "-verbose",
                        "0",
                    ],
                    stdin=corpus,
                    stdout=st_out,
                    temp_dir=tmp_st,
                ),
            )
            row(
                "cooccur",
                f"Stanford cooccur (1 thread), -memory {args.spill_memory}",
                w,
                st,
                stanford=True,
                memory=args.spill_memory,
                check=compare_cooccurrence(out, st_out),
            )
            st_out.unlink()

    # -- Dask: tokens/s against workers, on this machine --
    for n in [int(x) for x in args.dask_workers.split(",") if x.strip()]:
        try:
            import distributed  # noqa: F401
        except ImportError:
            notes.append("Dask rows skipped: dask[distributed] is not installed")
            break
        hz.log(f"cooccur window {w} on a LocalCluster of {n} workers ...")
        dask_out = work / f"cooc-w{w}-dask.bin"
        shard = max(1 << 20, corpus_info["bytes"] // (4 * n))
        try:
            res = best_of(
                args.repeats,
                lambda: with_json(
                    run(
                        [py, "-c", API_DASK, corpus, vocab_txt, dask_out, w, n, args.memory, str(tmp_ours), shard],
                        env=env,
                    )
                ),
            )
        except RuntimeError as e:
            notes.append(f"Dask row with {n} workers failed: {str(e)[-300:]}")
            continue
        row(
            "cooccur",
            f"seqkernels on Dask, {n} worker process{'es' if n > 1 else ''} x 1 thread",
            w,
            res,
            "kernel_seconds",
            records=res["records"],
            shards=res["shards"],
            parts=res["parts"],
            check=same_bytes(dask_out, work / f"cooc-w{w}.bin", "the local API's"),
        )
        dask_out.unlink()

    # -- training --
    hz.log(f"training {args.epochs} epochs ...")
    w = windows[0]
    tr = with_json(
        run([py, "-c", API_TRAIN, work / f"cooc-w{w}.bin", vocab_txt, args.epochs + 1, args.vector_size, T], env=env)
    )
    tr["epoch"] = float(np.median(tr["epoch_seconds"]))
    tr["all_seconds"] = [round(x, 4) for x in tr["epoch_seconds"]]
    row(
        f"train epoch (D={args.vector_size})",
        f"seqkernels, {T} Hogwild threads",
        w,
        tr,
        "epoch",
        check=f"cost {tr['costs'][0]:.4f} -> {tr['costs'][-1]:.4f}",
        records=tr["records"],
        records_per_s=tr["records"] / tr["epoch"],
    )

    # -- derived columns --
    for r in rows:
        r["tokens_per_s"] = tokens / r["seconds"] if not r["step"].startswith("train") else None
        base = next(
            (
                b
                for b in rows
                if b.get("stanford")
                and (b["step"], b["window"], b.get("memory")) == (r["step"], r["window"], r.get("memory"))
            ),
            None,
        )
        if base is not None and not r.get("stanford"):
            r["vs_stanford"] = base["seconds"] / r["seconds"]
        elif r["step"] == "cooccur" and not r.get("stanford") and r["window"] == 10 and not have_stanford:
            r["vs_stanford"] = r["tokens_per_s"] / ISSUE_BASELINE_TOKENS_PER_S
    if have_stanford:
        notes.append(
            f"Stanford baseline: binaries in {stanford} (vocab_count, cooccur from stanfordnlp/GloVe src/, "
            "built with -O3 -march=native -funroll-loops), timed in this run on the same corpus"
        )
    else:
        notes.append(
            "Stanford baseline: not built here; 'vs Stanford' at window 10 uses the 0.7M tokens/s figure "
            "quoted in issue 5"
        )
    notes.append(f"peak RSS includes the Python interpreter with seqkernels imported: {floor:.0f} MiB on its own")
    notes.append("OPENBLAS_NUM_THREADS=1 in the seqkernels processes (NumPy's OpenBLAS threads spin otherwise)")
    notes.append(
        "others CPU %: the machine's CPU time used by other processes during a row (2 shared cores); "
        "timings are the fastest of --repeats runs"
    )

    payload = {
        "benchmark": "glove",
        "device": "cpu",
        "argv": sys.argv[1:] if argv is None else argv,
        "settings": vars(args),
        "corpus": {**corpus_info, "path": str(corpus)},
        "python_floor_rss_mb": floor,
        "stanford_baseline": "measured" if have_stanford else "issue figure 0.7M tokens/s",
        "notes": notes,
        "machine": hz.machine_info(),
        "seconds": time.perf_counter() - t_start,
        "rows": rows,
    }
    path = Path(args.json) if args.json else hz.results_path("glove", "cpu", results_dir)
    hz.write_json(path, payload)
    hz.log(f"wrote {path}")

    def fmt_check(v):
        return v if len(v) < 46 else v[:43] + "..."

    print(
        f"GloVe on {tokens:,} tokens ({corpus_info['bytes'] / 1e6:.0f} MB), vocabulary {words:,} words "
        f"(min count {args.min_count}), -memory {args.memory} GB, {T} threads"
    )
    print(
        hz.format_table(
            rows,
            [
                ("step", "step", "s"),
                ("impl", "implementation", "s"),
                ("window", "window", "d"),
                ("seconds", "min s", ".2f"),
                ("median_seconds", "median s", ".2f"),
                ("tokens_per_s", "M tokens/s", lambda v: f"{v / 1e6:.2f}"),
                ("vs_stanford", "x Stanford", ".1f"),
                ("peak_rss_mb", "peak RSS MiB", ".0f"),
                ("temp_mb", "temp MiB", ".0f"),
                ("others_cpu_pct", "others CPU %", ".0f"),
                ("check", "check", fmt_check),
            ],
        )
    )
    for n in notes:
        print("  - " + n)
    return 0
