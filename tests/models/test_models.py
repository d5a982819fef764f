"""seqkernels.models: gradients of every model's loss against finite differences (float64), training
on tiny tasks, decoding (sampling, greedy, beam search), BLEU, save/load, checkpoints and errors.
Small models with one OpenMP thread keep these fast and steady on a busy 2-core machine."""

import math
import types

import numpy as np
import pytest

from seqkernels import nn
from seqkernels.models import LanguageModel, Seq2Seq, SequenceClassifier, SequenceTagger, Vocab, load
from tests.tolerance import assert_close_rel, numerical_grad

WORDS = "the a cat dog sat ran on mat big small".split()
LETTERS = "abcdefgh"
FAST = {"num_threads": 1}


def check_model_grads(model, loss_fn, rng, n=4, rel=2e-5):
    """``loss_fn()`` runs a training-mode forward + backward and returns the loss; compare the
    gradients of ``n`` random entries of every parameter with central differences."""
    with nn.single_threaded_blas():  # many tiny forwards: keep NumPy's BLAS threads out of the way
        loss_fn()
        grads = {k: v.copy() for k, v in model.named_grads()}
        params = dict(model.named_parameters())
        assert set(grads) <= set(params) and grads
        for name, g in grads.items():
            p = params[name]
            idx = rng.choice(p.size, min(n, p.size), replace=False)
            num = numerical_grad(loss_fn, p, indices=idx)
            assert_close_rel(name, g.reshape(-1)[idx], num, rel)
    return grads


def reverse_data(rng, n, lo=3, hi=7):
    src = [" ".join(rng.choice(list(LETTERS), rng.integers(lo, hi))) for _ in range(n)]
    return src, [" ".join(s.split()[::-1]) for s in src]


# ---------------------------------------------------------------------------------------------
# Gradients of whole models
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell, layers", [("lstm", 2), ("gru", 1), ("rnn", 1)])
def test_language_model_gradients(cell, layers, rng):
    vocab = Vocab(list("abcde"))
    lm = LanguageModel(
        vocab, cell=cell, embedding_dim=3, hidden_size=5, num_layers=layers, dtype=np.float64, seed=1, **FAST
    )
    x = rng.integers(3, len(vocab), (6, 2))
    y = rng.integers(3, len(vocab), (6, 2))
    y[5, 1] = vocab.pad_id  # ignored
    h0 = lm.rnn(lm.embedding(x))[1]  # a carried state, as in truncated BPTT
    check_model_grads(lm, lambda: lm.loss(x, y, h0)[0], rng)


@pytest.mark.parametrize("cell, bidir", [("lstm", True), ("gru", False)])
def test_classifier_and_tagger_gradients(cell, bidir, rng):
    vocab = Vocab(WORDS, "word")
    texts = [["the", "cat"], ["a", "dog", "sat", "on", "mat"], ["big"]]
    clf = SequenceClassifier(
        vocab,
        ["x", "y", "z"],
        cell=cell,
        embedding_dim=3,
        hidden_size=4,
        num_layers=2,
        bidirectional=bidir,
        dtype=np.float64,
        seed=2,
        **FAST,
    )
    check_model_grads(clf, lambda: clf.loss(texts, ["y", "z", "x"])[0], rng)
    tagger = SequenceTagger(
        vocab,
        ["O", "B"],
        cell=cell,
        embedding_dim=3,
        hidden_size=4,
        bidirectional=bidir,
        dtype=np.float64,
        seed=3,
        **FAST,
    )
    tags = [["B", "O"], ["O", "O", "B", "O", "B"], ["B"]]
    check_model_grads(tagger, lambda: tagger.loss(texts, tags)[0], rng)


@pytest.mark.parametrize(
    "cell, bidir, attention, layers",
    [("lstm", True, True, 2), ("gru", False, False, 1), ("rnn", True, False, 1), ("gru", False, True, 1)],
)
def test_seq2seq_gradients(cell, bidir, attention, layers, rng):
    src_vocab, tgt_vocab = Vocab(list(LETTERS)), Vocab(list("xyz"))
    model = Seq2Seq(
        src_vocab,
        tgt_vocab,
        cell=cell,
        embedding_dim=3,
        hidden_size=4,
        num_layers=layers,
        bidirectional=bidir,
        attention=attention,
        dtype=np.float64,
        seed=4,
        **FAST,
    )
    src, tgt = ["abc", "h", "defgab"], ["xy", "zzzx", "y"]
    check_model_grads(model, lambda: model.loss(src, tgt)[0], rng)


