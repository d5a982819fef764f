"""Co-occurrence counting on Dask (seqkernels.glove.distributed): byte identity with the local count
for any number of shards and workers, a worker killed mid-run, and bad input."""

import os
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest

from seqkernels.glove import Vocabulary, write_cooccurrence
from seqkernels.glove.distributed import _reduce_task, plan_shards, row_ranges

from .corpora import zipf_lines
from .planted import planted_lines

distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed (pip install '.[dask]')")
pytest.importorskip("fsspec", reason="fsspec is not installed (pip install '.[dask]')")


def _corpus(tmp_path):
    text = ("\n".join(planted_lines(600)) + "\n").encode() + zipf_lines(7, lines=200)
    path = tmp_path / "corpus.txt"
    path.write_bytes(text if text.endswith(b"\n") else text + b"\n")
    return path, Vocabulary.from_corpus(str(path), min_count=2)


def _local_cluster(workers, silence=40):
    """Worker processes with a nanny each (a killed worker is restarted), one thread each, no
    dashboard (a random port, so that clusters of parallel test runs do not collide)."""
    return distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=silence
    )


@pytest.fixture(scope="module")
def cluster():
    with _local_cluster(2) as c, distributed.Client(c) as client:
        yield c, client


def _local(path, vocab, tmp_path, **kw):
    out = tmp_path / "local.bin"
    write_cooccurrence(str(path), vocab, out, threads=1, **kw)
    return out.read_bytes()


@pytest.mark.parametrize("shards", [1, 2, 3])
@pytest.mark.parametrize("symmetric,window", [(True, 10), (False, 5)])
def test_shards_give_the_local_bytes(cluster, tmp_path, shards, symmetric, window):
    _, client = cluster
    path, vocab = _corpus(tmp_path)
    expected = _local(path, vocab, tmp_path, window_size=window, symmetric=symmetric)
    size = path.stat().st_size
    out = tmp_path / "dask.bin"
    stats = write_cooccurrence(
        str(path),
        vocab,
        out,
        window_size=window,
        symmetric=symmetric,
        threads=1,
        client=client,
        shard_bytes=size // shards + 1,
        work_dir=tmp_path,
    )
    assert stats["shards"] == shards
    assert out.read_bytes() == expected
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("cooccur-")] == []  # intermediates removed


def test_one_worker_and_small_memory_spills(tmp_path):
    path, vocab = _corpus(tmp_path)
    expected = _local(path, vocab, tmp_path, window_size=8)
    with _local_cluster(1, 40) as c, distributed.Client(c) as client:
        out = tmp_path / "dask.bin"
        stats = write_cooccurrence(
            str(path),
            vocab,
            out,
            window_size=8,
            threads=1,
            client=client,
            shard_bytes=path.stat().st_size // 3 + 1,
            overflow_length=200,
            max_product=4,
        )
    assert stats["shards"] == 3 and stats["runs_spilled"] > 0
    assert out.read_bytes() == expected


