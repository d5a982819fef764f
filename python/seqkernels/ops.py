"""Single fused ops, validated and dispatched to the backend that serves the input arrays.

* :func:`beam_step` - one beam-search expansion step (docs/ops.md §3.1); the contract is that of
  :func:`seqkernels.reference.search.beam_step`, which documents every output.

Dispatch: NumPy float32 / float64 input runs the fused C++ kernel (``seqkernels._C.beam_step``,
computed in the dtype of ``scores``, OpenMP threads over items, checked against the reference in
tests/search); GPU input (CuPy or any object with ``__cuda_array_interface__``) goes to the CUDA
kernel (``seqkernels._cuda``, needs CuPy). Both happen at one place, :func:`_dispatch_beam_step`.
"""

from __future__ import annotations

import numpy as np

from ._backend import _C
from .reference.search import BeamStep, ngram_hashes

__all__ = ["BeamStep", "beam_step"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _on_gpu(x) -> bool:
    return hasattr(x, "__cuda_array_interface__")


def _as_array(x, name: str):
    """NumPy arrays and GPU arrays pass through; lists and tuples become NumPy arrays."""
    if isinstance(x, np.ndarray) or _on_gpu(x):
        return x
    if isinstance(x, (list, tuple)) or np.isscalar(x):
        return np.asarray(x)
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        raise TypeError(f"{name}: got a torch.Tensor; pass a NumPy or CuPy array")
    raise TypeError(f"{name}: expected a NumPy or CuPy array, got {type(x).__name__}")


def _validate_beam_step(scores, beam_scores, eos_id) -> None:
    if scores.ndim != 2:
        raise ValueError(f"scores: expected a 2-D array (N*B, V), got shape {tuple(scores.shape)}")
    if beam_scores.ndim != 2:
        raise ValueError(f"beam_scores: expected a 2-D array (N, B), got shape {tuple(beam_scores.shape)}")
    n_items, n_beams = beam_scores.shape
    if n_beams < 1:
        raise ValueError(f"beam_scores: needs at least one beam (B >= 1), got shape {tuple(beam_scores.shape)}")
    if scores.shape[0] != n_items * n_beams:
        raise ValueError(
            f"scores: has {scores.shape[0]} rows, but beam_scores is "
            f"{tuple(beam_scores.shape)}, so N*B = {n_items * n_beams} rows are expected"
        )
    vocab = scores.shape[1]
    if vocab < 1:
        raise ValueError("scores: the vocabulary is empty (V = 0)")
    if isinstance(eos_id, (bool, np.bool_)) or not isinstance(eos_id, (int, np.integer)):
        raise TypeError(f"eos_id: expected an int, got {type(eos_id).__name__}")
    if not 0 <= eos_id < vocab:
        raise ValueError(f"eos_id: {eos_id} is outside the vocabulary [0, {vocab})")
    if np.dtype(scores.dtype) not in _FLOATS:
        raise TypeError(f"scores: expected float32 or float64, got {scores.dtype}")
    if not np.issubdtype(np.dtype(beam_scores.dtype), np.floating):
        raise TypeError(f"beam_scores: expected a floating dtype, got {beam_scores.dtype}")
    if _on_gpu(scores) != _on_gpu(beam_scores):
        raise TypeError(
            "beam_scores: must be on the same device as scores "
            f"(got {type(scores).__name__} and {type(beam_scores).__name__})"
        )


def _token_array(x, name: str, rows: int, vocab: int, *, ndim: int, padded: bool):
    """A host int32 array of token ids with ``rows`` rows (ids ``< 0`` allowed only if ``padded``)."""
    if x is None:
        return None
    if _on_gpu(x):
        x = x.get() if hasattr(x, "get") else np.asarray(x)
    x = np.asarray(x)
    if x.ndim != ndim or x.shape[0] != rows:
        want = f"({rows},)" if ndim == 1 else f"({rows}, L)"
        raise ValueError(f"{name}: expected shape {want}, got {tuple(x.shape)}")
    if x.size and not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"{name}: expected integer token ids, got {x.dtype}")
    if x.size and (int(x.max()) >= vocab or (not padded and int(x.min()) < 0)):
        bad = int(x.max()) if int(x.max()) >= vocab else int(x.min())
        raise ValueError(
            f"{name}: token {bad} is outside the vocabulary [0, {vocab})" + (" (-1 pads)" if padded else "")
        )
    return np.ascontiguousarray(x, dtype=np.int32)


