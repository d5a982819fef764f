"""What the models share: building recurrent layers, padding batches, saving with configuration,
and the training loop (progress bar, validation, clipping, checkpoints, time budget)."""

from __future__ import annotations

import math
import numbers
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .. import nn
from ..nn._blas import single_threaded_blas
from ..nn.module import Module, read_meta
from .vocab import Vocab

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


def check_cell(cell):
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
    return cell


def make_rnn(cell, input_size, hidden_size, num_layers, dropout, bidirectional, dtype, seed, num_threads=0):
    return CELLS[check_cell(cell)](
        input_size,
        hidden_size,
        num_layers=num_layers,
        dropout=dropout,
        bidirectional=bidirectional,
        dtype=dtype,
        seed=seed,
        num_threads=num_threads,
    )


def check_vocab(vocab, name="vocab"):
    if not isinstance(vocab, Vocab):
        raise TypeError(f"{name}: expected a seqkernels.models.Vocab, got {type(vocab).__name__}")
    return vocab


def check_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_real(value, name, minimum=0.0, strict=False, allow_none=False):
    if value is None and allow_none:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {minimum}, got {value!r}")
    return float(value)


def seeds(seed, n):
    """``n`` independent integer seeds derived from one (so every layer gets its own stream)."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n)]


def decoding_controls(
    vocab, *, repetition_penalty=1.0, no_repeat_ngram_size=0, bad_words=None, suppress_tokens=None
) -> dict:
    """The keyword arguments of :mod:`seqkernels.search` for the models' decoding controls.
    ``bad_words``: texts, each encoded with ``vocab`` (a one-token text is never generated; a
    longer one never completed), or token-id sequences; ``suppress_tokens``: tokens (str) or ids.
    """

    def ids(word, name):
        if isinstance(word, str):
            toks = vocab.encode(word)
            if not toks:
                raise ValueError(f"{name}: {word!r} encodes to no token")
            if vocab.unk_id in toks:
                raise ValueError(f"{name}: {word!r} holds a token outside the vocabulary")
            return toks
        return list(word)

    if isinstance(bad_words, str) or isinstance(suppress_tokens, str):
        raise TypeError("bad_words and suppress_tokens: expected a list, got a str")
    suppress = None
    if suppress_tokens is not None:
        suppress = []
        for i, t in enumerate(suppress_tokens):
            suppress += ids(t, f"suppress_tokens[{i}]") if isinstance(t, str) else [t]
    words = None if bad_words is None else [ids(w, f"bad_words[{i}]") for i, w in enumerate(bad_words)]
    return dict(
        repetition_penalty=repetition_penalty,
        no_repeat_ngram_size=no_repeat_ngram_size,
        bad_words=words,
        suppress_tokens=suppress,
    )


def pad(seqs, pad_value=0, dtype=np.int64):
    """Token lists -> ``(ids (T, B), lengths (B,))``, sequence-major, padded with ``pad_value``."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    if lengths.size and lengths.min() < 1:
        i = int(np.argmin(lengths))
        raise ValueError(f"sequence {i} is empty (every sequence needs at least one token)")
    ids = np.full((int(lengths.max()) if lengths.size else 0, len(seqs)), pad_value, dtype=dtype)
    for b, s in enumerate(seqs):
        ids[: len(s), b] = s
    return ids, lengths


def batches(n, batch_size, rng=None):
    """Index batches over ``range(n)``, shuffled when ``rng`` is given."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


@contextmanager
def evaluating(model):
    """Eval mode inside the block, the previous mode after it (and NumPy's BLAS on one thread:
    see :mod:`seqkernels.nn._blas`)."""
    was = model.training
    model.eval()
    try:
        with single_threaded_blas():
            yield model
    finally:
        model.train(was)


def state_tuple(h):
    """A recurrent layer's final state as a tuple of arrays ``(L*D, B, H)``: ``(h,)`` or ``(h, c)``."""
    return tuple(h) if isinstance(h, tuple) else (h,)


def state_arg(hs):
    """The inverse of :func:`state_tuple`: what a recurrent layer takes as ``hx``."""
    return tuple(hs) if len(hs) == 2 else hs[0]


