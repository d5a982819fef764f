"""Encoder-decoder (sequence to sequence) with optional Luong attention, teacher-forced training
over whole sequences, translation by beam search and BLEU evaluation."""

from __future__ import annotations

import numpy as np

from .. import metrics, nn, search
from ._base import (
    Model,
    batches,
    check_cell,
    check_int,
    check_real,
    check_vocab,
    decoding_controls,
    evaluating,
    fit_loop,
    make_optimizer,
    make_rnn,
    pad,
    register,
    seeds,
    state_arg,
    state_tuple,
)
from .vocab import Vocab

__all__ = ["Seq2Seq"]

IGNORE = -100


@register
class Seq2Seq(Model):
    """Encoder-decoder over the fused recurrent layers.

    Encoder: ``Embedding -> LSTM/GRU/RNN`` (``num_layers``, optionally bidirectional, hidden size
    ``H``). Decoder: ``Embedding -> LSTM/GRU/RNN`` of the same cell and layers with hidden size
    ``H_d = D*H``, started from the encoder's final states (for a bidirectional encoder the forward
    and reverse states of each layer are concatenated, which is why ``H_d = 2H``). With
    ``attention`` (default) every decoder output ``d_t`` attends over the encoder outputs
    (:class:`seqkernels.nn.Attention`, Luong "general", no input feeding) and the output layer sees
    ``tanh(W_c [d_t; context_t])``; without it the decoder outputs feed the output layer directly
    (the plain encoder-decoder of Sutskever et al. / Cho et al.).

    Training is teacher forcing over whole sequences: the decoder reads ``<BOS> y_1 .. y_n`` and
    predicts ``y_1 .. y_n <EOS>``; padded positions are ignored. Decoding runs the decoder one step
    at a time (T = 1) carrying its state; beam search reorders the state rows. ``num_threads`` goes
    to the recurrent layers (0: the OpenMP default; 1 suits small models and busy machines).
    """

    def __init__(
        self,
        src_vocab: Vocab,
        tgt_vocab: Vocab,
        *,
        cell="lstm",
        embedding_dim=64,
        hidden_size=128,
        num_layers=1,
        bidirectional=True,
        attention=True,
        dropout=0.0,
        dtype=np.float32,
        seed=0,
        num_threads=0,
    ):
        super().__init__()
        self.src_vocab = check_vocab(src_vocab, "src_vocab")
        self.tgt_vocab = check_vocab(tgt_vocab, "tgt_vocab")
        self.cell = check_cell(cell)
        self.embedding_dim = check_int(embedding_dim, "embedding_dim")
        self.hidden_size = check_int(hidden_size, "hidden_size")
        self.num_layers = check_int(num_layers, "num_layers")
        self.bidirectional = bool(bidirectional)
        self.attention = bool(attention)
        self.dropout = nn._arrays.check_probability(dropout, "dropout")
        self.dtype = nn._arrays.check_float_dtype(dtype)
        self.seed = seed
        s = seeds(seed, 10)
        D = 2 if self.bidirectional else 1
        Hd = D * self.hidden_size
        self.src_embedding = nn.Embedding(
            len(src_vocab), self.embedding_dim, padding_idx=src_vocab.pad_id, dtype=self.dtype, seed=s[0]
        )
        self.src_dropout = nn.Dropout(self.dropout, seed=s[1])
        self.encoder = make_rnn(
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
        self.tgt_embedding = nn.Embedding(
            len(tgt_vocab), self.embedding_dim, padding_idx=tgt_vocab.pad_id, dtype=self.dtype, seed=s[3]
        )
        self.tgt_dropout = nn.Dropout(self.dropout, seed=s[4])
        self.decoder = make_rnn(
            cell, self.embedding_dim, Hd, self.num_layers, self.dropout, False, self.dtype, s[5], num_threads
        )
        if self.attention:
            self.attend = nn.Attention(Hd, Hd, dtype=self.dtype, seed=s[6])
            self.combine = nn.Linear(2 * Hd, Hd, dtype=self.dtype, seed=s[7])
            self.combine_act = nn.Tanh()
        self.out_dropout = nn.Dropout(self.dropout, seed=s[8])
        self.head = nn.Linear(Hd, len(tgt_vocab), dtype=self.dtype, seed=s[9])

    # ---- configuration ------------------------------------------------------------------------
    def _config(self):
        return {
            "src_vocab": self.src_vocab.to_dict(),
            "tgt_vocab": self.tgt_vocab.to_dict(),
            "cell": self.cell,
            "embedding_dim": self.embedding_dim,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "attention": self.attention,
            "dropout": self.dropout,
            "dtype": self.dtype.name,
            "seed": self.seed,
        }

    @classmethod
    def _from_config(cls, c):
        c = dict(c)
        return cls(Vocab.from_dict(c.pop("src_vocab")), Vocab.from_dict(c.pop("tgt_vocab")), **c)

    def __repr__(self):
        return (
            f"Seq2Seq({self.cell.upper()} {self.num_layers}x{self.hidden_size}"
            f"{' bidirectional' if self.bidirectional else ''} encoder, "
            f"{'attention' if self.attention else 'no attention'}, V_src={len(self.src_vocab)}, "
            f"V_tgt={len(self.tgt_vocab)}, {self.num_parameters():,} parameters)"
        )

    # ---- encoder / decoder pieces --------------------------------------------------------------
    def _bridge(self, h_n):
        """Encoder final states ``(L*D, B, H)`` -> decoder initial states ``(L, B, D*H)``."""
        if not self.bidirectional:
            return h_n
        L, B, H = self.num_layers, h_n.shape[1], self.hidden_size
        return np.ascontiguousarray(h_n.reshape(L, 2, B, H).transpose(0, 2, 1, 3).reshape(L, B, 2 * H))

    def _unbridge(self, dh0):
        """Gradient of :meth:`_bridge`."""
        if not self.bidirectional or dh0 is None:
            return dh0
        L, B, H = self.num_layers, dh0.shape[1], self.hidden_size
        return np.ascontiguousarray(dh0.reshape(L, B, 2, H).transpose(0, 2, 1, 3).reshape(2 * L, B, H))

    def _encode(self, src_ids, src_lengths):
        enc_out, h = self.encoder(self.src_dropout(self.src_embedding(src_ids)), None, src_lengths)
        return enc_out, tuple(self._bridge(a) for a in state_tuple(h))

    def _output(self, dec_out, enc_out, src_lengths):
        """Decoder outputs ``(T, B, H_d)`` -> logits ``(T, B, V_tgt)``."""
        z = dec_out
        if self.attention:
            ctx = self.attend(dec_out, enc_out, src_lengths)
            z = self.combine_act(self.combine(np.concatenate([dec_out, ctx], axis=2)))
        return self.head(self.out_dropout(z))

    # ---- training -----------------------------------------------------------------------------
    def forward(self, src_ids, src_lengths, dec_in, dec_lengths):
        """Teacher-forced pass: ``src_ids (Ts, B)``, ``dec_in (Tt, B)`` (``<BOS>`` + target) with their
        lengths -> logits ``(Tt, B, V_tgt)``."""
        enc_out, h0 = self._encode(src_ids, src_lengths)
        self._enc_shape = enc_out.shape
        dec_out, _ = self.decoder(self.tgt_dropout(self.tgt_embedding(dec_in)), state_arg(h0), dec_lengths)
        return self._output(dec_out, enc_out, src_lengths)

    def backward(self, dlogits):
        dz = self.out_dropout.backward(self.head.backward(dlogits))
        denc = None
        if self.attention:
            dcat = self.combine.backward(self.combine_act.backward(dz))
            Hd = dcat.shape[2] // 2
            ddec_q, denc = self.attend.backward(np.ascontiguousarray(dcat[:, :, Hd:]))
            ddec = dcat[:, :, :Hd] + ddec_q
        else:
            ddec = dz
        dx, dh0 = self.decoder.backward(np.ascontiguousarray(ddec))
        self.tgt_embedding.backward(self.tgt_dropout.backward(dx))
        dhx = tuple(self._unbridge(a) for a in state_tuple(dh0))
        if denc is None:  # without attention only the final states reach the decoder
            denc = np.zeros(self._enc_shape, dtype=self.dtype)
        dsrc, _ = self.encoder.backward(denc, state_arg(dhx))
        self.src_embedding.backward(self.src_dropout.backward(dsrc))

    def _batch(self, src, tgt=None):
        src_seqs = [self.src_vocab.encode(s) for s in src]
        for i, s in enumerate(src_seqs):
            if not s:
                raise ValueError(f"src[{i}]: empty source (every source needs at least one token)")
        src_ids, src_len = pad(src_seqs, self.src_vocab.pad_id)
        if tgt is None:
            return src_ids, src_len
        tgt_seqs = [self.tgt_vocab.encode(t) for t in tgt]
        dec_in, dec_len = pad([[self.tgt_vocab.bos_id] + t for t in tgt_seqs], self.tgt_vocab.pad_id)
        targets, _ = pad([t + [self.tgt_vocab.eos_id] for t in tgt_seqs], IGNORE)
        return src_ids, src_len, dec_in, dec_len, targets

    def loss(self, src, tgt):
        """Training-mode forward + backward on one batch of (source, target) texts; returns
        ``(mean loss per target token, target tokens)`` (each target's ``<EOS>`` counted)."""
        src_ids, src_len, dec_in, dec_len, targets = self._batch(src, tgt)
        logits = self.forward(src_ids, src_len, dec_in, dec_len)
        loss, dlogits = nn.softmax_cross_entropy(logits, targets, ignore_index=IGNORE)
        self.backward(dlogits)
        return loss, int(dec_len.sum())

    def fit(
        self,
        src,
        tgt,
        *,
        val=None,
        epochs=10,
        batch_size=64,
        lr=2e-3,
        optimizer="adam",
        clip=5.0,
        max_seconds=None,
        checkpoint=None,
        progress=True,
        seed=0,
        restore_best=False,
    ):
        """Train on parallel lists of source and target texts (str or token lists). ``val``:
        ``(src, tgt)`` scored after each epoch (mean teacher-forced loss per token). Other arguments
        as in :meth:`LanguageModel.fit`. Returns the :class:`TrainingHistory`."""
        src, tgt = list(src), list(tgt)
        if len(src) != len(tgt):
            raise ValueError(f"tgt: {len(tgt)} targets for {len(src)} sources")
        epochs = check_int(epochs, "epochs")
        batch_size = check_int(batch_size, "batch_size")
        clip = check_real(clip, "clip", 0.0, strict=True, allow_none=True)
        max_seconds = check_real(max_seconds, "max_seconds", 0.0, strict=True, allow_none=True)
        opt = make_optimizer(self, optimizer, lr)
        rng = np.random.default_rng(seed)
        val_fn = None if val is None else (lambda: self.evaluate_loss(*val))
        return fit_loop(
            self,
            make_batches=lambda epoch: batches(len(src), batch_size, rng),
            train_step=lambda idx: self.loss([src[i] for i in idx], [tgt[i] for i in idx]),
            epochs=epochs,
            optimizer=opt,
            clip=clip,
            validate=val_fn,
            checkpoint=checkpoint,
            progress=progress,
            max_seconds=max_seconds,
            desc="seq2seq",
            restore_best=restore_best,
        )

    def evaluate_loss(self, src, tgt, batch_size=256) -> float:
        """Mean teacher-forced cross-entropy per target token (eval mode)."""
        src, tgt = list(src), list(tgt)
        total = count = 0.0
        with evaluating(self):
            for i in range(0, len(src), batch_size):
                src_ids, src_len, dec_in, dec_len, targets = self._batch(
                    src[i : i + batch_size], tgt[i : i + batch_size]
                )
                loss, _ = nn.softmax_cross_entropy(
                    self.forward(src_ids, src_len, dec_in, dec_len), targets, ignore_index=IGNORE, reduction="sum"
                )
                total += loss
                count += int(dec_len.sum())
        return total / count

    # ---- decoding -----------------------------------------------------------------------------
    def _decoder_step(self, enc_out, src_len, with_attention=False):
        """``step(tokens, state)`` for :mod:`seqkernels.search` over ``R`` rows whose encoder outputs
        ``enc_out (Ts, R, H_d)`` and lengths are fixed (beam rows of one item share its source, and
        reordering never moves a row to another item, so they need no reordering). With
        ``with_attention`` it also returns the attention weights ``(R, Ts)`` (coverage penalty)."""

        def step(tokens, state):
            x = self.tgt_embedding(np.asarray(tokens)[None, :])
            dec_out, h = self.decoder(x, state_arg(state))
            lp = nn.log_softmax(self._output(dec_out, enc_out, src_len)[0])
            if with_attention:
                return lp, state_tuple(h), self.attend.weights[:, 0, :]
            return lp, state_tuple(h)

        return step

    @staticmethod
    def _reorder(state, index):
        return tuple(a[:, index] for a in state)

    def translate(
        self,
        src,
        beam_size=5,
        length_penalty=0.7,
        *,
        max_len=None,
        n_best=1,
        batch_size=64,
        penalty="average",
        early_stopping="exact",
        min_len=0,
        prefix=None,
        patience=1.0,
        num_beam_groups=1,
        diversity_penalty=0.0,
        coverage_penalty=0.0,
        sampling_topk=1,
        sampling_temperature=1.0,
        seed=None,
        **controls,
    ):
        """Decode each source text. ``beam_size=1`` is greedy search; otherwise
        :func:`seqkernels.search.beam_search` ranks finished hypotheses by
        ``log P / T_y**length_penalty`` (``penalty="gnmt"``: ``((5 + T_y)/6)**length_penalty``).
        ``max_len``: at most this many target tokens (default ``2 * source length + 10``).
        ``early_stopping``: as in :func:`seqkernels.search.beam_search`; ``"exact"`` (default here)
        never returns a worse hypothesis than ``True``, which stops an item as soon as it has
        ``beam_size`` finished hypotheses.
        Returns a str per source (``n_best > 1``: a list of the ``n_best`` best); a single str
        source gives a single result.

        Decoding controls (exact semantics at :func:`seqkernels.search.beam_search`):
        ``min_len`` (no ``<EOS>`` before this many target tokens), ``prefix`` (a target text per
        source, or None, that every translation continues - CTranslate2's ``target_prefix``; it is
        part of the returned text), ``patience``, and as keywords ``repetition_penalty``,
        ``no_repeat_ngram_size``, ``bad_words`` (target texts never generated) and
        ``suppress_tokens`` (target tokens never generated).
        ``num_beam_groups``/``diversity_penalty`` (diverse beam search), ``coverage_penalty``
        (GNMT's ``beta``: the attention each source token received ranks finished translations;
        needs ``attention=True``) and ``sampling_topk``/``sampling_temperature``/``seed``
        (sampling inside beam search): as in :func:`seqkernels.search.beam_search`."""
        if coverage_penalty and not self.attention:
            raise ValueError("coverage_penalty: needs a model with attention (attention=True)")
        beam_kw = dict(
            num_beam_groups=num_beam_groups,
            diversity_penalty=diversity_penalty,
            coverage_penalty=coverage_penalty,
            sampling_topk=sampling_topk,
            sampling_temperature=sampling_temperature,
            seed=seed,
        )
        plain = num_beam_groups == 1 and not coverage_penalty and sampling_topk == 1
        single = isinstance(src, str)
        srcs = [src] if single else list(src)
        kw = decoding_controls(self.tgt_vocab, **controls)
        if prefix is not None:
            prefixes = [prefix] if single else list(prefix)
            if len(prefixes) != len(srcs) or not all(p is None or isinstance(p, str) for p in prefixes):
                raise ValueError("prefix: expected a target text (or None) per source")
            prefixes = [None if p is None else self.tgt_vocab.encode(p) for p in prefixes]
        B = check_int(beam_size, "beam_size")
        batch_size = check_int(batch_size, "batch_size")
        out = []
        with evaluating(self):
            for i in range(0, len(srcs), batch_size):
                chunk = srcs[i : i + batch_size]
                src_ids, src_len = self._batch(chunk)
                limit = check_int(max_len, "max_len") if max_len is not None else 2 * int(src_len.max()) + 10
                enc_out, h0 = self._encode(src_ids, src_len)
                N = len(chunk)
                if prefix is not None:
                    kw["prefix"] = prefixes[i : i + batch_size]
                if B == 1 and n_best == 1 and patience == 1.0 and plain:
                    hyps = search.greedy_search(
                        self._decoder_step(enc_out, src_len),
                        h0,
                        batch_size=N,
                        bos_id=self.tgt_vocab.bos_id,
                        eos_id=self.tgt_vocab.eos_id,
                        max_len=limit,
                        min_len=min_len,
                        **kw,
                    )
                    out += [self.tgt_vocab.decode(h.tokens) for h in hyps]
                    continue
                rows = np.repeat(np.arange(N), B)  # row n*B + b is beam b of item n
                results = search.beam_search(
                    self._decoder_step(
                        np.ascontiguousarray(enc_out[:, rows]), src_len[rows], with_attention=bool(coverage_penalty)
                    ),
                    tuple(np.ascontiguousarray(a[:, rows]) for a in h0),
                    batch_size=N,
                    beam_size=B,
                    bos_id=self.tgt_vocab.bos_id,
                    eos_id=self.tgt_vocab.eos_id,
                    max_len=limit,
                    length_penalty=length_penalty,
                    penalty=penalty,
                    n_best=n_best,
                    reorder=self._reorder,
                    early_stopping=early_stopping,
                    min_len=min_len,
                    patience=patience,
                    source_lengths=src_len,
                    **beam_kw,
                    **kw,
                )
                for hyps in results:
                    texts = [self.tgt_vocab.decode(h.tokens) for h in hyps]
                    out.append(texts[0] if n_best == 1 else texts)
        return out[0] if single else out

    def evaluate_bleu(self, src, references, beam_size=5, length_penalty=0.7, *, tokenize="13a", **kwargs):
        """Corpus BLEU (:func:`seqkernels.metrics.bleu`, sacrebleu's conventions) of the
        translations of ``src`` against one reference per source (a list of str), or several
        (a list of reference streams, as :func:`seqkernels.metrics.bleu` takes them). Extra keyword
        arguments go to :meth:`translate`. Returns the :class:`seqkernels.metrics.BLEUScore`."""
        hyps = self.translate(list(src), beam_size, length_penalty, **kwargs)
        refs = list(references)
        streams = [refs] if refs and isinstance(refs[0], str) else refs
        return metrics.bleu(hyps, streams, tokenize=tokenize)
