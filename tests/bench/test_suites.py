"""Every benchmark (seqkernels.benchmarks, run as bench/*.py) on tiny shapes: every variant
validates and a row comes out (the timings themselves are not tested)."""

import json
import subprocess
import sys

import pytest

from seqkernels.benchmarks import harness as hz
from seqkernels.benchmarks import rnn, search


def test_search_bench_row_on_a_tiny_shape():
    row = search.bench_shape(3, 2, 50, search.FACTORIES, threads=1, repeats=2)
    assert row["ours_ms"] > 0 and row["ref_ms"] > 0 and row["x_ref"] > 0


def test_search_controls_rows_on_a_tiny_shape():
    rows = search.bench_controls(3, 2, 300, 9, threads=1, repeats=2)
    assert [r["control"] for r in rows][0] == "off" and len(rows) == 7
    assert all(r["ms"] > 0 and r["off_ms"] > 0 for r in rows)


def test_search_driver_controls_rows_on_a_tiny_shape():
    rows = search.bench_controls(3, 2, 300, 9, threads=1, repeats=2, extra=search.POOL_VARIANTS)
    assert rows[-1]["control"] == "sampling pool top-50" and rows[-1]["ms"] > 0
    rows = search.bench_search_controls(3, 10, 300, 4, threads=1, repeats=2)
    assert [r["control"] for r in rows][0] == "search: off" and len(rows) == 4
    assert all(r["ms"] > 0 for r in rows)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "lstmp"])
def test_rnn_bench_row_on_a_tiny_shape(cell):
    row = rnn.bench_shape(cell, 2, 8, 3, "fwd+bwd", rnn.variants("cpu"), threads=1, repeats=2, peak_gflops=100.0)
    assert row["ours_ms"] > 0 and row["gflops"] > 0
    assert row["pct_peak"] == pytest.approx(row["gflops"])  # of a 100 GFLOP/s peak
    assert row["ours_iqr_pct"] >= 0 and "ours_load_ms" not in row


@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
def test_rnn_bench_torch_native_column_runs_torch_without_onednn(mode):
    torch = pytest.importorskip("torch")
    factories = rnn.variants("cpu", numpy_loop=False, torch_native=True)
    assert set(factories) == {"ours", "torch", "torch_native"}
    row = rnn.bench_shape("lstm", 1, 8, 1, mode, factories, threads=1, repeats=2)
    assert row["torch_native_ms"] > 0
    assert row["x_torch_native"] == pytest.approx(row["torch_native_ms"] / row["ours_ms"])
    assert row["max_rel_error"]["torch_native"] < rnn.TOL  # validated against torch.nn's default path
    assert torch.backends.mkldnn.enabled  # switched off only around its own calls


def test_rnn_bench_times_the_recurrence_alone_on_forward_rows():
    kw = dict(threads=1, repeats=2, peak_gflops=100.0, recurrence=True)
    row = rnn.bench_shape("gru", 3, 8, 4, "fwd", rnn.variants("cpu", numpy_loop=False), **kw)
    assert row["recurrence_ms"] > 0
    assert row["recurrence_gflops"] == pytest.approx(2 * 4 * 3 * 3 * 8 * 8 / (row["recurrence_ms"] * 1e6))
    assert row["recurrence_pct_peak"] == pytest.approx(row["recurrence_gflops"])
    row = rnn.bench_shape("gru", 3, 8, 4, "fwd+bwd", rnn.variants("cpu", numpy_loop=False), **kw)
    assert "recurrence_ms" not in row  # training rows: the forward row says it
    row = rnn.bench_shape("lstmp", 3, 8, 4, "fwd", rnn.variants("cpu", numpy_loop=False), **kw)
    P = row["proj_size"]  # W_hh is 4H × P, W_hr P × H
    assert row["recurrence_gflops"] == pytest.approx(2 * 4 * 3 * (4 * 8 * P + P * 8) / (row["recurrence_ms"] * 1e6))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_numpy_loop_matches_the_layer_in_float64(cell):
    """The NumPy loop (the baseline without torch) is validated by the same check as the layers."""
    factories = {"ours": rnn.make_ours, "numpy": rnn.make_numpy}
    row = rnn.bench_shape(cell, 3, 5, 4, "fwd+bwd", factories, threads=1, repeats=1)
    assert row["validated_against"] == "numpy float64" and row["max_rel_error"]["numpy"] < rnn.TOL


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_lstmp_bench_row_validates_without_torch():
    """LSTMP (proj_size = H/4) rows: no NumPy loop; without torch, the float64 reference is the baseline."""
    row = rnn.bench_shape(
        "lstmp", 3, 8, 4, "fwd+bwd", {"ours": rnn.make_ours, "numpy": rnn.make_numpy}, threads=1, repeats=1
    )
    assert row["proj_size"] == 2 and row["validated_against"] == "reference float64" and "numpy" not in row["stats"]
    assert row["flops"] == rnn.flops("lstmp", 3, 8, 4, 8, "fwd+bwd") == 3 * 2.0 * 4 * 3 * (4 * 8 * (8 + 2) + 2 * 8)