def _controls(
    scores, beam_scores, history, history_hash, repetition_penalty, no_repeat_ngram_size, banned, forced
) -> dict:
    """Validated decoding controls as the ``_C.beam_step`` keywords (host arrays); {} if all off."""
    rows, vocab = scores.shape
    if isinstance(repetition_penalty, (bool, np.bool_)) or not isinstance(
        repetition_penalty, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"repetition_penalty: expected a real number, got {type(repetition_penalty).__name__}")
    if not (np.isfinite(repetition_penalty) and repetition_penalty > 0):
        raise ValueError(f"repetition_penalty: must be finite and > 0, got {repetition_penalty}")
    if (
        isinstance(no_repeat_ngram_size, (bool, np.bool_))
        or not isinstance(no_repeat_ngram_size, (int, np.integer))
        or no_repeat_ngram_size < 0
    ):
        raise ValueError(f"no_repeat_ngram_size: expected an int >= 0, got {no_repeat_ngram_size!r}")
    out = {}
    history = _token_array(history, "history", rows, vocab, ndim=2, padded=False)
    if history is not None and (repetition_penalty != 1.0 or no_repeat_ngram_size > 0):
        out.update(
            history=history,
            repetition_penalty=float(repetition_penalty),
            no_repeat_ngram_size=int(no_repeat_ngram_size),
        )
        if no_repeat_ngram_size >= 2:
            if history_hash is None:
                history_hash = ngram_hashes(history, no_repeat_ngram_size)
            if _on_gpu(history_hash):
                history_hash = history_hash.get()
            history_hash = np.ascontiguousarray(history_hash, dtype=np.uint64)
            if history_hash.shape != history.shape:
                raise ValueError(
                    f"history_hash: expected shape {history.shape} (that of history), got {history_hash.shape}"
                )
            out["history_hash"] = history_hash
    elif history is None and (repetition_penalty != 1.0 or no_repeat_ngram_size > 0):
        raise ValueError("history: needed by repetition_penalty and no_repeat_ngram_size")
    banned = _token_array(banned, "banned", rows, vocab, ndim=2, padded=True)
    if banned is not None and banned.shape[1] and (banned >= 0).any():
        out["banned"] = banned
    forced = _token_array(forced, "forced", rows, vocab, ndim=1, padded=True)
    if forced is not None and (forced >= 0).any():
        out["forced"] = forced
    return out


