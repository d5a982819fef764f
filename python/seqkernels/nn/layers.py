"""Feed-forward training layers with explicit backward: ``Embedding``, ``Linear``, ``Dropout``,
``Tanh`` and ``Attention``.

Each is the vectorised form of a function in :mod:`seqkernels.reference.training` (float64, loops)
and is tested against it, against finite differences and, where torch has the op, against torch.
Layers compute in their ``dtype`` (float32 by default, float64 for checks); float inputs are cast.
Semantics of ``params``/``grads``/``backward`` are those of :class:`seqkernels.nn.module.Module`.
"""

from __future__ import annotations

import numpy as np

from ._arrays import (
    array_module,
    as_array,
    check_float_dtype,
    check_positive_int,
    check_probability,
    float_input,
    int_input,
    scatter_add,
)
from .module import Module

__all__ = ["Attention", "Dropout", "Embedding", "Linear", "Tanh"]


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _need_cache(layer):
    if layer._cache is None:
        raise ValueError(
            f"{type(layer).__name__}.backward() needs a forward pass in training mode first "
            "(call .train() and run forward; each forward allows one backward)"
        )
    cache, layer._cache = layer._cache, None
    return cache


def _check_dy(dy, shape, dtype, name="dy"):
    dy = float_input(dy, name, dtype)
    if dy.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)} (the shape of the forward output), got {dy.shape}")
    return dy


class Linear(Module):
    """``y = x Wᵀ + b`` over the last axis, as ``torch.nn.Linear``: ``weight (out, in)``,
    ``bias (out,)``, both initialised ``U(-1/sqrt(in), 1/sqrt(in))``."""

    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float32, seed=None):
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self.dtype = check_float_dtype(dtype)
        rng = _rng(seed)
        bound = 1.0 / np.sqrt(self.in_features)
        self.params["weight"] = rng.uniform(-bound, bound, (self.out_features, self.in_features)).astype(self.dtype)
        if bias:
            self.params["bias"] = rng.uniform(-bound, bound, self.out_features).astype(self.dtype)
        self._cache = None

    def forward(self, x):
        x = float_input(x, "x", self.dtype)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x: expected last dimension {self.in_features} (in_features), got shape {x.shape}")
        # one 2-D GEMM: a batched 3-D matmul is several times slower in NumPy
        y = x.reshape(-1, self.in_features) @ self.params["weight"].T
        if "bias" in self.params:
            y += self.params["bias"]
        self._cache = x if self.training else None
        return y.reshape(x.shape[:-1] + (self.out_features,))

    def backward(self, dy):
        """Returns dx; sets ``grads['weight']`` (and ``grads['bias']``)."""
        x = _need_cache(self)
        dy = _check_dy(dy, x.shape[:-1] + (self.out_features,), self.dtype)
        rows, drows = x.reshape(-1, self.in_features), dy.reshape(-1, self.out_features)
        self.grads = {"weight": drows.T @ rows}
        if "bias" in self.params:
            self.grads["bias"] = drows.sum(axis=0)
        return (drows @ self.params["weight"]).reshape(x.shape)

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features}, bias={'bias' in self.params})"