def test_several_files_and_the_api_result(cluster, tmp_path):
    _, client = cluster
    path, vocab = _corpus(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"".join(lines[: len(lines) // 2]))
    b.write_bytes(b"".join(lines[len(lines) // 2 :]))
    from seqkernels.glove import cooccurrence

    local = cooccurrence(str(path), vocab, window_size=10, threads=1)
    remote = cooccurrence([str(a), f"file://{b}"], vocab, window_size=10, threads=1, client=client, shard_bytes=4096)
    assert remote.stats["shards"] > 2
    np.testing.assert_array_equal(remote.rows, local.rows)
    np.testing.assert_array_equal(remote.cols, local.cols)
    assert remote.values.tobytes() == local.values.tobytes()


class _KillOnFirstMap(distributed.WorkerPlugin):
    """Kills its worker process (SIGKILL) shortly after the first map task of the run starts there;
    a marker file makes it happen once in the whole cluster."""

    def __init__(self, marker):
        self.marker = marker

    def setup(self, worker):
        self.pid = os.getpid()

    def transition(self, key, start, finish, **kwargs):
        name = key if isinstance(key, str) else str(key)
        if finish == "executing" and "cooccur-map" in name:
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.close(fd)
            import threading

            threading.Timer(0.05, os.kill, (self.pid, signal.SIGKILL)).start()


def test_a_killed_worker_is_retried_and_the_output_is_the_same(tmp_path):
    path, vocab = _corpus(tmp_path)
    expected = _local(path, vocab, tmp_path, window_size=10)
    marker = tmp_path / "killed"
    with _local_cluster(2, 50) as c, distributed.Client(c) as client:
        client.register_plugin(_KillOnFirstMap(str(marker)), name="kill-once")
        out = tmp_path / "dask.bin"
        write_cooccurrence(
            str(path),
            vocab,
            out,
            window_size=10,
            threads=1,
            client=client,
            shard_bytes=path.stat().st_size // 3 + 1,
            work_dir=tmp_path,
        )
    assert marker.exists()
    assert out.read_bytes() == expected


# ---- bad input: one clear error, no output ----------------------------------------------------------
def test_unreadable_shard(cluster, tmp_path):
    _, client = cluster
    _, vocab = _corpus(tmp_path)
    out = tmp_path / "out.bin"
    with pytest.raises(FileNotFoundError, match="no such file.*missing.txt"):
        write_cooccurrence([str(tmp_path / "missing.txt")], vocab, out, client=client)
    assert not out.exists()
    if os.geteuid() != 0:
        locked = tmp_path / "locked.txt"
        locked.write_text("a b\n")
        locked.chmod(0)
        with pytest.raises(OSError, match="cannot read.*locked.txt"):
            write_cooccurrence([str(locked)], vocab, out, client=client)
        assert not out.exists()


def test_vocabulary_mismatch_is_refused(tmp_path):
    result = {"shard": 0, "runs": [str(tmp_path / "none.run")], "vocabulary": "0123", "vocab_size": 5}
    with pytest.raises(ValueError, match="vocabulary mismatch: shard 0 .* 5 words"):
        _reduce_task(0, [result], "abcd", 6, 1.0, str(tmp_path), None, 64)


def test_unreachable_scheduler(tmp_path):
    path, vocab = _corpus(tmp_path)
    out = tmp_path / "out.bin"
    with pytest.raises(OSError, match="cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"):
        write_cooccurrence(str(path), vocab, out, client="tcp://127.0.0.1:9")
    assert not out.exists()
    vocab.save(tmp_path / "vocab.txt")
    with open(tmp_path / "cli.bin", "wb") as stdout:
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "seqkernels",
                "glove",
                "cooccur",
                "-vocab-file",
                "vocab.txt",
                "-scheduler",
                "tcp://127.0.0.1:9",
                "-corpus",
                str(path),
            ],
            cwd=tmp_path,
            stdout=stdout,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    assert p.returncode == 1
    assert b"cannot reach the Dask scheduler" in p.stderr
    assert (tmp_path / "cli.bin").read_bytes() == b""


def _limit_file_size(limit):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def test_disk_full_in_the_work_dir(tmp_path):
    path, vocab = _corpus(tmp_path)
    out = tmp_path / "out.bin"
    with _local_cluster(1, 50) as c, distributed.Client(c) as client:
        client.run(_limit_file_size, 1024)  # stands in for a full disk: the workers' writes fail
        with pytest.raises(RuntimeError, match="writing a run file failed \\(is the disk full\\?\\)"):
            write_cooccurrence(str(path), vocab, out, window_size=10, client=client, work_dir=tmp_path)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("cooccur-")] == []


def test_plan_and_ranges(tmp_path):
    f = tmp_path / "c.txt"
    f.write_bytes(b"a b\nccc\n\nd\n" * 50)
    shards = plan_shards([str(f)], 7)
    data = f.read_bytes()
    assert b"".join(data[a:b] for _, a, b in shards) == data
    assert all(a == 0 or data[a - 1 : a] == b"\n" for _, a, _ in shards)
    firsts = row_ranges(np.array([1000, 500, 10, 5, 1, 1, 1, 1]), 3)
    assert firsts[0] == 1 and firsts == sorted(set(firsts)) and len(firsts) <= 3
    with pytest.raises(ValueError, match="shard_bytes"):
        plan_shards([str(f)], 0)


def test_cli_on_a_scheduler(cluster, tmp_path):
    c, _ = cluster
    path, vocab = _corpus(tmp_path)
    expected = _local(path, vocab, tmp_path, window_size=10)
    vocab.save(tmp_path / "vocab.txt")
    with open(tmp_path / "cli.bin", "wb") as stdout:
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "seqkernels",
                "glove",
                "cooccur",
                "-vocab-file",
                "vocab.txt",
                "-window-size",
                "10",
                "-threads",
                "1",
                "-scheduler",
                c.scheduler_address,
                "-corpus",
                str(path),
                "-shard-mb",
                str(path.stat().st_size / 2**20 / 2.5),
                "-work-dir",
                str(tmp_path),
                "-verbose",
                "2",
            ],
            cwd=tmp_path,
            stdout=stdout,
            stderr=subprocess.PIPE,
            timeout=300,
        )
    assert p.returncode == 0, p.stderr.decode()
    assert b"in 3 shards on 2 workers" in p.stderr
    assert (tmp_path / "cli.bin").read_bytes() == expected