def beam_step(
    scores,
    beam_scores,
    *,
    eos_id: int,
    log_probs: bool = False,
    forbid_eos: bool = False,
    num_threads: int = 0,
    history=None,
    history_hash=None,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    banned=None,
    forced=None,
    candidates: int | None = None,
) -> BeamStep:
    """One beam-search expansion step for ``N`` items x ``B`` beams.

    Contract (documented in full at :func:`seqkernels.reference.search.beam_step`):

    * ``scores`` ``(N*B, V)`` float32/float64: raw logits (``log_softmax`` applied inside), or
      log-probs when ``log_probs=True``. ``beam_scores`` ``(N, B)``: raw running sums, ``-inf``
      for dead or unused beams. ``forbid_eos``: the ``eos_id`` log-prob becomes ``-inf``.
    * Decoding controls, fused into the same scan over the scores (semantics at
      :mod:`seqkernels.reference.search`, "Decoding controls"): ``history`` ``(N*B, L)`` token ids
      generated by each row, needed by ``repetition_penalty`` (1 = off) and
      ``no_repeat_ngram_size`` (0 = off); ``history_hash`` their
      :func:`~seqkernels.reference.search.ngram_hashes` (computed here when not given; a driver
      keeps it per hypothesis and appends one column a step); ``banned`` ``(N*B, W)`` token ids
      masked per row (``-1`` pads); ``forced`` ``(N*B,)`` the row's only allowed token (``-1`` =
      none).
    * ``candidates``: keep the top ``K >= 2B`` candidates per item instead of ``2B`` (the pool
      that sampling inside beam search draws from; ``None`` = ``2B``); the ``(N, 2B)`` outputs
      are then ``(N, K)``.
    * Returns a :class:`BeamStep` of arrays on the input's device: ``cand_score``, ``cand_logp``
      ``(N, 2B)`` in the dtype of ``scores``; ``cand_beam``, ``cand_token`` ``(N, 2B)`` int32;
      ``cand_finished`` ``(N, 2B)`` bool; ``alive`` ``(N, B)`` int32.

    Raises ValueError for wrong dimensions or shapes, ``eos_id`` or a control's token outside
    ``[0, V)``, NaN or ``+inf`` in ``scores`` or ``beam_scores``; TypeError for wrong dtypes or
    mixed devices; RuntimeError for GPU arrays when CuPy or the CUDA extension is missing.
    ``num_threads``: CPU threads over items (0 = OpenMP's default). On the GPU the controls run in
    the CUDA step's per-candidate pass (their per-row token lists are built on the host), except a
    repetition penalty on raw logits (``log_probs=False``) and ``candidates > 2B``, which run the
    CPU step on host copies.
    """
    scores = _as_array(scores, "scores")
    beam_scores = _as_array(beam_scores, "beam_scores")
    _validate_beam_step(scores, beam_scores, eos_id)
    if isinstance(num_threads, (bool, np.bool_)) or not isinstance(num_threads, (int, np.integer)) or num_threads < 0:
        raise ValueError(f"num_threads: expected an int >= 0 (0 = OpenMP default), got {num_threads!r}")
    controls = _controls(
        scores, beam_scores, history, history_hash, repetition_penalty, no_repeat_ngram_size, banned, forced
    )
    if candidates is not None:
        n_beams = beam_scores.shape[1]
        if isinstance(candidates, (bool, np.bool_)) or not isinstance(candidates, (int, np.integer)):
            raise TypeError(f"candidates: expected an int or None, got {type(candidates).__name__}")
        if candidates < 2 * n_beams:
            raise ValueError(f"candidates: must be >= 2B = {2 * n_beams}, got {candidates}")
        if candidates > 2 * n_beams:
            controls["candidates"] = int(candidates)
    return _dispatch_beam_step(
        scores, beam_scores, int(eos_id), bool(log_probs), bool(forbid_eos), int(num_threads), controls
    )


def _dispatch_beam_step(
    scores,
    beam_scores,
    eos_id: int,
    log_probs: bool,
    forbid_eos: bool,
    num_threads: int = 0,
    controls: dict | None = None,
) -> BeamStep:
    """The single dispatch point of :func:`beam_step` (inputs already validated)."""
    if _on_gpu(scores):
        penalised_logits = not log_probs and controls and controls.get("repetition_penalty", 1.0) != 1.0
        if not penalised_logits and "candidates" not in (controls or {}):
            return _beam_step_cuda(scores, beam_scores, eos_id, log_probs, forbid_eos, controls)
        # The CUDA row normaliser does not see the penalty, and its merge keeps 2B candidates:
        # the CPU step on host copies.
        import cupy as cp

        out = _dispatch_beam_step(
            cp.asarray(scores).get(),
            cp.asarray(beam_scores).get(),
            eos_id,
            log_probs,
            forbid_eos,
            num_threads,
            controls,
        )
        return BeamStep(*(cp.asarray(a) for a in out))
    # The kernel itself rejects NaN and +inf (it reads every logit anyway), naming the item.
    scores = np.ascontiguousarray(scores)
    beam_scores = np.ascontiguousarray(beam_scores, dtype=scores.dtype)
    try:
        out = _C.beam_step(scores, beam_scores, eos_id, log_probs, forbid_eos, num_threads, **(controls or {}))
    except ValueError as e:  # drop the C++ file/line suffix: the message names the argument
        raise ValueError(str(e).split(" [check ")[0]) from None
    return BeamStep(*out)