class Model(Module):
    """A model: a :class:`Module` that knows its configuration, so ``save`` writes everything needed
    to rebuild it and :meth:`from_file` (or :func:`seqkernels.models.load`) does."""

    def _config(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _meta(self):
        return {"class": type(self).__name__, "config": self._config()}

    @classmethod
    def _from_config(cls, config):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_file(cls, path):
        """Rebuild a model written by :meth:`save` (configuration, vocabularies and weights)."""
        meta = read_meta(path)
        if not meta or "class" not in meta:
            raise ValueError(f"path: {path} holds no model configuration (was it written by a model's save()?)")
        if meta["class"] != cls.__name__ and cls is not Model:
            raise ValueError(f"path: {path} holds a {meta['class']}, not a {cls.__name__}")
        target = MODEL_CLASSES[meta["class"]] if cls is Model else cls
        model = target._from_config(meta["config"])
        model.load(path)
        return model


MODEL_CLASSES: dict[str, type] = {}


def register(cls):
    MODEL_CLASSES[cls.__name__] = cls
    return cls


@dataclass
class TrainingHistory:
    """What :func:`fit_loop` (and every model's ``fit``) returns.

    Per epoch: ``train_loss`` (mean loss per token) and ``val_loss`` (empty without validation).
    Per step: ``step_loss`` and ``step_tokens`` (cumulative tokens after the step). Totals:
    ``seconds`` (training time, validation excluded), ``tokens``, ``tokens_per_s``,
    ``skipped_steps`` (steps whose gradient norm was not finite), ``stopped`` ("epochs" or "time"),
    ``best_val_loss`` (None without validation) and ``restored_best`` (whether the best epoch's
    parameters were put back). ``history["train_loss"]`` reads a field like a dict does.
    """

    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    step_loss: list = field(default_factory=list)
    step_tokens: list = field(default_factory=list)
    seconds: float = 0.0
    tokens: int = 0
    tokens_per_s: float = 0.0
    skipped_steps: int = 0
    stopped: str = "epochs"
    best_val_loss: float | None = None
    restored_best: bool = False

    def __getitem__(self, name: str):
        if name not in self.__dataclass_fields__:
            raise KeyError(name)
        return getattr(self, name)


def _train_epoch(model, bar, *, train_step, optimizer, clip, hist, max_seconds) -> tuple[float, bool]:
    """One pass over the batches of ``bar`` (a tqdm bar over them): train step, clipping, optimiser
    step, bookkeeping in ``hist``. Returns the epoch's mean loss per token and whether the time
    budget ran out."""
    ep_loss, ep_tokens = 0.0, 0
    for batch in bar:
        t0 = time.perf_counter()
        model.train()
        loss, n = train_step(batch)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"training loss became {loss} at step {len(hist.step_loss)}; lower the learning rate or clip gradients"
            )
        norm = nn.clip_grad_norm(model, clip) if clip is not None else 0.0
        if math.isfinite(norm):
            optimizer.step()
        else:
            hist.skipped_steps += 1
        hist.seconds += time.perf_counter() - t0
        ep_loss += loss * n
        ep_tokens += n
        hist.tokens += n
        hist.step_loss.append(loss)
        hist.step_tokens.append(hist.tokens)
        bar.set_postfix_str(
            f"loss={ep_loss / max(ep_tokens, 1):.3f}, tok/s={hist.tokens / max(hist.seconds, 1e-9):,.0f}", refresh=False
        )
        if max_seconds is not None and hist.seconds >= max_seconds:
            return ep_loss / max(ep_tokens, 1), True
    return ep_loss / max(ep_tokens, 1), False


def fit_loop(
    model,
    *,
    make_batches,
    train_step,
    epochs,
    optimizer,
    clip,
    validate=None,
    checkpoint=None,
    progress=True,
    max_seconds=None,
    desc="train",
    restore_best=False,
) -> TrainingHistory:
    """Run ``epochs`` passes (or until ``max_seconds`` of training time).

    make_batches(epoch) -> list of batches; train_step(batch) -> (mean loss, tokens) after the
    forward and backward passes (gradients set); validate() -> mean validation loss per token.
    After each step: clip the global gradient norm to ``clip`` (None: no clipping; a step whose
    norm is not finite is skipped and counted) and let the optimiser update. After each epoch:
    validate, and write ``checkpoint`` (every epoch without validation, else when the validation
    loss improves). The progress bar (tqdm, to stderr) shows the epoch's mean loss and tokens/s.
    With ``restore_best`` (and ``validate``) the parameters of the best validation epoch are put
    back at the end (a copy is kept in memory), so overfitting in the last epochs costs nothing.
    Returns a :class:`TrainingHistory`.
    """
    from tqdm.auto import tqdm

    hist = TrainingHistory()
    was_training = model.training
    best, best_state = math.inf, None
    try:
        with single_threaded_blas():  # NumPy's BLAS threads would fight the kernels' OpenMP team
            for epoch in range(epochs):
                bar = tqdm(
                    make_batches(epoch),
                    desc=f"{desc} epoch {epoch + 1}/{epochs}",
                    disable=not progress,
                    unit="batch",
                    leave=True,
                    dynamic_ncols=True,
                    mininterval=0.5,
                )
                try:
                    train_loss, out_of_time = _train_epoch(
                        model,
                        bar,
                        train_step=train_step,
                        optimizer=optimizer,
                        clip=clip,
                        hist=hist,
                        max_seconds=max_seconds,
                    )
                finally:
                    bar.close()
                hist.train_loss.append(train_loss)
                improved = True
                if validate is not None:
                    val = float(validate())
                    hist.val_loss.append(val)
                    improved = val < best
                    best = min(best, val)
                    hist.best_val_loss = best
                    if progress:
                        tqdm.write(
                            f"{desc} epoch {epoch + 1}: train loss {train_loss:.4f}, "
                            f"validation loss {val:.4f}" + (" (best)" if improved else "")
                        )
                    if improved and restore_best:
                        best_state = model.state_dict()
                if checkpoint is not None and improved:
                    model.save(checkpoint)
                if out_of_time:
                    hist.stopped = "time"
                    break
    finally:
        model.train(was_training)
    if best_state is not None and hist.val_loss[-1] > best:
        model.load_state_dict(best_state)
        hist.restored_best = True
    hist.tokens_per_s = hist.tokens / hist.seconds if hist.seconds > 0 else 0.0
    return hist


def make_optimizer(model, optimizer, lr):
    """``"adam"``/``"sgd"`` by name (with ``lr``), or an optimiser instance built on ``model``."""
    if isinstance(optimizer, nn.optim.Optimizer):
        if optimizer.module is not model:
            raise ValueError("optimizer: was built for another module; pass Adam(model, ...) for this model")
        return optimizer
    lr = check_real(lr, "lr", 0.0, strict=True)
    if optimizer == "adam":
        return nn.Adam(model, lr=lr)
    if optimizer == "sgd":
        return nn.SGD(model, lr=lr)
    raise ValueError(f"optimizer must be 'adam', 'sgd' or a seqkernels.nn optimiser, got {optimizer!r}")
