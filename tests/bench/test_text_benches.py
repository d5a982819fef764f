"""bench/text_cnn.py and bench/sentiment.py on tiny inputs: every text-CNN row validates against
torch and comes out; the sentiment script's tokenizer and F1 (the data set itself is an optional
install and is not needed here). No timed assertions."""

import importlib.util
import json
import pathlib

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench"


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_text_cnn_bench_rows_validate_on_a_tiny_shape(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    tc = load_script("text_cnn")
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
    s = load_script("sentiment")
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
