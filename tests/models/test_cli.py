"""The ``seqkernels demo`` and ``seqkernels train-lm`` commands, run as a user would (subprocesses),
and the dates benchmark (seqkernels.benchmarks.seq2seq_dates) in its smoke mode."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from seqkernels.models import LanguageModel, load


def run(*args, cwd=None, timeout=60):
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def test_demo_quick(tmp_path):
    out = run(
        "-m",
        "seqkernels",
        "demo",
        "--quick",
        "--no-progress",
        "--plot",
        str(tmp_path / "loss.png"),
        "--save",
        str(tmp_path / "demo.npz"),
        "--threads",
        "1",
        cwd=tmp_path,
    )
    m = re.search(r"bits per character on held-out topics: ([\d.]+) before -> ([\d.]+) after", out)
    assert m, out
    before, after = float(m.group(1)), float(m.group(2))
    assert 5.5 < before < 7.5 and after < before - 1.0
    assert sum(line.startswith("  | ") for line in out.splitlines()) == 5  # sampled lines
    assert out.count("  beam   | ") == 6 and out.count("  greedy | ") == 6
    blocked = out.split("n-gram blocking (no 8-character string generated twice)")[1].split("\n\n")[0]
    for line in blocked.splitlines()[1:]:
        text = line.split(" | ", 1)[1]
        completion = text[len(next(p for p in ("The ", "Return ", "If the ") if text.startswith(p))) :]
        grams = [completion[i : i + 8] for i in range(len(completion) - 7)]
        assert len(grams) == len(set(grams)), line
    assert "wall time" in out and "device: CPU" in out
    assert ("loss curve:" in out and (tmp_path / "loss.png").exists()) or "matplotlib is not installed" in out
    assert isinstance(load(tmp_path / "demo.npz"), LanguageModel)


def test_train_lm_on_a_file(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(["the cat sat on the mat", "the dog ran", "", "a cat ran"] * 30), encoding="utf-8")
    out = run(
        "-m",
        "seqkernels",
        "train-lm",
        str(text),
        "--level",
        "word",
        "--hidden-size",
        "16",
        "--embedding-dim",
        "8",
        "--seconds",
        "5",
        "--epochs",
        "3",
        "--batch-size",
        "4",
        "--bptt",
        "8",
        "--lr",
        "0.02",
        "--no-progress",
        "--samples",
        "2",
        "--threads",
        "1",
        "--save",
        str(tmp_path / "m.npz"),
    )
    assert "word level" in out and "perplexity per token" in out and "model saved" in out
    lm = load(tmp_path / "m.npz")
    assert lm.vocab.level == "word" and "cat" in lm.vocab


@pytest.mark.parametrize("command", [[], ["demo"], ["train-lm"]])
def test_help(command):
    out = run("-m", "seqkernels", *command, "--help")
    assert "usage: seqkernels" in out
    if command:
        assert "--seconds" in out and "--epochs" in out


def test_cli_errors(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "seqkernels", "train-lm", str(tmp_path / "missing.txt")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "missing.txt" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "seqkernels", "demo", "--seconds", "-1"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "--seconds" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "seqkernels", "demo", "--no-repeat-ngram", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--no-repeat-ngram" in proc.stderr


def test_dates_bench_quick(tmp_path):
    out = run(
        "-m", "seqkernels.benchmarks.seq2seq_dates", "--quick", "--no-progress", "--out", str(tmp_path / "r.json")
    )
    assert "BLEU" in out
    payload = json.loads((tmp_path / "r.json").read_text())
    assert {"greedy", "beam", "stages", "training", "machine"} <= set(payload)
    assert payload["beam"]["beam_size"] == 5 and payload["greedy"]["beam_size"] == 1


def test_thread_tuning_keeps_a_valid_count_and_real_steps():
    from seqkernels import build_info, nn
    from seqkernels.models import Vocab

    lines = ["some text for the calibration steps"] * 200
    lm = LanguageModel(Vocab.build(lines), embedding_dim=4, hidden_size=8, seed=0)
    before = lm.head.params["weight"].copy()
    ms = lm.tune_threads(lines, optimizer=nn.Adam(lm, lr=1e-2), batch_size=4, bptt=8)
    cores = build_info()["team_threads"]
    if cores > 1:
        assert sorted(ms) == [1, cores] and all(v > 0 for v in ms.values())
        assert lm.rnn.num_threads == min(ms, key=ms.get)
        assert not np.array_equal(before, lm.head.params["weight"])  # the timed steps were real steps
    else:
        assert ms == {}
    assert lm.tune_threads(lines[:2], optimizer=nn.Adam(lm, lr=1e-2), batch_size=4, bptt=8) == {}  # too little text
    with pytest.raises(ValueError, match="steps"):
        lm.tune_threads(lines, optimizer=nn.Adam(lm, lr=1e-2), steps=0)