def _beam_step_cuda(
    scores, beam_scores, eos_id: int, log_probs: bool, forbid_eos: bool, controls: dict | None = None
) -> BeamStep:
    """CUDA path: the fused kernel of ``seqkernels._cuda`` on the current CuPy stream.

    Accepts CuPy arrays and any other ``__cuda_array_interface__`` object (a torch CUDA tensor is
    viewed without a copy). Returns a :class:`BeamStep` of CuPy arrays. Reading the NaN flag makes
    this call wait for the step; the driver needs the candidates on the host next anyway.
    """
    from ._backend import _cuda

    if _cuda is None:
        raise RuntimeError(
            "beam_step: got GPU arrays, but seqkernels was built without CUDA "
            "(reinstall with nvcc available, SEQKERNELS_CUDA=ON)"
        )
    try:
        import cupy as cp
    except ImportError:
        raise RuntimeError("beam_step: GPU arrays need CuPy (pip install cupy-cuda13x)") from None

    scores = cp.ascontiguousarray(cp.asarray(scores))
    beam_scores = cp.ascontiguousarray(cp.asarray(beam_scores), dtype=scores.dtype)
    if bool((~(beam_scores < cp.inf)).any()):
        raise ValueError("beam_scores: NaN or +inf")
    n_items, n_beams = beam_scores.shape
    vocab, k = scores.shape[1], 2 * n_beams
    out = BeamStep(
        cp.empty((n_items, k), scores.dtype),
        cp.empty((n_items, k), cp.int32),
        cp.empty((n_items, k), cp.int32),
        cp.empty((n_items, k), scores.dtype),
        cp.empty((n_items, k), cp.bool_),
        cp.empty((n_items, n_beams), cp.int32),
    )
    scratch = cp.empty(_cuda.beam_step_scratch_bytes(n_items, n_beams, vocab, scores.itemsize), cp.uint8)
    bad = cp.full(1, n_items, cp.int32)
    args = (
        str(scores.dtype),
        scores.data.ptr,
        beam_scores.data.ptr,
        n_items,
        n_beams,
        vocab,
        eos_id,
        log_probs,
        forbid_eos,
        *(o.data.ptr for o in out),
        scratch.data.ptr,
        bad.data.ptr,
        cp.cuda.get_current_stream().ptr,
    )
    try:
        if not controls:
            _cuda.beam_step(*args)
        else:  # the marks are built on the host, where the driver keeps the histories
            c = dict(controls)
            forced = c.pop("forced", None)
            marks = [cp.asarray(m) for m in _C.beam_step_marks(n_items * n_beams, vocab, eos_id, forbid_eos, **c)]
            forced = None if forced is None else cp.asarray(forced, dtype=cp.int32)
            _cuda.beam_step_controls(
                *args,
                0 if forced is None else forced.data.ptr,
                *(m.data.ptr if m.size else 0 for m in marks),
                float(c.get("repetition_penalty", 1.0)),
            )
    except ValueError as e:
        raise ValueError(str(e)) from None
    bad_item = int(bad.get()[0])
    if bad_item < n_items:
        raise ValueError(
            f"scores: NaN or +inf in the rows of item {bad_item} (rows {bad_item * n_beams}.."
            f"{(bad_item + 1) * n_beams - 1})"
        )
    return out
