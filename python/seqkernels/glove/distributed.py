"""Co-occurrence counting on a Dask cluster: ``cooccurrence(paths, vocab, client=...)``.

The corpus (one or more files, local paths or any URL fsspec opens) is cut into shards at line
ends: Stanford's window never crosses a line end, so counting shards separately loses no pair. Map
tasks count one shard each with the C++ counter into one sorted run file per row range, values
kept as the exact integer sums (weights scaled by lcm(1..window)); reduce tasks merge one row range
from every shard and divide by the scale once. The sums are exact, so the parts concatenated in
order are byte-identical to the single-machine ``cooccur`` output, for any number of shards and
workers (windows up to 22 with distance weighting, any window without it; beyond 22 the weights are
not integers and the last bits may differ).

Intermediate runs go to ``work_dir``, which every worker must be able to read and write (a shared
filesystem path or an fsspec URL); each worker holds at most ``memory`` GB of counting tables plus
one shard's bytes. Task outputs are written under temporary names and renamed, so a task that Dask
reruns after a worker died overwrites nothing half-written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import uuid

import numpy as np

from .. import _C

__all__ = ["cooccurrence_on_dask", "plan_shards", "row_ranges", "connect"]

_READ_CHUNK = 1 << 22


def _require_dask():
    try:
        import distributed  # noqa: F401
        import fsspec  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "the Dask co-occurrence path needs dask[distributed] and fsspec: pip install 'seqkernels[dask]'"
        ) from e


def connect(scheduler, timeout: float = 10.0):
    """A ``distributed.Client`` for ``scheduler`` (a Client is returned as is; an address is
    connected to). An unreachable scheduler is an OSError naming the address."""
    _require_dask()
    from distributed import Client

    if isinstance(scheduler, Client):
        return scheduler
    if not isinstance(scheduler, str) or not scheduler:
        raise TypeError(f"client: expected a distributed.Client or a scheduler address, got {scheduler!r}")
    try:
        return Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as e:
        raise OSError(f"cannot reach the Dask scheduler at '{scheduler}' within {timeout:g} s: {e}") from None


def _fs(url):
    import fsspec

    fs, path = fsspec.core.url_to_fs(os.fspath(url))
    return fs, path


def plan_shards(paths, shard_bytes: int) -> list[tuple[str, int, int]]:
    """(url, start, stop) byte ranges of about ``shard_bytes`` each, every one starting at the
    beginning of a file or just after a newline. A missing or unreadable file is an error here,
    before any task runs."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("corpus: expected at least one path or URL")
    if isinstance(shard_bytes, bool) or not isinstance(shard_bytes, (int, np.integer)) or shard_bytes < 1:
        raise ValueError(f"shard_bytes: expected a positive integer, got {shard_bytes!r}")
    shards = []
    for url in paths:
        fs, path = _fs(url)
        try:
            size = fs.size(path)
            with fs.open(path, "rb") as f:
                f.read(1)
        except FileNotFoundError:
            raise FileNotFoundError(f"corpus: no such file: '{url}'") from None
        except (OSError, PermissionError) as e:
            raise OSError(f"corpus: cannot read '{url}': {e}") from None
        if size is None:
            raise OSError(f"corpus: cannot tell the size of '{url}'")
        if size == 0:
            continue
        bounds = [0]
        with fs.open(path, "rb") as f:
            target = shard_bytes
            while target < size:
                f.seek(target - 1)
                pos = target - 1
                while True:  # the first newline at or after target - 1
                    block = f.read(1 << 16)
                    if not block:
                        pos = size
                        break
                    k = block.find(b"\n")
                    if k >= 0:
                        pos += k + 1
                        break
                    pos += len(block)
                if pos >= size:
                    break
                bounds.append(pos)
                target = pos + shard_bytes
        bounds.append(size)
        shards += [(url, a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    if not shards:
        raise ValueError("corpus: every file is empty")
    return shards


def row_ranges(counts, parts: int) -> list[int]:
    """First rows (1-based) of ``parts`` row ranges with about equal expected records, for word
    counts in rank order: row r holds about min(V, count_r) records (its distinct contexts), which
    puts the frequent words in ranges of their own."""
    counts = np.asarray(counts, dtype=np.float64)
    V = len(counts)
    parts = max(1, min(int(parts), V))
    work = np.minimum(counts, V) + 1.0
    cum = np.cumsum(work)
    firsts = [1]
    for k in range(1, parts):
        r = int(np.searchsorted(cum, cum[-1] * k / parts)) + 2  # 1-based row after the k-th quantile
        if r > firsts[-1] and r <= V:
            firsts.append(r)
    return firsts


def _is_local(fs) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def _vocabulary_digest(words: list[bytes]) -> str:
    h = hashlib.sha256()
    for w in words:
        h.update(w)
        h.update(b"\n")
    return h.hexdigest()[:16]


def _join(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


@contextlib.contextmanager
def _scratch_path(path: str):
    """A fresh path (beside ``path`` if given, else in the local temp directory), removed at the end."""
    if path:
        tmp = f"{path}.{uuid.uuid4().hex}.partial"
    else:
        fd, tmp = tempfile.mkstemp(prefix="seqkernels-run-")
        os.close(fd)
    try:
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@contextlib.contextmanager
def _local_copy_for_writing(url: str):
    """A local path to write; afterwards it becomes ``url`` (renamed on a local filesystem,
    uploaded elsewhere), never visible half-written."""
    fs, path = _fs(url)
    local = _is_local(fs)
    with _scratch_path(path if local else None) as tmp:
        yield tmp
        if local:
            os.replace(tmp, path)
        else:
            fs.put_file(tmp, path)


@contextlib.contextmanager
def _local_copy_for_reading(url: str):
    """A local path holding ``url``'s bytes (the file itself on a local filesystem)."""
    fs, path = _fs(url)
    if _is_local(fs):
        yield path
        return
    with _scratch_path(None) as tmp:
        fs.get_file(path, tmp)
        yield tmp


def _read_shard(url: str, start: int, stop: int) -> bytes:
    fs, path = _fs(url)
    try:
        with fs.open(path, "rb") as f:
            f.seek(start)
            data = f.read(stop - start)
    except OSError as e:
        raise OSError(f"corpus: cannot read '{url}' (bytes {start}..{stop}): {e}") from None
    if len(data) != stop - start:
        raise OSError(f"corpus: '{url}' changed while counting (bytes {start}..{stop} read {len(data)})")
    return data


def _vocabulary_task(words: list[bytes]) -> list[bytes]:
    return words


def _map_task(
    shard_index: int,
    url: str,
    start: int,
    stop: int,
    words: list[bytes],
    digest: str,
    opts: dict,
    first_rows: list[int],
    work_dir: str,
) -> dict:
    """Counts one shard into one run file per row range; returns their URLs and the statistics."""
    data = _read_shard(url, start, stop)
    if not data.endswith(b"\n"):
        data += b"\n"  # every shard (and file) ends a line
    urls = [_join(work_dir, f"map-{shard_index:06d}-{k:04d}.run") for k in range(len(first_rows))]
    with contextlib.ExitStack() as stack:
        locals_ = [stack.enter_context(_local_copy_for_writing(u)) for u in urls]
        files = [stack.enter_context(open(p, "wb")) for p in locals_]
        stats, counts = _C.glove_cooccur_runs(data, words, [f.fileno() for f in files], first_rows, **opts)
        for f in files:
            f.flush()
    return {
        "shard": shard_index,
        "runs": urls,
        "records": list(counts),
        "stats": dict(stats),
        "vocabulary": digest,
        "vocab_size": len(words),
    }


def _reduce_task(
    part: int,
    map_results: list[dict],
    digest: str,
    vocab_size: int,
    scale: float,
    work_dir: str,
    temp_dir: str | None,
    max_open_runs: int,
) -> dict:
    """Merges row range ``part`` of every shard's runs into the part file ``part-NNNN.bin``."""
    for m in map_results:
        if m["vocabulary"] != digest or m["vocab_size"] != vocab_size:
            raise ValueError(
                f"vocabulary mismatch: shard {m['shard']} was counted with a vocabulary of "
                f"{m['vocab_size']} words (digest {m['vocabulary']}), this count uses {vocab_size} "
                f"words (digest {digest})"
            )
    url = _join(work_dir, f"part-{part:04d}.bin")
    with contextlib.ExitStack() as stack:
        inputs = [stack.enter_context(_local_copy_for_reading(m["runs"][part])) for m in map_results]
        local = stack.enter_context(_local_copy_for_writing(url))
        with open(local, "wb") as f:
            records = _C.glove_merge_runs(inputs, scale, f.fileno(), temp_dir or tempfile.gettempdir(), max_open_runs)
    return {"part": part, "url": url, "records": int(records)}


def cooccurrence_on_dask(
    corpus,
    words: list[bytes],
    counts,
    opts: dict,
    client,
    output_fd: int,
    shard_bytes: int = 64 << 20,
    parts: int | None = None,
    work_dir=None,
    max_open_runs: int = 64,
) -> dict:
    """Counts on the cluster and writes cooccurrence.bin records to ``output_fd`` (see the module
    docstring). Returns the summed statistics. Every intermediate file is removed at the end."""
    _require_dask()
    client = connect(client)
    shards = plan_shards(corpus, shard_bytes)
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    parts = parts or max(1, 2 * workers)
    first_rows = row_ranges(counts, parts)
    digest = _vocabulary_digest(words)
    scale = _C.glove_value_scale(opts["window_size"], opts["distance_weighting"])
    own_dir = work_dir is None
    if own_dir:
        work_dir = tempfile.mkdtemp(prefix="seqkernels-dask-")
    run_dir = _join(os.fspath(work_dir), f"cooccur-{uuid.uuid4().hex[:12]}")
    fs, run_path = _fs(run_dir)
    fs.makedirs(run_path, exist_ok=True)
    map_opts = {k: v for k, v in opts.items() if k != "temp_dir"}
    try:
        # The vocabulary as the result of a task, not scattered data: if the worker holding it dies,
        # the scheduler recomputes it (scattered data would be lost, and every map task with it).
        # One future for the whole list: scattering the list made one per word.
        words_future = client.submit(
            _vocabulary_task, words, key=f"seqkernels-cooccur-vocab-{uuid.uuid4().hex}", pure=False
        )
        maps = [
            client.submit(
                _map_task,
                i,
                url,
                a,
                b,
                words_future,
                digest,
                map_opts,
                first_rows,
                run_dir,
                key=f"seqkernels-cooccur-map-{uuid.uuid4().hex}",
                pure=False,
            )
            for i, (url, a, b) in enumerate(shards)
        ]
        reduces = [
            client.submit(
                _reduce_task,
                k,
                maps,
                digest,
                len(words),
                scale,
                run_dir,
                None,
                max_open_runs,
                key=f"seqkernels-cooccur-reduce-{uuid.uuid4().hex}",
                pure=False,
            )
            for k in range(len(first_rows))
        ]
        map_results = client.gather(maps)
        part_results = client.gather(reduces)
        for p in sorted(part_results, key=lambda r: r["part"]):
            with _local_copy_for_reading(p["url"]) as local, open(local, "rb") as src:
                while True:
                    block = src.read(_READ_CHUNK)
                    if not block:
                        break
                    view = memoryview(block)
                    while view:
                        view = view[os.write(output_fd, view) :]
    finally:
        with contextlib.suppress(Exception):
            fs.rm(run_path, recursive=True)
        if own_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    stats = {
        k: sum(m["stats"][k] for m in map_results)
        for k in ("tokens", "kept_tokens", "runs_spilled", "spilled_records", "spilled_bytes")
    }
    stats.update(
        records=sum(p["records"] for p in part_results), shards=len(shards), parts=len(first_rows), workers=workers
    )
    return stats
