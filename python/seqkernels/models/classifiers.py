"""Many-to-one (:class:`SequenceClassifier`) and many-to-many (:class:`SequenceTagger`) models over
a (bidirectional) recurrent encoder with optional pretrained embeddings."""

from __future__ import annotations

import numpy as np

from .. import nn
from ._base import (
    Model,
    batches,
    check_cell,
    check_int,
    check_real,
    check_vocab,
    evaluating,
    fit_loop,
    make_optimizer,
    make_rnn,
    pad,
    register,
    seeds,
)
from .vocab import Vocab

__all__ = ["SequenceClassifier", "SequenceTagger"]

IGNORE = -100  # target id of padded positions (cross-entropy ignore_index)
ENCODERS = ("rnn", "cnn", "mean")


def _labels(labels, name):
    labels = list(labels)
    if not labels:
        raise ValueError(f"{name}: expected a non-empty list of labels")
    if len(set(labels)) != len(labels):
        raise ValueError(f"{name}: duplicate labels")
    for lab in labels:
        if not isinstance(lab, (str, int)) or isinstance(lab, bool):
            raise TypeError(f"{name}: labels must be str or int (they are saved as JSON), got {type(lab).__name__}")
    return labels


class _Encoder(Model):
    """Embedding -> Dropout -> encoder, shared by the classifier and the tagger (whose encoder is
    always recurrent)."""

    def __init__(
        self,
        vocab,
        labels,
        *,
        cell,
        embedding_dim,
        hidden_size,
        num_layers,
        bidirectional,
        dropout,
        word_vectors,
        freeze_embeddings,
        dtype,
        seed,
        label_name,
        num_threads,
        encoder="rnn",
        filter_sizes=(3, 4, 5),
        num_filters=100,
    ):
        super().__init__()
        self.vocab = check_vocab(vocab)
        self.labels = _labels(labels, label_name)
        self.label_index = {lab: i for i, lab in enumerate(self.labels)}
        self.cell = check_cell(cell)
        self.hidden_size = check_int(hidden_size, "hidden_size")
        self.num_layers = check_int(num_layers, "num_layers")
        self.bidirectional = bool(bidirectional)
        self.dropout = nn._arrays.check_probability(dropout, "dropout")
        self.dtype = nn._arrays.check_float_dtype(dtype)
        self.freeze_embeddings = bool(freeze_embeddings)
        self.seed = seed
        s = seeds(seed, 5)
        if word_vectors is not None:
            self.embedding = nn.Embedding.from_word_vectors(
                word_vectors,
                vocab,
                freeze=self.freeze_embeddings,
                padding_idx=vocab.pad_id,
                dtype=self.dtype,
                seed=s[0],
            )
        else:
            self.embedding = nn.Embedding(
                len(vocab),
                check_int(embedding_dim, "embedding_dim"),
                padding_idx=vocab.pad_id,
                freeze=self.freeze_embeddings,
                dtype=self.dtype,
                seed=s[0],
            )
        self.embedding_dim = self.embedding.embedding_dim
        self.drop_in = nn.Dropout(self.dropout, seed=s[1])
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {list(ENCODERS)}, got {encoder!r}")
        self.encoder = encoder
        if encoder == "rnn":
            self.rnn = make_rnn(
                cell,
                self.embedding_dim,
                self.hidden_size,
                self.num_layers,
                self.dropout,
                self.bidirectional,
                self.dtype,
                s[2],
                num_threads,
            )
            features = (2 if self.bidirectional else 1) * self.hidden_size
        elif encoder == "cnn":
            self.cnn = nn.TextCNN(self.embedding_dim, filter_sizes, num_filters, dtype=self.dtype, seed=s[2])
            features = self.cnn.output_size
        else:
            features = self.embedding_dim
        self.drop_out = nn.Dropout(self.dropout, seed=s[3])
        self.head = nn.Linear(features, len(self.labels), dtype=self.dtype, seed=s[4])

    def _config(self):
        return {
            "vocab": self.vocab.to_dict(),
            "labels": self.labels,
            "cell": self.cell,
            "embedding_dim": self.embedding_dim,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "dropout": self.dropout,
            "freeze_embeddings": self.freeze_embeddings,
            "dtype": self.dtype.name,
            "seed": self.seed,
        }

    @classmethod
    def _from_config(cls, c):
        c = dict(c)
        vocab, labels = Vocab.from_dict(c.pop("vocab")), c.pop("labels")
        return cls(vocab, labels, **c)

    def _encode(self, texts, name="texts"):
        if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
            raise TypeError(f"{name}: expected a list of texts (str or token lists), got {type(texts).__name__}")
        seqs = [self.vocab.encode(t) for t in texts]
        for i, s in enumerate(seqs):
            if not s:
                raise ValueError(f"{name}[{i}]: empty sequence (every input needs at least one token)")
        return seqs

    def _label_ids(self, labels, name="labels"):
        try:
            return [self.label_index[lab] for lab in labels]
        except KeyError as e:
            raise ValueError(f"{name}: unknown label {e.args[0]!r}; known labels are {self.labels}") from None

    def _fit(
        self,
        n,
        make_batch,
        val_fn,
        *,
        epochs,
        batch_size,
        lr,
        optimizer,
        clip,
        max_seconds,
        checkpoint,
        progress,
        seed,
        desc,
        restore_best,
    ):
        epochs = check_int(epochs, "epochs")
        batch_size = check_int(batch_size, "batch_size")
        clip = check_real(clip, "clip", 0.0, strict=True, allow_none=True)
        max_seconds = check_real(max_seconds, "max_seconds", 0.0, strict=True, allow_none=True)
        opt = make_optimizer(self, optimizer, lr)
        rng = np.random.default_rng(seed)
        return fit_loop(
            self,
            make_batches=lambda epoch: batches(n, batch_size, rng),
            train_step=make_batch,
            epochs=epochs,
            optimizer=opt,
            clip=clip,
            validate=val_fn,
            checkpoint=checkpoint,
            progress=progress,
            max_seconds=max_seconds,
            desc=desc,
            restore_best=restore_best,
        )