# ---------------------------------------------------------------------------------------------
# Language model
# ---------------------------------------------------------------------------------------------

LINES = ["hello world", "hello there", "the world is big"] * 20


@pytest.fixture(scope="module")
def trained_lm(tmp_path_factory):
    vocab = Vocab.build(LINES, "char")
    lm = LanguageModel(vocab, embedding_dim=16, hidden_size=32, seed=0, **FAST)
    before = lm.evaluate(LINES)
    ckpt = tmp_path_factory.mktemp("lm") / "ckpt.npz"
    hist = lm.fit(
        LINES, val_texts=LINES[:3], epochs=25, batch_size=4, bptt=16, lr=1e-2, progress=False, checkpoint=ckpt, seed=0
    )
    return lm, before, hist, ckpt


def test_language_model_learns(trained_lm):
    lm, before, hist, ckpt = trained_lm
    after = lm.evaluate(LINES)
    assert before["bits_per_char"] > 4.0 and after["bits_per_char"] < 0.3
    assert hist["train_loss"][-1] < hist["train_loss"][0] / 10
    assert len(hist["val_loss"]) == 25 and hist["best_val_loss"] == min(hist["val_loss"])
    assert hist["tokens"] == hist["step_tokens"][-1] and hist["tokens_per_s"] > 0
    # at the character level bits per char is bits per token (each line's <EOS> is its newline)
    assert math.isclose(after["bits_per_char"], after["bits_per_token"], rel_tol=1e-12)
    assert math.isclose(after["perplexity"], math.exp(after["loss"]))
    assert math.isclose(lm.perplexity(LINES), after["perplexity"]) and ckpt.exists()


def test_language_model_sampling_and_search(trained_lm):
    lm = trained_lm[0]
    a = lm.sample(6, temperature=0.7, seed=3)
    assert a == lm.sample(6, temperature=0.7, seed=3)  # reproducible with a seed
    assert set(a) <= set(LINES)  # a well-trained model reproduces whole lines and stops at <EOS>
    assert all(s.startswith("hel") for s in lm.sample(3, seed=1, prompt="hel"))
    assert all(len(s) <= 5 for s in lm.sample(4, temperature=5.0, seed=2, max_len=5))
    assert lm.greedy("the w") == "the world is big"
    assert lm.beam_search(["the w", "hello t"], beam_size=4) == ["the world is big", "hello there"]
    assert lm.beam_search("hel", beam_size=3, n_best=2)[0] in ("hello world", "hello there")
    assert lm.beam_search("the w", beam_size=1) == lm.greedy("the w")


def test_language_model_decoding_controls(trained_lm):
    lm = trained_lm[0]

    def no_repeat(text, n):
        grams = [text[i : i + n] for i in range(len(text) - n + 1)]
        return len(grams) == len(set(grams))

    # completions only: the prompt is not part of the history
    for out in lm.beam_search(["the w", "hello t"], beam_size=4, no_repeat_ngram_size=2, max_len=30):
        assert no_repeat(out[5:] if out.startswith("the w") else out[7:], 2)
    assert "world" not in lm.beam_search("the ", beam_size=3, bad_words=["world"])
    assert "o" not in lm.greedy("", suppress_tokens=["o"], max_len=20)
    assert len(lm.beam_search("the w", beam_size=3, min_len=30, max_len=40)) >= len("the w") + 29
    assert lm.beam_search("the w", beam_size=3, repetition_penalty=1.0, patience=2.0) == "the world is big"
    top = lm.sample(5, seed=[1, 2, 3, 4, 5], top_p=0.9, repetition_penalty=1.2)
    assert top[2] == lm.sample(1, seed=[3], top_p=0.9, repetition_penalty=1.2)[0]  # per-item seeds
    with pytest.raises(ValueError, match="bad_words"):
        lm.beam_search("the", bad_words=[""])
    with pytest.raises(TypeError, match="bad_words"):
        lm.beam_search("the", bad_words="world")


