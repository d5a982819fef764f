"""Recurrent language model (character- or word-level): training by truncated back-propagation
through time, perplexity and bits per character, sampling, greedy and beam-search decoding."""

from __future__ import annotations

import math

import numpy as np

from .. import nn, search
from ._base import (
    Model,
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

__all__ = ["LanguageModel"]


def _lines(texts, name="texts"):
    """A str is split into lines; a list is taken as given (one line or document per entry)."""
    if isinstance(texts, str):
        return texts.split("\n")
    if isinstance(texts, (list, tuple)):
        return list(texts)
    raise TypeError(f"{name}: expected a str or a list of str, got {type(texts).__name__}")


@register
class LanguageModel(Model):
    """``Embedding -> Dropout -> LSTM/GRU/RNN (num_layers, dropout between layers) -> Dropout ->
    Linear`` predicting the next token.

    Text layout: every line (or list entry) is its tokens followed by ``<EOS>``, and a stream
    starts with ``<EOS>``, so ``<EOS>`` both ends a line and is the context a line starts from;
    sampling starts from ``<EOS>`` and stops at the next one. Training cuts the stream into
    ``batch_size`` parallel rows and runs windows of ``bptt`` steps, carrying the recurrent state
    from one window to the next (truncated BPTT).

    ``seed`` fixes the initial weights and the dropout masks; ``fit(seed=...)`` fixes where the
    windows start in each epoch. Computation is in ``dtype`` (float32 by default). ``num_threads``
    goes to the recurrent layers (0: the OpenMP default; 1 suits small models and busy machines).
    """

    def __init__(
        self,
        vocab: Vocab,
        *,
        cell="lstm",
        embedding_dim=64,
        hidden_size=256,
        num_layers=1,
        dropout=0.0,
        dtype=np.float32,
        seed=0,
        num_threads=0,
    ):
        super().__init__()
        self.vocab = check_vocab(vocab)
        self.cell = check_cell(cell)
        self.embedding_dim = check_int(embedding_dim, "embedding_dim")
        self.hidden_size = check_int(hidden_size, "hidden_size")
        self.num_layers = check_int(num_layers, "num_layers")
        self.dropout = nn._arrays.check_probability(dropout, "dropout")
        self.dtype = nn._arrays.check_float_dtype(dtype)
        self.seed = seed
        s = seeds(seed, 5)
        V = len(vocab)
        self.embedding = nn.Embedding(V, self.embedding_dim, padding_idx=vocab.pad_id, dtype=self.dtype, seed=s[0])
        self.drop_in = nn.Dropout(self.dropout, seed=s[1])
        self.rnn = make_rnn(
            cell,
            self.embedding_dim,
            self.hidden_size,
            self.num_layers,
            self.dropout,
            False,
            self.dtype,
            s[2],
            num_threads,
        )
        self.drop_out = nn.Dropout(self.dropout, seed=s[3])
        self.head = nn.Linear(self.hidden_size, V, dtype=self.dtype, seed=s[4])

    # ---- configuration ------------------------------------------------------------------------
    def _config(self):
        return {
            "vocab": self.vocab.to_dict(),
            "cell": self.cell,
            "embedding_dim": self.embedding_dim,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "dtype": self.dtype.name,
            "seed": self.seed,
        }

    @classmethod
    def _from_config(cls, c):
        c = dict(c)
        return cls(Vocab.from_dict(c.pop("vocab")), **c)

    def __repr__(self):
        return (
            f"LanguageModel({self.vocab.level}-level, V={len(self.vocab)}, {self.cell.upper()} "
            f"{self.num_layers}x{self.hidden_size}, embedding {self.embedding_dim}, dropout {self.dropout}, "
            f"{self.num_parameters():,} parameters)"
        )

    # ---- forward / backward -------------------------------------------------------------------
    def forward(self, ids, hx=None, lengths=None):
        """``ids (T, B)`` -> ``(logits (T, B, V), h_n)`` (``h_n`` as the recurrent layer returns it)."""
        x = self.drop_in(self.embedding(ids))
        y, h = self.rnn(x, hx, lengths)
        return self.head(self.drop_out(y)), h

    def backward(self, dlogits):
        dy = self.drop_out.backward(self.head.backward(dlogits))
        dx, _ = self.rnn.backward(dy)
        self.embedding.backward(self.drop_in.backward(dx))

    def loss(self, inputs, targets, hx=None):
        """Training-mode forward + backward on one window: mean cross-entropy of ``targets`` given
        ``inputs`` (both ``(T, B)`` ids; targets equal to ``<PAD>`` are ignored). Sets the gradients
        and returns ``(loss, tokens, h_n)``."""
        logits, h = self.forward(inputs, hx)
        loss, dlogits = nn.softmax_cross_entropy(logits, targets, ignore_index=self.vocab.pad_id)
        self.backward(dlogits)
        return loss, int((np.asarray(targets) != self.vocab.pad_id).sum()), h

    # ---- data ---------------------------------------------------------------------------------
    def encode_stream(self, texts) -> np.ndarray:
        """``<EOS> line1 <EOS> line2 <EOS> ...`` as an int64 id array."""
        ids = [self.vocab.eos_id]
        for line in _lines(texts):
            ids += self.vocab.encode(line)
            ids.append(self.vocab.eos_id)
        return np.asarray(ids, dtype=np.int64)

    @staticmethod
    def _rows(stream, batch_size, offset=0):
        """Inputs and next-token targets as ``(batch_size, n)`` rows of a continuous stream."""
        s = stream[offset:]
        n = (len(s) - 1) // batch_size
        if n < 1:
            raise ValueError(f"texts: {len(stream)} tokens are too few for batch_size={batch_size}")
        return s[: batch_size * n].reshape(batch_size, n), s[1 : batch_size * n + 1].reshape(batch_size, n)

    # ---- training -----------------------------------------------------------------------------
    def tune_threads(self, texts, *, optimizer, batch_size=32, bptt=64, clip=1.0, steps=6) -> dict:
        """Pick the recurrent layer's thread count by timing real training steps on ``texts``.

        On a machine with more than one core, runs ``steps`` training windows (plus one to warm up)
        alternating between the full team and one thread, keeps the faster as
        ``self.rnn.num_threads`` and returns ``{threads: median ms per step}`` (empty when there
        is nothing to choose: one core, or too little text). The steps are real: ``optimizer``
        applies them. Worth it on a shared machine, where the other programs' load can make a full
        team slower than one thread."""
        import time

        from .. import build_info

        cores = int(build_info().get("team_threads") or build_info().get("openmp_threads") or 1)
        batch_size, bptt = check_int(batch_size, "batch_size"), check_int(bptt, "bptt")
        steps = check_int(steps, "steps")
        if cores < 2:
            return {}
        x, y = self._rows(self.encode_stream(texts), batch_size)
        windows = [
            (np.ascontiguousarray(x[:, i : i + bptt].T), np.ascontiguousarray(y[:, i : i + bptt].T))
            for i in range(0, x.shape[1] - bptt, bptt)
        ][: steps + 1]
        if len(windows) < steps + 1:
            return {}
        times = {cores: [], 1: []}
        with nn.single_threaded_blas():
            for step, (inputs, targets) in enumerate(windows):
                n = cores if step % 2 else 1
                self.rnn.num_threads = n
                t0 = time.perf_counter()
                self.loss(inputs, targets)
                if clip is not None:
                    nn.clip_grad_norm(self, clip)
                optimizer.step()
                if step:  # the first step warms up
                    times[n].append(time.perf_counter() - t0)
        ms = {n: 1e3 * float(np.median(t)) for n, t in times.items()}
        self.rnn.num_threads = min(ms, key=ms.get)
        return ms

    def fit(
        self,
        texts,
        *,
        val_texts=None,
        epochs=1,
        batch_size=32,
        bptt=64,
        lr=2e-3,
        optimizer="adam",
        clip=1.0,
        max_seconds=None,
        checkpoint=None,
        progress=True,
        seed=0,
        restore_best=False,
    ):
        """Train on ``texts`` (a str, split into lines, or a list of lines/documents).

        epochs / max_seconds: stop after ``epochs`` passes or ``max_seconds`` of training time,
        whichever comes first. optimizer: ``"adam"``, ``"sgd"`` (with ``lr``) or an optimiser built
        on this model. clip: global gradient-norm limit (None: none). val_texts: validated after each
        epoch (mean loss per token). checkpoint: ``.npz`` path written after each epoch (with
        validation: when it improves); reload with ``LanguageModel.from_file``. restore_best: with
        ``val_texts``, end with the parameters of the best validation epoch.
        Returns the :class:`TrainingHistory` of the training loop (losses are mean nats per token).
        """
        epochs = check_int(epochs, "epochs")
        batch_size = check_int(batch_size, "batch_size")
        bptt = check_int(bptt, "bptt")
        clip = check_real(clip, "clip", 0.0, strict=True, allow_none=True)
        max_seconds = check_real(max_seconds, "max_seconds", 0.0, strict=True, allow_none=True)
        stream = self.encode_stream(texts)
        opt = make_optimizer(self, optimizer, lr)
        rng = np.random.default_rng(seed)
        carry = {}

        def make_batches(epoch):
            # a new random start each epoch moves the window boundaries; the state restarts at zero
            offset = int(rng.integers(0, min(bptt, max(1, len(stream) - batch_size * 2))))
            x, y = self._rows(stream, batch_size, offset)
            carry["h"] = None
            return [(x[:, i : i + bptt].T, y[:, i : i + bptt].T) for i in range(0, x.shape[1], bptt)]

        def train_step(batch):
            inputs, targets = batch
            loss, n, h = self.loss(np.ascontiguousarray(inputs), np.ascontiguousarray(targets), carry["h"])
            carry["h"] = h  # carried, not differentiated through (truncated BPTT)
            return loss, n

        validate = None if val_texts is None else (lambda: self.evaluate(val_texts)["loss"])
        return fit_loop(
            self,
            make_batches=make_batches,
            train_step=train_step,
            epochs=epochs,
            optimizer=opt,
            clip=clip,
            validate=validate,
            checkpoint=checkpoint,
            progress=progress,
            max_seconds=max_seconds,
            desc="lm",
            restore_best=restore_best,
        )

    # ---- evaluation ---------------------------------------------------------------------------
    def evaluate(self, texts, batch_size=16, bptt=256) -> dict:
        """Cross-entropy of ``texts`` under the model (eval mode, state carried through the stream
        in ``batch_size`` parallel rows). Every token after the leading ``<EOS>`` is predicted,
        each line's ``<EOS>`` included. Returns ``loss`` (mean nats per token), ``perplexity``
        (``exp(loss)``), ``bits_per_token``, ``bits_per_char`` (total bits over the characters of
        the text, one newline counted per line: equal to ``bits_per_token`` at the character level)
        and ``tokens``."""
        lines = _lines(texts)
        stream = self.encode_stream(lines)
        batch_size = check_int(batch_size, "batch_size")
        batch_size = max(1, min(batch_size, (len(stream) - 1)))
        bptt = check_int(bptt, "bptt")
        x, y = self._rows(stream, batch_size)
        # the tail that does not fill a row is scored by one extra row of its own
        tail = stream[batch_size * x.shape[1] :]
        total, count = 0.0, 0
        with evaluating(self):
            h = None
            for i in range(0, x.shape[1], bptt):
                logits, h = self.forward(np.ascontiguousarray(x[:, i : i + bptt].T), h)
                loss, _ = nn.softmax_cross_entropy(logits, np.ascontiguousarray(y[:, i : i + bptt].T), reduction="sum")
                total += loss
                count += y[:, i : i + bptt].size
            if len(tail) > 1:
                logits, _ = self.forward(tail[:-1, None])
                total += nn.softmax_cross_entropy(logits, tail[1:, None], reduction="sum")[0]
                count += len(tail) - 1
        chars = (
            sum(len(line) + 1 for line in lines)
            if self.vocab.level == "char"
            else sum(len(line if isinstance(line, str) else " ".join(line)) + 1 for line in lines)
        )
        loss = total / count
        return {
            "loss": loss,
            "perplexity": math.exp(loss),
            "bits_per_token": loss / math.log(2),
            "bits_per_char": total / math.log(2) / chars,
            "tokens": count,
        }

    def perplexity(self, texts) -> float:
        """``exp(mean cross-entropy per token)`` of ``texts`` (see :meth:`evaluate`)."""
        return self.evaluate(texts)["perplexity"]

    def bits_per_char(self, texts) -> float:
        """Total bits the model needs for ``texts`` divided by their characters (newlines counted)."""
        return self.evaluate(texts)["bits_per_char"]

    # ---- decoding -----------------------------------------------------------------------------
    def _prime(self, prompts):
        """Run ``<EOS> + prompt`` for every prompt (eval mode). Returns the state after it,
        ``(h[, c])`` each ``(L, N, H)``, and the log-probs ``(N, V)`` of the token that follows."""
        seqs = [[self.vocab.eos_id] + self.vocab.encode(p) for p in prompts]
        ids, lengths = pad(seqs, self.vocab.pad_id)
        with evaluating(self):
            y, h = self.rnn(self.embedding(ids), None, lengths)
            last = y[lengths - 1, np.arange(len(seqs))]
            log_probs = nn.log_softmax(self.head(last))
        return state_tuple(h), log_probs

    def _step(self):
        """``step(tokens, state)`` for :mod:`seqkernels.search`: state is ``(h[, c], pending)``;
        ``pending`` holds the primed log-probs, returned (and cleared) by the first call."""

        def step(tokens, state):
            *hs, pending = state
            if pending is not None:
                return pending, (*hs, None)
            y, h = self.rnn(self.embedding(np.asarray(tokens)[None, :]), state_arg(hs))
            return nn.log_softmax(self.head(y[0])), (*state_tuple(h), None)

        return step

    @staticmethod
    def _reorder(state, index):
        *hs, pending = state
        return (*(a[:, index] for a in hs), None if pending is None else pending[index])

    @staticmethod
    def _prompts(prompts):
        """(list of prompts, whether a single str was given)."""
        if isinstance(prompts, str):
            return [prompts], True
        if not isinstance(prompts, (list, tuple)) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompts: expected a str or a non-empty list of str")
        return list(prompts), False

    def sample(
        self, n=1, *, temperature=1.0, seed=None, max_len=200, prompt="", top_k=None, top_p=None, min_len=0, **controls
    ) -> list[str]:
        """``n`` texts drawn token by token from ``softmax(logits / temperature)``, each starting
        with ``prompt`` and stopping at ``<EOS>`` (not included) or after ``max_len`` new tokens.
        The same ``seed`` gives the same texts; a list of ``n`` seeds gives each text its own.
        ``top_k``, ``top_p``, ``min_len`` and the decoding controls (``repetition_penalty``,
        ``no_repeat_ngram_size``, ``bad_words``, ``suppress_tokens``; see :meth:`beam_search`) are
        those of :func:`seqkernels.search.sample`."""
        n = check_int(n, "n")
        hs, lp = self._prime([prompt] * n)
        with evaluating(self):
            hyps = search.sample(
                self._step(),
                (*hs, lp),
                batch_size=n,
                bos_id=self.vocab.eos_id,
                eos_id=self.vocab.eos_id,
                max_len=check_int(max_len, "max_len"),
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                seed=seed,
                min_len=min_len,
                **decoding_controls(self.vocab, **controls),
            )
        return [self._join(prompt, h.tokens) for h in hyps]

    def _join(self, prompt, tokens):
        text = self.vocab.decode(tokens)
        if self.vocab.level == "word" and prompt and text:
            return self.vocab.join(self.vocab.tokenize(prompt)) + " " + text
        return (prompt if self.vocab.level == "char" else self.vocab.join(self.vocab.tokenize(prompt))) + text

    def greedy(self, prompts="", *, max_len=100, min_len=0, **controls):
        """The most likely next token at every step, from each prompt (a str or a list of str) to
        ``<EOS>`` or ``max_len`` new tokens. Returns a str per prompt (one str for a str prompt).
        ``min_len`` and the decoding controls: as in :meth:`beam_search`."""
        prompts, single = self._prompts(prompts)
        hs, lp = self._prime(prompts)
        with evaluating(self):
            hyps = search.greedy_search(
                self._step(),
                (*hs, lp),
                batch_size=len(prompts),
                bos_id=self.vocab.eos_id,
                eos_id=self.vocab.eos_id,
                max_len=check_int(max_len, "max_len"),
                min_len=min_len,
                **decoding_controls(self.vocab, **controls),
            )
        out = [self._join(p, h.tokens) for p, h in zip(prompts, hyps)]
        return out[0] if single else out

    def beam_search(
        self,
        prompts="",
        *,
        beam_size=5,
        max_len=100,
        length_penalty=0.7,
        min_len=0,
        n_best=1,
        early_stopping="exact",
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        bad_words=None,
        suppress_tokens=None,
        patience=1.0,
        num_beam_groups=1,
        diversity_penalty=0.0,
        sampling_topk=1,
        sampling_temperature=1.0,
        seed=None,
    ):
        """Complete each prompt with :func:`seqkernels.search.beam_search` (hypotheses ranked by
        ``log P / T_y**length_penalty``, ``T_y`` counting the ``<EOS>``). Returns, per prompt, the
        best completion (``n_best=1``) or a list of the ``n_best`` best; a str prompt gives one
        result rather than a list of one. ``early_stopping="exact"`` (default here) keeps searching
        until no live beam can beat the finished ones: with ``True`` a confident model's search
        stops as soon as ``beam_size`` unlikely short lines have ended, before the likely long one
        has.

        Decoding controls (exact semantics at :func:`seqkernels.search.beam_search`; they look at
        the generated tokens only, not the prompt): ``repetition_penalty`` (> 1 discourages tokens
        already generated), ``no_repeat_ngram_size`` (no n-gram of tokens - characters for a
        character-level model - is generated twice), ``bad_words`` (texts never generated),
        ``suppress_tokens`` (tokens never generated), ``patience`` (search until
        ``ceil(patience * beam_size)`` hypotheses have finished), ``num_beam_groups`` and
        ``diversity_penalty`` (diverse beam search: groups of beams pushed apart),
        ``sampling_topk``, ``sampling_temperature`` and ``seed`` (sampling inside beam search)."""
        prompts, single = self._prompts(prompts)
        B = check_int(beam_size, "beam_size")
        hs, lp = self._prime(prompts)
        state = (*(np.repeat(a, B, axis=1) for a in hs), np.repeat(lp, B, axis=0))
        with evaluating(self):
            results = search.beam_search(
                self._step(),
                state,
                batch_size=len(prompts),
                beam_size=B,
                bos_id=self.vocab.eos_id,
                eos_id=self.vocab.eos_id,
                max_len=check_int(max_len, "max_len"),
                min_len=min_len,
                length_penalty=length_penalty,
                n_best=n_best,
                reorder=self._reorder,
                early_stopping=early_stopping,
                patience=patience,
                num_beam_groups=num_beam_groups,
                diversity_penalty=diversity_penalty,
                sampling_topk=sampling_topk,
                sampling_temperature=sampling_temperature,
                seed=seed,
                **decoding_controls(
                    self.vocab,
                    repetition_penalty=repetition_penalty,
                    no_repeat_ngram_size=no_repeat_ngram_size,
                    bad_words=bad_words,
                    suppress_tokens=suppress_tokens,
                ),
            )
        out = [[self._join(p, h.tokens) for h in hyps] for p, hyps in zip(prompts, results)]
        out = [o[0] if n_best == 1 else o for o in out]
        return out[0] if single else out