@register
class SequenceClassifier(_Encoder):
    """One label per sequence (e.g. sentiment): ``Embedding -> encoder -> features -> Linear``.

    ``encoder="rnn"`` (default): a ``cell`` LSTM/GRU/RNN; the features are the last layer's final
    state of each direction (``h_n``, concatenated for ``bidirectional``), taken at each sequence's
    own length. ``encoder="cnn"``: Kim's (2014) text CNN, :class:`seqkernels.nn.TextCNN` —
    ``num_filters`` filters of each width in ``filter_sizes`` over the word vectors, ReLU, max over
    time, concatenated (``hidden_size``, ``cell``, ``num_layers``, ``bidirectional`` are unused).
    ``encoder="mean"``: the average of the sequence's word vectors (a bag of embeddings). Dropout
    applies to the embeddings and to the features. ``word_vectors``: any object with
    ``.words`` and ``.vectors`` (``seqkernels.glove.WordVectors`` fits) initialises the embedding
    through :meth:`seqkernels.nn.Embedding.from_word_vectors` (then ``embedding_dim`` is theirs);
    ``freeze_embeddings`` keeps it fixed. ``labels``: the classes (str or int) in output order.
    ``num_threads`` goes to the recurrent layer (0: the OpenMP default).
    """

    def __init__(
        self,
        vocab: Vocab,
        labels,
        *,
        cell="lstm",
        embedding_dim=64,
        hidden_size=64,
        num_layers=1,
        bidirectional=True,
        dropout=0.0,
        word_vectors=None,
        freeze_embeddings=False,
        dtype=np.float32,
        seed=0,
        num_threads=0,
        encoder="rnn",
        filter_sizes=(3, 4, 5),
        num_filters=100,
    ):
        super().__init__(
            vocab,
            labels,
            cell=cell,
            embedding_dim=embedding_dim,
            hidden_size=hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            word_vectors=word_vectors,
            freeze_embeddings=freeze_embeddings,
            dtype=dtype,
            seed=seed,
            label_name="labels",
            num_threads=num_threads,
            encoder=encoder,
            filter_sizes=filter_sizes,
            num_filters=num_filters,
        )

    def _config(self):
        config = super()._config()
        config["encoder"] = self.encoder
        if self.encoder == "cnn":
            config.update(filter_sizes=list(self.cnn.filter_sizes), num_filters=self.cnn.num_filters)
        return config

    def forward(self, ids, lengths):
        """``ids (T, B)``, ``lengths (B,)`` -> logits ``(B, num_labels)``."""
        x = self.drop_in(self.embedding(ids))
        if self.encoder == "cnn":
            feats = self.cnn(x, lengths)
        elif self.encoder == "mean":
            weights = (np.arange(x.shape[0])[:, None] < lengths[None, :]) / lengths[None, :]  # (T, B)
            self._weights = weights.astype(self.dtype)[:, :, None]
            feats = (x * self._weights).sum(axis=0)
        else:
            D = 2 if self.bidirectional else 1
            y, h = self.rnn(x, None, lengths)
            h_n = h[0] if isinstance(h, tuple) else h
            feats = np.concatenate(list(h_n[-D:]), axis=1)  # (B, D*H): [forward, reverse]
            self._shapes = (y.shape, h_n.shape)
        return self.head(self.drop_out(feats))

    def backward(self, dlogits):
        dfeats = self.drop_out.backward(self.head.backward(dlogits))
        if self.encoder == "cnn":
            dx = self.cnn.backward(dfeats)
        elif self.encoder == "mean":
            dx = self._weights * dfeats[None]
        else:
            dx = self._rnn_backward(dfeats)
        self.embedding.backward(self.drop_in.backward(dx))

    def _rnn_backward(self, dfeats):
        y_shape, h_shape = self._shapes
        D, H = (2 if self.bidirectional else 1), self.hidden_size
        dh_n = np.zeros(h_shape, dtype=self.dtype)
        for d in range(D):
            dh_n[h_shape[0] - D + d] = dfeats[:, d * H : (d + 1) * H]
        dhx = (dh_n, None) if self.cell == "lstm" else dh_n
        dx, _ = self.rnn.backward(np.zeros(y_shape, dtype=self.dtype), dhx)
        return dx

    def loss(self, texts, labels):
        """Training-mode forward + backward on one batch; returns ``(mean loss, batch size)``."""
        ids, lengths = pad(self._encode(texts), self.vocab.pad_id)
        logits = self.forward(ids, lengths)
        loss, dlogits = nn.softmax_cross_entropy(logits, np.asarray(self._label_ids(labels)))
        self.backward(dlogits)
        return loss, len(texts)

    def fit(
        self,
        texts,
        labels,
        *,
        val=None,
        epochs=5,
        batch_size=32,
        lr=2e-3,
        optimizer="adam",
        clip=5.0,
        max_seconds=None,
        checkpoint=None,
        progress=True,
        seed=0,
        restore_best=False,
    ):
        """Train on ``texts`` (str or token lists) with one label each. ``val``: ``(texts, labels)``
        evaluated after each epoch (mean loss). Other arguments as in :meth:`LanguageModel.fit`.
        Returns the :class:`TrainingHistory` (``tokens`` count sequences here)."""
        texts, labels = list(texts), list(labels)
        if len(texts) != len(labels):
            raise ValueError(f"labels: {len(labels)} labels for {len(texts)} texts")
        self._label_ids(labels)
        val_fn = None if val is None else (lambda: self.evaluate(*val)["loss"])
        return self._fit(
            len(texts),
            lambda idx: self.loss([texts[i] for i in idx], [labels[i] for i in idx]),
            val_fn,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            clip=clip,
            max_seconds=max_seconds,
            checkpoint=checkpoint,
            progress=progress,
            seed=seed,
            desc="classifier",
            restore_best=restore_best,
        )

    def predict_proba(self, texts, batch_size=256) -> np.ndarray:
        """Class probabilities ``(N, num_labels)`` in the order of ``labels``."""
        seqs = self._encode(texts)
        out = []
        with evaluating(self):
            for i in range(0, len(seqs), batch_size):
                ids, lengths = pad(seqs[i : i + batch_size], self.vocab.pad_id)
                out.append(np.exp(nn.log_softmax(self.forward(ids, lengths).astype(np.float64))))
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)))

    def predict(self, texts) -> list:
        """The most likely label of each text."""
        return [self.labels[i] for i in self.predict_proba(texts).argmax(axis=1)]

    def evaluate(self, texts, labels) -> dict:
        """``loss`` (mean cross-entropy) and ``accuracy`` on labelled texts."""
        p = self.predict_proba(texts)
        y = np.asarray(self._label_ids(list(labels)))
        if len(y) != len(p):
            raise ValueError(f"labels: {len(y)} labels for {len(p)} texts")
        return {
            "loss": float(-np.log(np.maximum(p[np.arange(len(y)), y], 1e-300)).mean()),
            "accuracy": float((p.argmax(axis=1) == y).mean()),
        }

    def accuracy(self, texts, labels) -> float:
        return self.evaluate(texts, labels)["accuracy"]


