"""`seqkernels word2vec train`: word2vec.c's command line end to end, in a subprocess; errors exit 1
with one line and leave no output file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from seqkernels.glove import Vocabulary, WordVectors

from ..glove.planted import planted_lines


def word2vec(args, cwd):
    p = subprocess.run(
        [sys.executable, "-m", "seqkernels", "word2vec", "train", *args],
        cwd=cwd,
        capture_output=True,
        timeout=120,
    )
    return p.returncode, p.stderr.decode()


@pytest.fixture
def work(tmp_path):
    (tmp_path / "corpus.txt").write_text("\n".join(planted_lines(800)) + "\n")
    return tmp_path


@pytest.mark.parametrize("binary", [0, 1])
def test_train_writes_word2vec_vectors(work, binary):
    code, err = word2vec(
        [
            "-train",
            "corpus.txt",
            "-output",
            "vec",
            "-cbow",
            "0",
            "-size",
            "11",
            "-window",
            "3",
            "-negative",
            "3",
            "-sample",
            "1e-3",
            "-iter",
            "2",
            "-min-count",
            "2",
            "-threads",
            "2",
            "-binary",
            str(binary),
            "-save-vocab",
            "vocab.txt",
            "-verbose",
            "1",
        ],
        work,
    )
    assert code == 0, err
    assert "Vocab size:" in err and "iter 2:" in err
    vocab = Vocabulary.load(work / "vocab.txt")
    wv = WordVectors.load(work / "vec", binary=bool(binary))
    assert wv.words == vocab.words and wv.dim == 11 and np.all(np.isfinite(wv.vectors))
    # -read-vocab takes that vocabulary back (CBOW this time, default flags otherwise)
    code, err = word2vec(
        [
            "-train",
            "corpus.txt",
            "-output",
            "vec2.txt",
            "-read-vocab",
            "vocab.txt",
            "-size",
            "5",
            "-iter",
            "1",
            "-verbose",
            "0",
        ],
        work,
    )
    assert code == 0, err
    assert WordVectors.load(work / "vec2.txt").words == vocab.words


@pytest.mark.parametrize(
    "args,message",
    [
        (["-output", "v"], "-train and -output are required"),
        (["-train", "corpus.txt", "-output", "v", "-hs", "1"], "hierarchical softmax"),
        (["-train", "corpus.txt", "-output", "v", "-cbow", "2"], "-cbow: expected 0 or 1"),
        (["-train", "missing.txt", "-output", "v"], "no such file"),
        (["-train", "corpus.txt", "-output", "v", "-size", "0"], "vector_size"),
        (["-train", "corpus.txt", "-output", "v", "-min-count", "100000"], "min_count"),
    ],
)
def test_errors_are_one_line_and_leave_nothing(work, args, message):
    code, err = word2vec(args + ["-verbose", "0"], work)
    assert code == 1
    assert message in err and err.startswith("seqkernels word2vec train: error:"), err
    assert len(err.strip().splitlines()) == 1
    assert not (work / "v").exists()


def test_abbreviated_flags_are_rejected(work):
    code, err = word2vec(["-train", "corpus.txt", "-out", "v"], work)
    assert code == 2 and "unrecognized arguments" in err