def test_language_model_save_load_and_checkpoint(trained_lm, tmp_path):
    lm, _, hist, ckpt = trained_lm
    path = lm.save(tmp_path / "lm")
    again = load(path)
    assert isinstance(again, LanguageModel) and again.vocab == lm.vocab
    assert again.sample(4, seed=9) == lm.sample(4, seed=9)
    from_ckpt = LanguageModel.from_file(ckpt)  # the best validation epoch
    assert math.isclose(from_ckpt.evaluate(LINES[:3])["loss"], hist["best_val_loss"], rel_tol=1e-6)
    with pytest.raises(ValueError, match="Seq2Seq"):
        Seq2Seq.from_file(path)


def test_language_model_is_reproducible_and_stops_on_time():
    vocab = Vocab(list("ab"))
    runs = []
    for _ in range(2):
        lm = LanguageModel(vocab, embedding_dim=4, hidden_size=8, dropout=0.3, num_layers=2, seed=5, **FAST)
        runs.append(lm.fit(["abab", "bba"] * 10, epochs=2, batch_size=2, bptt=5, progress=False, seed=1)["step_loss"])
    assert runs[0] == runs[1]  # same seeds: same dropout masks, windows and updates
    hist = lm.fit(["ab"] * 5000, epochs=50, batch_size=2, bptt=8, max_seconds=0.05, progress=False)
    assert hist["stopped"] == "time" and len(hist["train_loss"]) < 50 and 0.05 <= hist["seconds"] < 1


def test_word_level_language_model():
    lines = ["the cat sat on the mat", "the dog ran"] * 10
    vocab = Vocab.build(lines, "word")
    lm = LanguageModel(vocab, embedding_dim=8, hidden_size=16, seed=0, **FAST)
    lm.fit(lines, epochs=30, batch_size=2, bptt=8, lr=2e-2, progress=False)
    assert lm.greedy("the cat") == "the cat sat on the mat"
    ev = lm.evaluate(lines)
    assert ev["bits_per_char"] < ev["bits_per_token"]  # several characters per word


@pytest.mark.parametrize("encoder", ["cnn", "mean"])
def test_classifier_cnn_and_mean_encoder_gradients(encoder, rng):
    vocab = Vocab(WORDS, "word")
    texts = [["the", "cat"], ["a", "dog", "sat", "on", "mat"], ["big"], ["small", "cat", "ran"]]
    clf = SequenceClassifier(
        vocab,
        ["x", "y", "z"],
        encoder=encoder,
        filter_sizes=(1, 2, 4),
        num_filters=3,
        embedding_dim=5,
        dtype=np.float64,
        seed=4,
    )
    grads = check_model_grads(clf, lambda: clf.loss(texts, ["y", "z", "x", "x"])[0], rng, n=6)
    assert not hasattr(clf, "rnn") and ("cnn.conv2.weight" in grads) == (encoder == "cnn")


# ---------------------------------------------------------------------------------------------
# Classifier and tagger
# ---------------------------------------------------------------------------------------------


def classifier_data(rng, n):
    texts = [list(rng.choice(WORDS, rng.integers(2, 9))) for _ in range(n)]
    return texts, ["pos" if "cat" in t else "neg" for t in texts]


def test_classifier_learns_with_frozen_pretrained_embeddings(rng, tmp_path):
    texts, labels = classifier_data(rng, 600)
    vtexts, vlabels = classifier_data(rng, 200)
    vocab = Vocab(WORDS, "word")
    wv = types.SimpleNamespace(words=WORDS, vectors=np.random.default_rng(0).standard_normal((len(WORDS), 8)))
    clf = SequenceClassifier(
        vocab, ["neg", "pos"], hidden_size=16, word_vectors=wv, freeze_embeddings=True, seed=0, **FAST
    )
    table = clf.embedding.params["weight"].copy()
    assert clf.embedding_dim == 8 and np.array_equal(table[vocab.index["cat"]], wv.vectors[2].astype(np.float32))
    hist = clf.fit(texts, labels, val=(vtexts, vlabels), epochs=5, lr=1e-2, progress=False)
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    assert clf.accuracy(vtexts, vlabels) >= 0.97
    assert np.array_equal(clf.embedding.params["weight"], table)  # frozen
    assert clf.predict([["a", "cat"], ["the", "dog"]]) == ["pos", "neg"]
    p = clf.predict_proba(["a cat sat", "the dog"])
    assert p.shape == (2, 2) and np.allclose(p.sum(axis=1), 1)
    again = load(clf.save(tmp_path / "clf"))
    assert np.array_equal(again.predict_proba(vtexts), clf.predict_proba(vtexts))
    assert again.embedding.freeze


