"""bench/word2vec.py on a tiny corpus: every implementation gives a row, the JSON has the summary."""

from __future__ import annotations

import json

import pytest


def test_word2vec_bench_tiny(tmp_path, capsys):
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
