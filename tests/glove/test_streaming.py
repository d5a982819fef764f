"""Bounded-memory GloVe training (fit(memory=...), train -memory), resuming from a checkpoint, and a
full disk while counting."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from seqkernels.glove import GloVe, Vocabulary, cooccurrence
from seqkernels.glove.cooccurrence import RECORD

from .planted import planted_lines


@pytest.fixture(scope="module")
def planted_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("stream")
    lines = planted_lines(3000)
    vocab = Vocabulary.from_corpus(lines)
    cooc = cooccurrence(lines, vocab, window_size=6)
    cooc.save(d / "cooc.bin")
    vocab.save(d / "vocab.txt")
    return d, vocab, cooc


def test_streamed_training_reaches_the_in_memory_cost(planted_file, monkeypatch):
    d, vocab, cooc = planted_file
    kw = dict(vector_size=8, x_max=10, seed=3, threads=1)
    full = GloVe(**kw).fit(cooc, epochs=15, progress=False)
    # A limit with room for a third of the records per chunk (the process's own size pinned, so that
    # the chunking does not depend on it): three chunks per epoch.
    from seqkernels.glove import streaming

    monkeypatch.setattr(streaming, "resident_bytes", lambda: 2**26)
    V, D = len(vocab), 8
    chunk = len(cooc) // 3 + 1
    limit = (2**26 + streaming.HEADROOM_BYTES + 4 * V * (D + 1) * 8 + chunk * streaming.BYTES_PER_CHUNK_RECORD) / 2**30
    assert streaming.StreamPlan(limit, V, D, len(cooc)).chunk_records == chunk
    streamed = GloVe(**kw).fit(d / "cooc.bin", epochs=15, progress=False, vocab_size=V, memory=limit)
    assert streamed.costs_[-1] < streamed.costs_[0] / 2
    assert streamed.costs_[-1] == pytest.approx(full.costs_[-1], rel=0.1)
    wv = streamed.to_word_vectors(vocab)
    assert wv.analogy("man", "king", "woman") == "queen"


@pytest.mark.parametrize("chunk", [7, 100, 10**6])
def test_the_chunked_shuffle_is_a_permutation(planted_file, chunk):
    d, vocab, cooc = planted_file
    from seqkernels.glove.streaming import RecordFile

    seen = []
    with RecordFile(d / "cooc.bin", len(vocab)).shuffled(chunk, seed=1) as reader:
        for rows, cols, values in reader.chunks():
            assert len(rows) <= chunk
            seen.append(np.rec.fromarrays([rows.copy(), cols.copy(), values.copy()]))
    got = np.concatenate(seen)
    assert len(got) == len(cooc)
    original = np.rec.fromarrays([cooc.rows, cooc.cols, cooc.values])
    assert not np.array_equal(got, original)
    np.testing.assert_array_equal(np.sort(got, order=["f0", "f1"]), np.sort(original, order=["f0", "f1"]))


def test_memory_too_small_and_bad_files(planted_file, tmp_path):
    d, vocab, _ = planted_file
    with pytest.raises(ValueError, match="memory: 0.001 GB is too small"):
        GloVe(vector_size=8).fit(d / "cooc.bin", memory=0.001, vocab_size=len(vocab), progress=False)
    bad = tmp_path / "bad.bin"
    rec = np.zeros(3, dtype=RECORD)
    rec["word1"], rec["word2"], rec["value"] = [1, 2, len(vocab) + 5], [1, 1, 1], 1.0
    rec.tofile(bad)
    with pytest.raises(ValueError, match="another vocabulary: record 2 has ids"):
        GloVe(vector_size=8).fit(bad, memory=1.0, vocab_size=len(vocab), progress=False)
    with pytest.raises(ValueError, match="CPU only"):
        GloVe(vector_size=8).fit(bad, memory=1.0, vocab_size=len(vocab), progress=False, device="cuda")


RSS_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from seqkernels.glove import GloVe
    from seqkernels.glove.cooccurrence import RECORD
    from seqkernels.glove.streaming import resident_bytes
    path, V, margin = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    start = resident_bytes()
    limit = (start + margin) / 2**30
    model = GloVe(vector_size=4, x_max=10, seed=1, threads=1).fit(path, epochs=1, progress=False, vocab_size=V,
                                                                   memory=limit)
    peak = 0
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    print(start, peak, int(limit * 2**30), model.costs_[-1])
""")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc to read the peak RSS")
def test_peak_rss_stays_under_a_limit_far_below_the_file(tmp_path):
    V, n = 2000, 6_000_000  # 96 MB of records
    rng = np.random.default_rng(0)
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        for _ in range(6):
            rec = np.empty(n // 6, dtype=RECORD)
            rec["word1"] = rng.integers(1, V + 1, n // 6)
            rec["word2"] = rng.integers(1, V + 1, n // 6)
            rec["value"] = rng.random(n // 6) * 5 + 0.1
            rec.tofile(f)
    # The limit: what the process holds at the start (~35 MB: interpreter, NumPy, seqkernels) plus
    # 24 MB; the file (96 MB) is larger than the whole limit and 4x the room it leaves.
    margin = 24 * 2**20
    p = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, str(path), str(V), str(margin)], capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 0, p.stderr
    start, peak, limit, cost = p.stdout.split()
    assert path.stat().st_size > max(int(limit), 3 * (int(limit) - int(start)))
    assert int(peak) <= int(limit), f"peak RSS {int(peak) / 2**20:.1f} MiB over the limit {int(limit) / 2**20:.1f} MiB"
    assert np.isfinite(float(cost))


def _train(work, *extra, **popen):
    args = [
        sys.executable,
        "-m",
        "seqkernels",
        "glove",
        "train",
        "-input-file",
        "cooc.bin",
        "-vocab-file",
        "vocab.txt",
        "-save-file",
        "vectors",
        "-vector-size",
        "6",
        "-x-max",
        "10",
        "-threads",
        "1",
        "-seed",
        "7",
        "-binary",
        "1",
        "-verbose",
        "0",
        "-memory",
        "1.0",
        *extra,
    ]
    return subprocess.Popen(args, cwd=work, stderr=subprocess.PIPE, **popen)


def test_a_killed_run_resumes_from_its_last_checkpoint(planted_file, tmp_path):
    d, _, _ = planted_file
    for name in ("cooc.bin", "vocab.txt"):
        (tmp_path / name).write_bytes((d / name).read_bytes())
    # Long enough that the kill lands mid-run: 60 epochs ended ~0.1 s after the first checkpoint
    # appeared, which a loaded CI machine sometimes missed; 3000 take a few seconds.
    epochs = "3000"
    whole = tmp_path / "whole"
    whole.mkdir()
    for name in ("cooc.bin", "vocab.txt"):
        (whole / name).write_bytes((d / name).read_bytes())
    p = _train(whole, "-iter", epochs)
    assert p.communicate(timeout=600)[1] == b"" and p.returncode == 0

    p = _train(tmp_path, "-iter", epochs, "-checkpoint-every", "2")
    checkpoint = tmp_path / "vectors.checkpoint.npz"
    deadline = time.time() + 300
    while not checkpoint.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.communicate()
    assert checkpoint.exists()
    done = len(np.load(checkpoint)["costs"])
    assert 2 <= done < int(epochs)
    p = _train(tmp_path, "-iter", epochs, "-resume", "vectors.checkpoint.npz")
    assert p.communicate(timeout=600)[1] == b"" and p.returncode == 0
    assert (tmp_path / "vectors.bin").read_bytes() == (whole / "vectors.bin").read_bytes()


def test_resume_refuses_another_model(planted_file, tmp_path):
    d, vocab, cooc = planted_file
    m = GloVe(vector_size=8, seed=1, threads=1).fit(cooc, epochs=1, progress=False)
    m.save_checkpoint(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="shape"):
        GloVe(vector_size=5).fit(cooc, epochs=2, progress=False, resume=tmp_path / "c.npz")
    with pytest.raises(ValueError, match="x_max"):
        GloVe(vector_size=8, x_max=7).fit(cooc, epochs=2, progress=False, resume=tmp_path / "c.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a GloVe checkpoint"):
        GloVe(vector_size=8).fit(cooc, epochs=2, progress=False, resume=tmp_path / "junk.npz")


DISK_FULL_SCRIPT = textwrap.dedent("""
    import resource, signal, sys
    from seqkernels.glove import cooccurrence
    lines = open(sys.argv[1]).read().splitlines()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG: a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
    try:
        cooccurrence(lines, sorted(set(" ".join(lines).split())), window_size=10, overflow_length=64, max_product=1,
                     temp_dir=sys.argv[2])
    except RuntimeError as e:
        print(e)
        sys.exit(3)
""")


def test_a_full_temp_disk_is_one_clear_error(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(planted_lines(400)) + "\n")
    temp = tmp_path / "temp"
    temp.mkdir()
    p = subprocess.run(
        [sys.executable, "-c", DISK_FULL_SCRIPT, str(corpus), str(temp)], capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 3, p.stderr
    assert "is the disk full?" in p.stdout
    assert list(temp.iterdir()) == []