def test_classifier_with_cnn_encoder_learns_and_round_trips(rng, tmp_path):
    texts, labels = classifier_data(rng, 600)
    vtexts, vlabels = classifier_data(rng, 200)
    clf = SequenceClassifier(
        Vocab(WORDS, "word"),
        ["neg", "pos"],
        encoder="cnn",
        filter_sizes=(2, 3),
        num_filters=8,
        embedding_dim=8,
        dropout=0.1,
        seed=0,
    )
    assert [k for k, _ in clf.named_parameters()][1:] == [
        "cnn.conv0.weight",
        "cnn.conv0.bias",
        "cnn.conv1.weight",
        "cnn.conv1.bias",
        "head.weight",
        "head.bias",
    ]
    hist = clf.fit(texts, labels, val=(vtexts, vlabels), epochs=5, lr=1e-2, progress=False)
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    assert clf.accuracy(vtexts, vlabels) >= 0.97
    assert clf.predict([["cat"], ["the", "dog"]]) == ["pos", "neg"]  # shorter than a filter: padded
    again = load(clf.save(tmp_path / "cnn"))
    assert again.encoder == "cnn" and again.cnn.filter_sizes == (2, 3) and again.cnn.num_filters == 8
    assert np.array_equal(again.predict_proba(vtexts), clf.predict_proba(vtexts))
    mean = SequenceClassifier(Vocab(WORDS, "word"), ["neg", "pos"], encoder="mean", embedding_dim=8, seed=0)
    mean.fit(texts, labels, epochs=1, progress=False)
    assert np.array_equal(load(mean.save(tmp_path / "mean")).predict_proba(vtexts), mean.predict_proba(vtexts))


def test_tagger_learns():
    rng = np.random.default_rng(1)

    def data(n):
        sents = [list(rng.choice(WORDS, rng.integers(2, 9))) for _ in range(n)]
        return sents, [["B" if i and s[i - 1] == "the" else "O" for i in range(len(s))] for s in sents]

    sents, tags = data(600)
    vsents, vtags = data(200)
    tagger = SequenceTagger(Vocab(WORDS, "word"), ["O", "B"], embedding_dim=8, hidden_size=16, seed=0, **FAST)
    tagger.fit(sents, tags, epochs=6, lr=1e-2, progress=False)
    assert tagger.accuracy(vsents, vtags) >= 0.98
    assert tagger.predict(["the cat sat", ["a", "the", "mat"]]) == [["O", "B", "O"], ["O", "O", "B"]]


# ---------------------------------------------------------------------------------------------
# Seq2Seq
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reverser():
    rng = np.random.default_rng(0)
    src, tgt = reverse_data(rng, 2000)
    vocab = Vocab(list(LETTERS), "word")
    model = Seq2Seq(vocab, vocab, embedding_dim=16, hidden_size=32, seed=0, **FAST)
    # 6 epochs: at 4 the beam accuracy below still varied 0.92-1.0 with the seed or the last bits of
    # the kernels' rounding; at 6 every seed tried gave >= 0.98 on 1,000 unseen sequences.
    hist = model.fit(src, tgt, epochs=6, batch_size=32, lr=1e-2, progress=False)
    return model, hist


def test_seq2seq_translates_with_beam_search(reverser):
    model, hist = reverser
    assert hist["train_loss"][-1] < 0.1 < hist["train_loss"][0]
    src, tgt = reverse_data(np.random.default_rng(7), 100)
    beam = model.translate(src, beam_size=4)
    greedy = model.translate(src, beam_size=1)
    assert np.mean([b == t for b, t in zip(beam, tgt)]) >= 0.97
    assert np.mean([g == t for g, t in zip(greedy, tgt)]) >= 0.9
    assert model.translate("a b c d", beam_size=3) == "d c b a"
    two = model.translate(["e f g"], beam_size=3, n_best=2)[0]
    assert len(two) == 2 and two[0] == "g f e"
    score = model.evaluate_bleu(src, tgt, beam_size=4)
    assert score.score >= 95
    assert model.evaluate_loss(src, tgt) < 0.1