@register
class SequenceTagger(_Encoder):
    """One tag per token (e.g. named-entity tags): ``Embedding -> bidirectional LSTM/GRU/RNN ->
    Linear`` at every step. Constructor as :class:`SequenceClassifier`, with ``tags`` as the labels."""

    def __init__(
        self,
        vocab: Vocab,
        tags,
        *,
        cell="lstm",
        embedding_dim=64,
        hidden_size=64,
        num_layers=1,
        bidirectional=True,
        dropout=0.0,
        word_vectors=None,
        freeze_embeddings=False,
        dtype=np.float32,
        seed=0,
        num_threads=0,
    ):
        super().__init__(
            vocab,
            tags,
            cell=cell,
            embedding_dim=embedding_dim,
            hidden_size=hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            word_vectors=word_vectors,
            freeze_embeddings=freeze_embeddings,
            dtype=dtype,
            seed=seed,
            label_name="tags",
            num_threads=num_threads,
        )

    @property
    def tags(self):
        return self.labels

    def forward(self, ids, lengths):
        """``ids (T, B)``, ``lengths (B,)`` -> logits ``(T, B, num_tags)`` (padded steps are garbage)."""
        y, _ = self.rnn(self.drop_in(self.embedding(ids)), None, lengths)
        return self.head(self.drop_out(y))

    def backward(self, dlogits):
        dx, _ = self.rnn.backward(self.drop_out.backward(self.head.backward(dlogits)))
        self.embedding.backward(self.drop_in.backward(dx))

    def _targets(self, seqs, tags):
        T = max(len(s) for s in seqs)
        out = np.full((T, len(seqs)), IGNORE, dtype=np.int64)
        for b, (s, t) in enumerate(zip(seqs, tags)):
            t = list(t)
            if len(t) != len(s):
                raise ValueError(f"tags: sequence {b} has {len(s)} tokens but {len(t)} tags")
            out[: len(t), b] = self._label_ids(t, "tags")
        return out

    def loss(self, sentences, tags):
        """Training-mode forward + backward on one batch; returns ``(mean loss per token, tokens)``."""
        seqs = self._encode(sentences, "sentences")
        ids, lengths = pad(seqs, self.vocab.pad_id)
        targets = self._targets(seqs, tags)
        loss, dlogits = nn.softmax_cross_entropy(self.forward(ids, lengths), targets, ignore_index=IGNORE)
        self.backward(dlogits)
        return loss, int(lengths.sum())

    def fit(
        self,
        sentences,
        tags,
        *,
        val=None,
        epochs=5,
        batch_size=32,
        lr=2e-3,
        optimizer="adam",
        clip=5.0,
        max_seconds=None,
        checkpoint=None,
        progress=True,
        seed=0,
        restore_best=False,
    ):
        """Train on ``sentences`` (str or token lists) with a list of tags each (one per token).
        ``val``: ``(sentences, tags)``. Returns the :class:`TrainingHistory`."""
        sentences, tags = list(sentences), [list(t) for t in tags]
        if len(sentences) != len(tags):
            raise ValueError(f"tags: {len(tags)} tag sequences for {len(sentences)} sentences")
        self._targets(self._encode(sentences, "sentences"), tags)  # check everything before training
        val_fn = None if val is None else (lambda: self.evaluate(*val)["loss"])
        return self._fit(
            len(sentences),
            lambda idx: self.loss([sentences[i] for i in idx], [tags[i] for i in idx]),
            val_fn,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            clip=clip,
            max_seconds=max_seconds,
            checkpoint=checkpoint,
            progress=progress,
            seed=seed,
            desc="tagger",
            restore_best=restore_best,
        )

    def _log_probs(self, seqs, batch_size=256):
        with evaluating(self):
            for i in range(0, len(seqs), batch_size):
                chunk = seqs[i : i + batch_size]
                ids, lengths = pad(chunk, self.vocab.pad_id)
                lp = nn.log_softmax(self.forward(ids, lengths).astype(np.float64))
                for b, n in enumerate(lengths):
                    yield lp[:n, b]

    def predict(self, sentences) -> list[list]:
        """The most likely tag of every token, one list per sentence."""
        return [
            [self.labels[i] for i in lp.argmax(axis=1)] for lp in self._log_probs(self._encode(sentences, "sentences"))
        ]

    def evaluate(self, sentences, tags) -> dict:
        """``loss`` (mean cross-entropy per token) and token ``accuracy``."""
        seqs = self._encode(sentences, "sentences")
        targets = self._targets(seqs, [list(t) for t in tags])
        total = correct = count = 0.0
        for b, lp in enumerate(self._log_probs(seqs)):
            y = targets[: len(lp), b]
            total -= float(lp[np.arange(len(y)), y].sum())
            correct += int((lp.argmax(axis=1) == y).sum())
            count += len(y)
        return {"loss": total / count, "accuracy": correct / count}

    def accuracy(self, sentences, tags) -> float:
        return self.evaluate(sentences, tags)["accuracy"]