class Embedding(Module):
    """Lookup table ``weight (num_embeddings, embedding_dim)`` as ``torch.nn.Embedding``: rows drawn
    from N(0, 1), the ``padding_idx`` row zero and never given a gradient. ``freeze=True`` keeps the
    table fixed (backward sets no gradient, so optimisers leave it alone; it is still saved)."""

    def __init__(
        self, num_embeddings, embedding_dim, padding_idx=None, *, freeze=False, dtype=np.float32, seed=None, weight=None
    ):
        super().__init__()
        self.num_embeddings = check_positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self.dtype = check_float_dtype(dtype)
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)):
                raise TypeError(f"padding_idx must be an int or None, got {type(padding_idx).__name__}")
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(
                    f"padding_idx must be in [-{self.num_embeddings}, {self.num_embeddings}), got {padding_idx}"
                )
            padding_idx = int(padding_idx) % self.num_embeddings
        self.padding_idx = padding_idx
        self.freeze = bool(freeze)
        if weight is None:
            weight = _rng(seed).standard_normal((self.num_embeddings, self.embedding_dim))
            if padding_idx is not None:
                weight[padding_idx] = 0.0
        else:
            weight = as_array(weight, "weight")
            if weight.shape != (self.num_embeddings, self.embedding_dim):
                raise ValueError(
                    f"weight: expected shape {(self.num_embeddings, self.embedding_dim)}, got {weight.shape}"
                )
        self.params["weight"] = weight.astype(self.dtype, copy=True)
        self._cache = None

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, *, dtype=np.float32):
        """A table initialised from a ``(V, E)`` array (copied), frozen by default as in torch."""
        emb = as_array(embeddings, "embeddings")
        if emb.ndim != 2 or emb.dtype.kind != "f":
            raise ValueError(
                f"embeddings: expected a 2-D floating-point array (V, E), got shape {emb.shape} dtype {emb.dtype}"
            )
        return cls(emb.shape[0], emb.shape[1], padding_idx, freeze=freeze, dtype=dtype, weight=emb)

    @classmethod
    def from_word_vectors(
        cls,
        word_vectors,
        vocab=None,
        *,
        freeze=False,
        padding_idx=None,
        lowercase_fallback=True,
        dtype=np.float32,
        seed=None,
    ):
        """A table initialised from pretrained word vectors.

        ``word_vectors``: any object with ``.words`` (list of str) and ``.vectors`` (array
        ``(len(words), E)``); ``seqkernels.glove.WordVectors`` fits, and so does anything with those
        two attributes. ``vocab``: the model's tokens in id order (a list of str, or an object with a
        ``.tokens`` list such as :class:`seqkernels.models.Vocab`); None takes the word vectors' own
        order. A token missing from the vectors (also after lower-casing, with
        ``lowercase_fallback``) gets a random row N(0, σ²) with σ the standard deviation of the
        vectors; the ``padding_idx`` row is zero. The result records ``found`` (how many tokens had
        a vector) and ``missing`` (the others, as a list).
        """
        words = getattr(word_vectors, "words", None)
        vectors = getattr(word_vectors, "vectors", None)
        if words is None or vectors is None:
            raise TypeError(
                "word_vectors: expected an object with .words (list of str) and .vectors "
                f"(array), got {type(word_vectors).__name__}"
            )
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ValueError(
                f"word_vectors: .vectors must have shape (len(words), E) = ({len(words)}, E), got {vectors.shape}"
            )
        if vocab is None:
            emb = cls.from_pretrained(vectors, freeze=freeze, padding_idx=padding_idx, dtype=dtype)
            emb.found, emb.missing = len(words), []
            return emb
        tokens = list(getattr(vocab, "tokens", vocab))
        index = {w: i for i, w in enumerate(words)}
        rng = _rng(seed)
        scale = float(vectors.std()) if vectors.size else 1.0
        weight = np.empty((len(tokens), vectors.shape[1]))
        missing = []
        for i, tok in enumerate(tokens):
            j = index.get(tok)
            if j is None and lowercase_fallback and isinstance(tok, str):
                j = index.get(tok.lower())
            if j is None:
                missing.append(tok)
                weight[i] = rng.normal(0.0, scale, vectors.shape[1])
            else:
                weight[i] = vectors[j]
        if padding_idx is not None:
            weight[padding_idx] = 0.0
        emb = cls(len(tokens), vectors.shape[1], padding_idx, freeze=freeze, dtype=dtype, weight=weight)
        emb.found, emb.missing = len(tokens) - len(missing), missing
        return emb

    def forward(self, ids):
        """``ids``: integer array of any shape, values in ``[0, num_embeddings)``; returns
        ``ids.shape + (embedding_dim,)``."""
        ids = int_input(ids, "ids")
        xp = array_module(ids)
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.num_embeddings):
            raise ValueError(
                f"ids: every id must be in [0, {self.num_embeddings}), got min {int(ids.min())} "
                f"and max {int(ids.max())}"
            )
        out = xp.take(self.params["weight"], ids, axis=0)
        self._cache = ids if self.training else None
        return out

    def backward(self, dy):
        """Sets ``grads['weight']`` (unless frozen); returns None (ids have no gradient)."""
        ids = _need_cache(self)
        dy = _check_dy(dy, ids.shape + (self.embedding_dim,), self.dtype)
        if self.freeze:
            self.grads = {}
            return None
        xp = array_module(dy)
        dw = xp.zeros_like(self.params["weight"])
        scatter_add(xp, dw, ids.reshape(-1), dy.reshape(-1, self.embedding_dim))
        if self.padding_idx is not None:
            dw[self.padding_idx] = 0.0
        self.grads = {"weight": dw}
        return None

    def __repr__(self):
        extra = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        extra += ", freeze=True" if self.freeze else ""
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}{extra})"