def test_seq2seq_translate_with_controls(reverser):
    model, _ = reverser
    assert model.translate("a b c d", beam_size=3, prefix="d c") == "d c b a"
    assert model.translate(["a b c d", "e f"], beam_size=3, prefix=["d x", None])[1] == "f e"
    forced = model.translate("a b c d", beam_size=3, prefix="c")
    assert forced.startswith("c")
    assert "c" not in model.translate("a b c d", beam_size=3, suppress_tokens=["c"]).split()
    assert model.translate("a b a b", beam_size=3, no_repeat_ngram_size=2) != "b a b a"
    assert len(model.translate("a b", beam_size=1, min_len=4).split()) == 3  # T_y = 3 tokens + <EOS>
    assert model.translate("a b c d", beam_size=1, prefix="d c") == "d c b a"
    with pytest.raises(ValueError, match="prefix"):
        model.translate(["a b"], prefix=["a", "b"])


def test_seq2seq_without_attention_learns_a_copy_task():
    rng = np.random.default_rng(3)
    src = [" ".join(rng.choice(list("abcd"), rng.integers(1, 4))) for _ in range(1500)]
    vocab = Vocab(list("abcd"), "word")
    model = Seq2Seq(
        vocab, vocab, cell="gru", embedding_dim=8, hidden_size=32, bidirectional=False, attention=False, seed=0, **FAST
    )
    model.fit(src, src, epochs=6, batch_size=32, lr=1e-2, progress=False)
    test = [" ".join(rng.choice(list("abcd"), rng.integers(1, 4))) for _ in range(50)]
    assert np.mean([a == b for a, b in zip(model.translate(test, beam_size=3), test)]) >= 0.9


# ---------------------------------------------------------------------------------------------
# Vocabulary and errors
# ---------------------------------------------------------------------------------------------


