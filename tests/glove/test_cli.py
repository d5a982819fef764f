"""`seqkernels glove ...`: Stanford's command lines end to end, in a subprocess with real stdin and
stdout redirections; every failure exits non-zero with one clear line and leaves no partial output."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from seqkernels import build_info
from seqkernels.glove import Cooccurrence, Vocabulary, cooccurrence

from .corpora import CORPORA
from .planted import planted_lines


def glove(args: list[str], cwd, stdin: str | None = None, stdout: str | None = None):
    """Runs `python -m seqkernels glove ARGS < stdin > stdout` in cwd; returns (code, stderr)."""
    fin = open(os.path.join(cwd, stdin), "rb") if stdin else subprocess.DEVNULL
    fout = open(os.path.join(cwd, stdout), "wb") if stdout else subprocess.PIPE
    try:
        p = subprocess.run(
            [sys.executable, "-m", "seqkernels", "glove", *args],
            cwd=cwd,
            stdin=fin,
            stdout=fout,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    finally:
        for f in (fin, fout):
            if hasattr(f, "close"):
                f.close()
    return p.returncode, p.stderr.decode()


@pytest.fixture
def work(tmp_path):
    (tmp_path / "corpus.txt").write_text("\n".join(planted_lines(1500)) + "\n")
    return tmp_path


def test_stanford_pipeline(work):
    code, err = glove(["vocab-count", "-min-count", "2", "-verbose", "2"], work, "corpus.txt", "vocab.txt")
    assert code == 0, err
    assert "Using vocabulary of size" in err
    corpus = (work / "corpus.txt").read_bytes()
    vocab = Vocabulary.from_corpus(corpus, min_count=2)
    assert Vocabulary.load(work / "vocab.txt") == vocab

    # -memory counts the whole process; under AddressSanitizer its shadow memory alone exceeds 0.1 GB
    memory = "0.5" if build_info()["address_sanitizer"] else "0.1"
    code, err = glove(
        [
            "cooccur",
            "-vocab-file",
            "vocab.txt",
            "-window-size",
            "6",
            "-symmetric",
            "1",
            "-distance-weighting",
            "1",
            "-memory",
            memory,
            "-threads",
            "2",
        ],
        work,
        "corpus.txt",
        "cooc.bin",
    )
    assert code == 0, err
    cooccurrence(corpus, vocab, window_size=6).save(work / "api.bin")
    assert (work / "cooc.bin").read_bytes() == (work / "api.bin").read_bytes()

    code, err = glove(["shuffle", "-memory", "1.0", "-seed", "5"], work, "cooc.bin", "cooc.shuf.bin")
    assert code == 0, err
    a, b = (Cooccurrence.load(work / name) for name in ("cooc.bin", "cooc.shuf.bin"))
    assert sorted(zip(a.rows, a.cols, a.values)) == sorted(zip(b.rows, b.cols, b.values))
    assert not np.array_equal(a.rows, b.rows)

    code, err = glove(
        [
            "train",
            "-input-file",
            "cooc.shuf.bin",
            "-vocab-file",
            "vocab.txt",
            "-save-file",
            "vectors",
            "-vector-size",
            "8",
            "-iter",
            "4",
            "-x-max",
            "10",
            "-eta",
            "0.05",
            "-alpha",
            "0.75",
            "-binary",
            "2",
            "-model",
            "2",
            "-threads",
            "2",
            "-seed",
            "7",
            "-write-header",
            "1",
            "-checkpoint-every",
            "2",
        ],
        work,
    )
    assert code == 0, err
    assert err.count("iter: ") == 4 and "Using random seed 7" in err
    lines = (work / "vectors.txt").read_text().splitlines()
    assert lines[0] == f"{len(vocab)} 8" and len(lines) == len(vocab) + 2 and lines[-1].startswith("<unk> ")
    assert (work / "vectors.bin").stat().st_size == 2 * len(vocab) * 9 * 8
    assert (work / "vectors.002.txt").exists() and (work / "vectors.004.bin").exists()
    assert not [f for f in os.listdir(work) if f.endswith(".partial")]


@pytest.mark.parametrize(
    "args, stdin_bytes, message",
    [
        (["vocab-count"], b"a b <unk> c\n", "reserved token <unk>"),
        (["vocab-count"], b"", "contains no tokens"),
        (["vocab-count", "-min-count", "0"], b"a\n", "-min-count"),
        (["cooccur", "-vocab-file", "missing.txt"], b"a b\n", "missing.txt"),
        (["cooccur", "-vocab-file", "bad_vocab.txt"], b"a b\n", "line 2: expected 'word count'"),
        (["cooccur", "-vocab-file", "vocab.txt", "-window-size", "0"], b"a b\n", "window_size"),
        (["cooccur", "-vocab-file", "vocab.txt", "-memory", "0.000001"], b"a b\n", "too small to hold one run"),
        (["cooccur", "-vocab-file", "vocab.txt", "-device", "cuda"], b"a b\n", "CUDA co-occurrence path is not built"),
        (["cooccur", "-vocab-file", "vocab.txt", "-symmetric", "2"], b"a b\n", "-symmetric: expected 0 or 1"),
        (["shuffle"], b"x" * 17, "truncated or corrupt"),
    ],
)
def test_errors_leave_no_output(tmp_path, args, stdin_bytes, message):
    (tmp_path / "vocab.txt").write_text("a 2\nb 1\n")
    (tmp_path / "bad_vocab.txt").write_text("a 2\nb\n")
    (tmp_path / "in").write_bytes(stdin_bytes)
    code, err = glove(args, tmp_path, "in", "out")
    assert code == 1, err
    assert message in err and err.strip().splitlines()[-1].startswith(f"seqkernels glove {args[0]}: error:")
    assert (tmp_path / "out").stat().st_size == 0


@pytest.mark.parametrize(
    "extra, content, message",
    [
        ([], None, "cooccurrence.shuf.bin"),  # missing input file
        ([], b"\x00" * 20, "truncated or corrupt"),
        ([], np.array([(1, 7, 1.0)], dtype="<i4,<i4,<f8").tobytes(), "outside 1..2"),
        (["-model", "5"], np.array([(1, 2, 1.0)], dtype="<i4,<i4,<f8").tobytes(), "-model: expected 0, 1 or 2"),
        (["-device", "cuda"], np.array([(1, 2, 1.0)], dtype="<i4,<i4,<f8").tobytes(), "no CUDA device"),
    ],
)
def test_train_errors_write_nothing(tmp_path, extra, content, message):
    if "-device" in extra:
        import seqkernels

        if seqkernels.cuda_available():
            pytest.skip("a GPU is present: -device cuda trains")
    (tmp_path / "vocab.txt").write_text("a 2\nb 1\n")
    if content is not None:
        (tmp_path / "cooccurrence.shuf.bin").write_bytes(content)
    code, err = glove(["train", "-iter", "1", *extra], tmp_path)
    assert code == 1 and message in err, err
    assert sorted(os.listdir(tmp_path)) == sorted(["vocab.txt"] + (["cooccurrence.shuf.bin"] if content else []))


def test_unknown_flags_and_interactive_stdin(tmp_path):
    code, err = glove(["cooccur", "-window", "5"], tmp_path)
    assert code == 2 and "unrecognized arguments" in err
    code, err = glove(["vocab-count", "-min-count", "2"], tmp_path, stdin=None)
    assert code == 1 and "contains no tokens" in err  # /dev/null is not a terminal: an empty corpus


def test_progress_goes_to_stderr(tmp_path):
    (tmp_path / "c.txt").write_bytes(CORPORA["zipf"]() * 50)
    code, err = glove(["vocab-count", "-verbose", "2"], tmp_path, "c.txt", "v.txt")
    assert code == 0 and "BUILDING VOCABULARY" in err
    assert all(len(line.split(b" ")) == 2 for line in (tmp_path / "v.txt").read_bytes().splitlines())


def _pipe_bytes(pipe) -> int:
    """Bytes written to a pipe and not yet read (Linux answers FIONREAD on either end)."""
    import array
    import fcntl
    import termios

    n = array.array("i", [0])
    fcntl.ioctl(pipe.fileno(), termios.FIONREAD, n)
    return n[0]


def test_ctrl_c_while_waiting_on_a_pipe(tmp_path):
    """SIGINT stops a cooccur blocked on stdin: status 130, no output."""
    import signal
    import time

    (tmp_path / "vocab.txt").write_text("a 2\nb 1\n")
    with open(tmp_path / "out.bin", "wb") as out:
        p = subprocess.Popen(
            [sys.executable, "-m", "seqkernels", "glove", "cooccur", "-vocab-file", "vocab.txt"],
            cwd=tmp_path,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        p.stdin.write(b"a b a b\n" * 1000)
        p.stdin.flush()
        # Wait until the reader has drained the pipe (so it is blocked reading the open pipe, however
        # long the interpreter took to start on a busy machine), then a moment more.
        deadline = time.monotonic() + 120
        while _pipe_bytes(p.stdin) and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.05)
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=30)  # stdin stays open: only the signal can end the read
        finally:
            p.stdin.close()
            p.kill()
        err = p.stderr.read()
        p.stderr.close()
    assert p.returncode == 130, err.decode()
    assert b"interrupted" in err and (tmp_path / "out.bin").stat().st_size == 0