class Dropout(Module):
    """Inverted dropout (``torch.nn.Dropout``): in training mode each entry is zeroed with
    probability ``p`` and the rest scaled by ``1/(1-p)``; identity in eval mode. The masks come from
    the layer's own ``numpy.random.Generator`` (``seed``), so a seeded run is reproducible."""

    def __init__(self, p=0.5, *, seed=None):
        super().__init__()
        self.p = check_probability(p, "p")
        self._rng = _rng(seed)
        self._cache = None

    def forward(self, x):
        x = as_array(x, "x")
        if x.dtype.kind != "f":
            raise TypeError(f"x: expected a floating-point array, got dtype {x.dtype}")
        if not self.training:
            self._cache = None
            return x
        if self.p == 0.0:
            self._cache = (None, x.shape, x.dtype)
            return x
        xp = array_module(x)
        keep = 1.0 - self.p
        # drawn on the host so a seed gives the same mask on any device
        mask = xp.asarray((self._rng.random(x.shape) < keep) / keep, dtype=x.dtype)
        self._cache = (mask, x.shape, x.dtype)
        return x * mask

    def backward(self, dy):
        mask, shape, dtype = _need_cache(self)
        dy = _check_dy(dy, shape, dtype)
        return dy if mask is None else dy * mask

    def __repr__(self):
        return f"Dropout(p={self.p})"


class Pointwise(Module):
    """An element-wise activation whose derivative is a function of its output: subclasses give
    ``_apply(xp, x)`` and ``_slope(y)``; backward returns ``dy * _slope(y)`` from the saved output."""

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, x):
        x = as_array(x, "x")
        if x.dtype.kind != "f":
            raise TypeError(f"x: expected a floating-point array, got dtype {x.dtype}")
        y = self._apply(array_module(x), x)
        self._cache = y if self.training else None
        return y

    def backward(self, dy):
        y = _need_cache(self)
        dy = _check_dy(dy, y.shape, y.dtype)
        return dy * self._slope(y)

    def __repr__(self):
        return f"{type(self).__name__}()"


class Tanh(Pointwise):
    """Element-wise tanh; backward uses the saved output (``1 - y²``)."""

    def _apply(self, xp, x):
        return xp.tanh(x)

    def _slope(self, y):
        return 1 - y * y