def test_vocab():
    v = Vocab.build(["abca", "bd"], "char", min_count=2)
    assert v.tokens[4:] == ["a", "b"] and len(v) == 6
    assert v.encode("abz", add_bos=True, add_eos=True) == [2, 4, 5, 1, 3]
    assert v.decode([4, 1, 5, 3, 4]) == "a\ufffdb" and v.decode([4, 3, 5], stop_at_eos=False) == "ab"
    w = Vocab.build(["a b b", "c"], "word", max_size=1)
    assert w.tokens[4:] == ["b"] and w.decode(w.encode("b zz")) == "b <UNK>"
    assert Vocab.from_dict(w.to_dict()) == w


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: Vocab([], level="byte"), ValueError, "level"),
        (lambda: Vocab.build("abc"), TypeError, "texts"),
        (lambda: LanguageModel(["a"]), TypeError, "vocab"),
        (lambda: LanguageModel(Vocab("ab"), cell="lstmx"), ValueError, "cell"),
        (lambda: LanguageModel(Vocab("ab"), hidden_size=0), ValueError, "hidden_size"),
        (lambda: LanguageModel(Vocab("ab"), dropout=1.5), ValueError, "dropout"),
        (lambda: LanguageModel(Vocab("ab"), **FAST).fit(["ab"], epochs=0), ValueError, "epochs"),
        (lambda: LanguageModel(Vocab("ab"), **FAST).fit(["ab"], optimizer="lbfgs"), ValueError, "optimizer"),
        (lambda: LanguageModel(Vocab("ab"), **FAST).fit(["ab"], batch_size=10), ValueError, "texts"),
        (lambda: LanguageModel(Vocab("ab"), **FAST).sample(0), ValueError, "n"),
        (lambda: LanguageModel(Vocab("ab"), **FAST).sample(1, temperature=0), ValueError, "temperature"),
        (lambda: LanguageModel(Vocab("ab"), **FAST).beam_search(3), TypeError, "prompts"),
        (
            lambda: LanguageModel(Vocab("ab"), **FAST).fit(["ab"], optimizer=nn.Adam(nn.Linear(2, 2))),
            ValueError,
            "optimizer",
        ),
        (lambda: SequenceClassifier(Vocab("ab"), []), ValueError, "labels"),
        (lambda: SequenceClassifier(Vocab("ab"), ["x"], **FAST).fit(["a"], ["y"]), ValueError, "labels"),
        (lambda: SequenceClassifier(Vocab("ab"), ["x"], **FAST).fit(["a", "b"], ["x"]), ValueError, "labels"),
        (lambda: SequenceClassifier(Vocab("ab"), ["x"], **FAST).predict([""]), ValueError, "texts"),
        (lambda: SequenceClassifier(Vocab("ab"), ["x"], encoder="transformer"), ValueError, "encoder"),
        (lambda: SequenceClassifier(Vocab("ab"), ["x"], encoder="cnn", filter_sizes=3), TypeError, "filter_sizes"),
        (lambda: SequenceClassifier(Vocab("ab"), ["x"], encoder="cnn", num_filters=0), ValueError, "num_filters"),
        (lambda: SequenceTagger(Vocab("ab"), ["O"], **FAST).fit(["ab"], [["O"]]), ValueError, "tags"),
        (lambda: Seq2Seq(Vocab("ab"), "ab"), TypeError, "tgt_vocab"),
        (lambda: Seq2Seq(Vocab("ab"), Vocab("ab"), **FAST).fit(["a"], ["a", "b"]), ValueError, "tgt"),
        (lambda: Seq2Seq(Vocab("ab"), Vocab("ab"), **FAST).translate([""]), ValueError, "src"),
        (lambda: Seq2Seq(Vocab("ab"), Vocab("ab"), **FAST).translate(["a"], beam_size=0), ValueError, "beam_size"),
    ],
)
def test_errors_name_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_fit_loop_restores_the_best_validation_epoch():
    from seqkernels.models._base import fit_loop

    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.params["w"] = np.zeros(1)

    model = Counter()
    vals = iter([3.0, 1.0, 2.0, 5.0])

    def step(batch):
        model.grads = {"w": np.array([-1.0])}  # SGD with lr 1 adds 1 per step
        return 0.5, 1

    hist = fit_loop(
        model,
        make_batches=lambda e: [0],
        train_step=step,
        epochs=4,
        optimizer=nn.SGD(model, lr=1.0),
        clip=None,
        validate=lambda: next(vals),
        progress=False,
        restore_best=True,
    )
    assert hist["restored_best"] and hist["best_val_loss"] == 1.0
    assert model.params["w"][0] == 2.0  # the parameters after epoch 2


def test_fit_loop_history_reads_as_fields_and_as_keys():
    from seqkernels.models import TrainingHistory
    from seqkernels.models._base import fit_loop

    model = nn.Module()
    model.params["w"] = np.zeros(1)

    def step(batch):
        model.grads = {"w": np.zeros(1)}
        return 0.25, 2

    hist = fit_loop(
        model,
        make_batches=lambda e: [0, 1, 2],
        train_step=step,
        epochs=2,
        optimizer=nn.SGD(model, lr=0.1),
        clip=1.0,
        progress=False,
    )
    assert isinstance(hist, TrainingHistory)
    assert hist.train_loss == hist["train_loss"] == [0.25, 0.25] and hist["val_loss"] == []
    assert hist.step_tokens == [2, 4, 6, 8, 10, 12] and hist.tokens == 12 and hist["stopped"] == "epochs"
    assert hist.best_val_loss is None and not hist.restored_best and hist.skipped_steps == 0
    with pytest.raises(KeyError):
        hist["no_such_field"]


def test_fit_loop_restores_the_mode_when_a_step_fails():
    from seqkernels.models._base import fit_loop

    model = nn.Module().eval()
    model.params["w"] = np.zeros(1)
    with pytest.raises(FloatingPointError, match="training loss became nan"):
        fit_loop(
            model,
            make_batches=lambda e: [0],
            train_step=lambda batch: (float("nan"), 1),
            epochs=1,
            optimizer=nn.SGD(model, lr=0.1),
            clip=None,
            progress=False,
        )
    assert not model.training
