"""`seqkernels demo words --quick`: end to end in a subprocess (a few seconds): both models' neighbours
and analogies side by side, and the t-SNE picture."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_demo_words_quick(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    png = tmp_path / "words.png"
    p = subprocess.run(
        [sys.executable, "-m", "seqkernels", "demo", "words", "--quick", "--no-progress", "--plot", str(png)],
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
    )
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    for expected in (
        "demo words",
        "corpus:",
        "GloVe:",
        "skip-gram:",
        "nearest neighbours",
        "analogies",
        "list : lists :: string : ?",
        "t-SNE picture of",
    ):
        assert expected in out, out
    row = next(line for line in out.splitlines() if line.startswith("list "))
    assert len(row.split(",")) >= 5  # five neighbours from each model
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_demo_words_without_picture(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "seqkernels", "demo", "words", "--quick", "--no-progress", "--no-plot"],
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert "t-SNE" not in p.stdout.decode() and not list(tmp_path.glob("*.png"))
