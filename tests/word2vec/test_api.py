"""seqkernels.word2vec.Word2Vec and the word2vec file formats: training on real text learns
something, the formats round-trip here and through gensim (both directions), bad input is a clear
error, and WordVectors.plot writes a PNG."""

from __future__ import annotations

import os

import numpy as np
import pytest

from seqkernels.glove import Vocabulary, WordVectors
from seqkernels.word2vec import Word2Vec


def _python_help_text() -> bytes:
    from pydoc_data.topics import topics

    return "\n".join(
        " ".join(ln.lower().split()) for name in sorted(topics) for ln in topics[name].split("\n") if ln.strip()
    ).encode()


@pytest.fixture(scope="module")
def trained():
    return Word2Vec(vector_size=24, min_count=3, epochs=12, threads=2, seed=5).fit(_python_help_text(), progress=False)


def test_fit_learns_related_words(trained):
    wv = trained.wv
    assert isinstance(wv, WordVectors) and wv.dim == 24 and wv.vectors.dtype == np.float32
    assert wv.words[:3] == trained.vocabulary.words[:3]
    assert [s["epoch"] for s in trained.stats_] == list(range(1, 13))
    assert trained.stats_[-1]["trained"] < trained.stats_[-1]["words"]  # subsampling dropped some
    # What negative sampling trains: neighbours in the text score higher than noise pairs.
    ids, offsets, _ = trained.encode(_python_help_text())
    same_sentence = np.ones(len(ids) - 1, bool)
    same_sentence[offsets[1:-1] - 1] = False
    left, right = ids[:-1][same_sentence], ids[1:][same_sentence]
    noise = np.random.default_rng(0).permutation(right)
    score = lambda a, b: np.mean(np.sum(trained.syn0[a] * trained.syn1neg[b], axis=1))  # noqa: E731
    assert score(left, right) > score(left, noise) + 0.5


def test_cbow_and_single_thread_are_deterministic():
    text = _python_help_text()[:200_000]
    a = Word2Vec(vector_size=8, sg=False, min_count=2, epochs=2, threads=1, seed=3).fit(text, progress=False)
    b = Word2Vec(vector_size=8, sg=False, min_count=2, epochs=2, threads=1, seed=3).fit(text, progress=False)
    np.testing.assert_array_equal(a.syn0, b.syn0)
    assert a.learning_rate == 0.05  # word2vec.c's CBOW default


@pytest.mark.parametrize("binary", [False, True])
def test_formats_round_trip(trained, tmp_path, binary):
    path = tmp_path / ("v.bin" if binary else "v.txt")
    trained.save(path, binary=binary)
    back = WordVectors.load(path, binary=binary)
    assert back.words == trained.vocabulary.words
    if binary:
        np.testing.assert_array_equal(back.vectors, trained.syn0)
    else:
        np.testing.assert_allclose(back.vectors, trained.syn0, atol=5e-7)
    with open(path, "rb") as f:
        first = f.readline()
    assert first == b"%d 24\n" % len(trained.vocabulary)


@pytest.mark.parametrize("binary", [False, True])
def test_gensim_reads_ours_and_we_read_gensims(trained, tmp_path, binary):
    gensim_models = pytest.importorskip("gensim.models")
    ours = tmp_path / "ours"
    trained.save(ours, binary=binary)
    kv = gensim_models.KeyedVectors.load_word2vec_format(os.fspath(ours), binary=binary)
    assert list(kv.index_to_key) == trained.vocabulary.words
    np.testing.assert_allclose(kv.vectors, trained.syn0, atol=0 if binary else 5e-7)
    theirs = tmp_path / "theirs"
    kv.save_word2vec_format(os.fspath(theirs), binary=binary)
    back = WordVectors.load(theirs, binary=binary)
    assert back.words == trained.vocabulary.words
    np.testing.assert_allclose(back.vectors, kv.vectors, atol=0 if binary else 5e-7)


def test_binary_load_rejects_truncated_files(trained, tmp_path):
    path = tmp_path / "v.bin"
    trained.save(path, binary=True)
    data = path.read_bytes()
    path.write_bytes(data[:-50])
    with pytest.raises(ValueError, match="truncated at word"):
        WordVectors.load(path, binary=True)
    path.write_bytes(b"not a header\n")
    with pytest.raises(ValueError, match="'count dim' first line"):
        WordVectors.load(path, binary=True)


def test_words_with_blanks_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="no blanks or line breaks"):
        WordVectors(["a b", "c"], np.zeros((2, 3))).save(tmp_path / "x.bin", binary=True)
    assert not (tmp_path / "x.bin").exists()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(vector_size=0), "vector_size"),
        (dict(window=0), "window"),
        (dict(negative=0), "negative"),
        (dict(sample=-1.0), "sample"),
        (dict(min_count=0), "min_count"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(epochs=-1), "epochs"),
        (dict(threads=0), "threads"),
        (dict(sg=2), "sg"),
        (dict(seed=-1), "seed"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Word2Vec(**kwargs)


def test_bad_corpus_and_order_of_calls(tmp_path):
    with pytest.raises(RuntimeError, match="fit"):
        _ = Word2Vec().wv
    with pytest.raises(ValueError, match="min_count=5"):
        Word2Vec(min_count=5).fit(b"just a few words here\n", progress=False)
    with pytest.raises(FileNotFoundError):
        Word2Vec().fit(tmp_path / "missing.txt", progress=False)
    with pytest.raises(TypeError, match="vocabulary"):
        Word2Vec().fit(b"a b c\n", vocabulary=["a", "b"], progress=False)
    model = Word2Vec(min_count=1).build_vocab(b"a b c\n", Vocabulary(["a", "b"], [3, 2]))
    with pytest.raises(ValueError, match="none of its tokens"):
        model.train(*model.encode(b"x y z\n")[:2], progress=False)


# ---- pictures ---------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["tsne", "pca"])
def test_plot_writes_a_png(trained, tmp_path, method):
    pytest.importorskip("matplotlib")
    if method == "tsne":
        pytest.importorskip("sklearn")
    groups = {"values": ["true", "false", "none"], "types": ["integer", "float", "string", "list", "dictionary"]}
    out = trained.wv.plot(method=method, path=tmp_path / "w.png", groups=groups)
    assert out == os.fspath(tmp_path / "w.png")
    assert (tmp_path / "w.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_arguments(trained, tmp_path):
    pytest.importorskip("matplotlib")
    wv = trained.wv
    with pytest.raises(ValueError, match="method"):
        wv.plot(["true", "false", "none"], method="umap")
    with pytest.raises(ValueError, match="one label per word"):
        wv.plot(["true", "false", "none"], groups=["a"], method="pca")
    with pytest.raises(KeyError, match="not in the vocabulary"):
        wv.plot(["true", "false", "no-such-word"], method="pca")
    fig = wv.plot(["true", "false", "none", "list"], groups=["v", "v", "v", None], method="pca")
    assert fig.axes


def test_plot_without_matplotlib_says_what_to_install(trained, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match=r"seqkernels\[plot\]"):
        trained.wv.plot(["true", "false", "none"], method="pca")