class Attention(Module):
    """Luong "general" attention (Luong et al. 2015) without input feeding: for every query step,
    scores ``s_j = q · W k_j`` over the valid keys, weights ``a = softmax(s)``, context
    ``Σ_j a_j k_j``. Because the query does not depend on earlier contexts, all decoder steps of a
    teacher-forced sequence are attended at once after the fused recurrent layer has run.

    ``weight (query_size, key_size)``, initialised ``U(-1/sqrt(key_size), 1/sqrt(key_size))``.
    ``forward(query (Tq, B, Hq), keys (Tk, B, Hk), lengths (B,) or None) -> context (Tq, B, Hk)``;
    keys at ``j >= lengths[b]`` get weight 0. The last weights are kept in ``self.weights``
    ``(B, Tq, Tk)`` for inspection. ``backward(dcontext) -> (dquery, dkeys)``.
    """

    def __init__(self, query_size, key_size, *, dtype=np.float32, seed=None):
        super().__init__()
        self.query_size = check_positive_int(query_size, "query_size")
        self.key_size = check_positive_int(key_size, "key_size")
        self.dtype = check_float_dtype(dtype)
        bound = 1.0 / np.sqrt(self.key_size)
        self.params["weight"] = _rng(seed).uniform(-bound, bound, (self.query_size, self.key_size)).astype(self.dtype)
        self.weights = None
        self._cache = None

    def forward(self, query, keys, lengths=None):
        q = float_input(query, "query", self.dtype)
        k = float_input(keys, "keys", self.dtype)
        if q.ndim != 3 or q.shape[2] != self.query_size:
            raise ValueError(f"query: expected shape (Tq, B, {self.query_size}), got {q.shape}")
        if k.ndim != 3 or k.shape[2] != self.key_size or k.shape[1] != q.shape[1]:
            raise ValueError(
                f"keys: expected shape (Tk, {q.shape[1]}, {self.key_size}) (batch of query), got {k.shape}"
            )
        xp = array_module(q, k)
        Tk, B = k.shape[0], k.shape[1]
        qb = q.transpose(1, 0, 2)  # (B, Tq, Hq)
        kb = k.transpose(1, 0, 2)  # (B, Tk, Hk)
        u = qb @ self.params["weight"]  # (B, Tq, Hk): project the query, cheap when Tq = 1
        s = u @ kb.transpose(0, 2, 1)  # (B, Tq, Tk)
        valid = None
        if lengths is not None:
            lengths = int_input(lengths, "lengths")
            if lengths.shape != (B,) or (B and (int(lengths.min()) < 1 or int(lengths.max()) > Tk)):
                raise ValueError(f"lengths: expected shape ({B},) with values in 1..{Tk}, got {lengths!r}")
            valid = xp.arange(Tk)[None, :] < xp.asarray(lengths)[:, None]  # (B, Tk)
            s = xp.where(valid[:, None, :], s, -xp.inf)
        s = s - s.max(axis=2, keepdims=True)
        a = xp.exp(s)
        a /= a.sum(axis=2, keepdims=True)
        ctx = (a @ kb).transpose(1, 0, 2)  # (Tq, B, Hk)
        self.weights = a
        self._cache = (qb, kb, u, a) if self.training else None
        return xp.ascontiguousarray(ctx)

    def backward(self, dcontext):
        qb, kb, u, a = _need_cache(self)
        B, Tq, _ = qb.shape
        dc = _check_dy(dcontext, (Tq, B, self.key_size), self.dtype, "dcontext").transpose(1, 0, 2)
        da = dc @ kb.transpose(0, 2, 1)  # (B, Tq, Tk)
        ds = a * (da - (da * a).sum(axis=2, keepdims=True))  # softmax backward; 0 where a = 0
        dkb = a.transpose(0, 2, 1) @ dc + ds.transpose(0, 2, 1) @ u
        du = ds @ kb  # (B, Tq, Hk)
        dqb = du @ self.params["weight"].T
        self.grads = {"weight": (qb.reshape(-1, self.query_size).T @ du.reshape(-1, self.key_size))}
        xp = array_module(dqb)
        return (xp.ascontiguousarray(dqb.transpose(1, 0, 2)), xp.ascontiguousarray(dkb.transpose(1, 0, 2)))

    def __repr__(self):
        return f"Attention(query_size={self.query_size}, key_size={self.key_size})"