def test_rnn_bench_row_under_contention():
    with hz.Contention(1, settle=0.0) as load:
        row = rnn.bench_shape(
            "lstm", 2, 8, 3, "fwd", rnn.variants("cpu", numpy_loop=False), threads=1, repeats=2, contention=load
        )
    assert row["contend"] == 1 and row["ours_load_ms"] > 0 and row["ours_slowdown"] > 0


def test_interleaved_timing_alternates_and_stops():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    stats = hz.time_interleaved(fns, repeats=3, warmup=1, min_time=0.0)
    assert calls == list("ab" + "abbaab")  # warm-up round, then rounds whose order alternates
    assert stats["a"]["n"] == stats["b"]["n"] == 3
    # an unreachable spread target stops at max_time
    stats = hz.time_interleaved({"a": lambda: None}, repeats=1, warmup=0, max_time=0.05, target_iqr_pct=0.0)
    assert stats["a"]["n"] >= 1


@pytest.mark.parametrize("suite", ["rnn", "search", "torch_layers"])
def test_cli_bench_help(suite):
    out = subprocess.run(
        [sys.executable, "-m", "seqkernels", "bench", suite, "--help"], capture_output=True, text=True, check=True
    )
    assert "--quick" in out.stdout
    if suite != "search":
        assert "--openblas-env" in out.stdout and "--contend" in out.stdout


# Word vectors and text CNNs (the sentiment data set is an optional install and is not needed here).


def test_word2vec_bench_row_on_a_tiny_corpus(tmp_path, capsys):
    pytest.importorskip("gensim")
    from seqkernels.benchmarks.word2vec import main

    out = tmp_path / "w2v.json"
    assert (
        main(["--tokens", "20000", "--epochs", "1", "--repeats", "1", "--workdir", str(tmp_path), "--json", str(out)])
        == 0
    )
    data = json.loads(out.read_text())
    assert {r["impl"] for r in data["rows"]} == {"seqkernels", "gensim (sentences in memory)", "gensim (corpus_file)"}
    assert all(r["words_per_s"] > 0 and r["answered"] >= 0 for r in data["rows"])
    assert data["verdict"]["speedup_median"] > 0
    assert "analogy %" in capsys.readouterr().out


def test_text_cnn_bench_rows_validate_on_a_tiny_shape(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from seqkernels.benchmarks import text_cnn as tc  # imports torch

    monkeypatch.setattr(tc, "B", 3)
    monkeypatch.setattr(tc, "T", 9)
    monkeypatch.setattr(tc, "C", 7)
    monkeypatch.setattr(tc, "F", 5)
    out = tmp_path / "tc.json"
    assert tc.main(["--quick", "--repeats", "2", "--threads", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["row"] for r in rows] == [f"conv fwd k={k}" for k in (3, 4, 5)] + [
        f"conv fwd+bwd k={k}" for k in (3, 4, 5)
    ] + ["kim fwd+bwd 3,4,5"]
    assert all(r["ms"] > 0 and r["torch_ms"] > 0 and r["threads"] == 1 for r in rows)


def test_sentiment_tokenizer_and_macro_f1():
    from seqkernels.benchmarks import sentiment as s

    assert s.tokenize("@United THANKS!! see https://t.co/x #great don't") == [
        "@united",
        "thanks",
        "!",
        "!",
        "see",
        "URL",
        "#great",
        "don't",
    ]
    assert s.macro_f1(["positive", "negative"], ["positive", "negative"]) == 1.0
    assert s.macro_f1(["negative"] * 4, ["negative"] * 3 + ["positive"]) == pytest.approx((6 / 7 + 0) / 2)
