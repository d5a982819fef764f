"""GloVe training: Stanford ``glove`` (AdaGrad, Hogwild threads) and its output files."""

from __future__ import annotations

import os
import sys

import numpy as np

from .. import _C
from ._files import atomic_path, thread_count
from .cooccurrence import Cooccurrence
from .vocabulary import Vocabulary

__all__ = ["GloVe"]

DEVICES = ("cpu", "cuda")

# Hogwild loses an update whenever two records in flight share a row (both read it, the later
# write wins). With W records in flight, a record meets about (W - 1)·Σ(p_i² + q_j²) others on its
# rows, p_i and q_j being the shares of records with word row i and context row j. The GPU epoch
# keeps that expectation at CUDA_COLLISIONS (bounded concurrency): W ≈ 0.1·V/2 for uniform rows,
# far fewer on small Zipfian vocabularies. Chosen with the schedule model
# reference.glove.hogwild_epoch: on 111 k Zipfian records over V = 5000 (Σ = 0.0067) the modelled
# cost after 10 epochs is 1.01× the sequential CPU's at W = 4, 1.06× at W = 16, 1.4× at W = 78 and
# 3.5× at the 2,112 warps an H100 holds resident.
CUDA_COLLISIONS = 0.1


def cuda_concurrency(rows, cols, vocab_size: int, resident_warps: int) -> int:
    """Records the GPU epoch keeps in flight (warps), at least 1 and at most ``resident_warps``:
    as many as keep the expected number of in-flight records sharing a row with any one record at
    ``CUDA_COLLISIONS`` (see above)."""
    n = len(rows)
    p = np.bincount(np.asarray(rows), minlength=vocab_size) / n
    q = np.bincount(np.asarray(cols), minlength=vocab_size) / n
    sharing = float(p @ p + q @ q)
    return int(max(1, min(int(resident_warps), 1 + CUDA_COLLISIONS / sharing)))


def _positive(name: str, value) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.floating, np.integer))
        or not np.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name}: expected a positive finite number, got {value!r}")
    return float(value)


class GloVe:
    """The GloVe model (docs/ops.md §5) trained as Stanford's ``glove`` trains it.

    Parameters follow Stanford's flags: ``vector_size`` (-vector-size), ``x_max`` (-x-max), ``alpha``
    (-alpha), ``learning_rate`` (-eta), ``grad_clip`` (-grad-clip), ``threads`` (-threads; None = all
    cores), ``seed`` (-seed; None = a random seed, kept in ``seed_``). With the same seed the initial
    parameters equal Stanford's on glibc systems (its ``rand()`` is reproduced).

    After :meth:`fit`: ``W_`` (2V, D+1) holds word vectors (rows 0..V-1) and context vectors (rows
    V..2V-1) with their biases in the last column, Stanford's layout (``vectors.bin``); ``gradsq_``
    the AdaGrad accumulators; ``costs_`` the cost of each epoch as Stanford prints it.
    """

    def __init__(
        self,
        vector_size: int = 50,
        x_max: float = 100.0,
        alpha: float = 0.75,
        learning_rate: float = 0.05,
        grad_clip: float = 100.0,
        threads: int | None = None,
        seed: int | None = None,
    ):
        if isinstance(vector_size, bool) or not isinstance(vector_size, (int, np.integer)) or vector_size < 1:
            raise ValueError(f"vector_size: expected a positive integer, got {vector_size!r}")
        self.vector_size = int(vector_size)
        self.x_max = _positive("x_max", x_max)
        self.alpha = _positive("alpha", alpha)
        self.learning_rate = _positive("learning_rate", learning_rate)
        self.grad_clip = _positive("grad_clip", grad_clip)
        self.threads = thread_count(threads)
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32
        ):
            raise ValueError(f"seed: expected an integer in [0, 2**32) or None, got {seed!r}")
        self.seed = seed
        self.W_: np.ndarray | None = None
        self.gradsq_: np.ndarray | None = None
        self.costs_: list[float] = []
        self.seed_: int | None = None
        self.vocabulary: Vocabulary | None = None

    # ---- training ----
    def fit(
        self,
        cooc,
        epochs: int = 25,
        device: str = "cpu",
        progress: bool = True,
        vocab_size: int | None = None,
        callback=None,
        memory: float | None = None,
        resume=None,
        temp_dir=None,
    ) -> GloVe:
        """Trains on ``cooc`` (a :class:`Cooccurrence`, or a path to cooccurrence.bin with
        ``vocab_size`` or a vocabulary attached) for ``epochs`` passes, from Stanford's initial
        parameters. The records are shuffled once with the seed (Stanford's ``shuffle`` step) and
        every epoch visits them in that order; ``threads`` workers take contiguous slices and update
        the shared parameters without locks (Hogwild), as Stanford does. ``progress`` shows a tqdm
        bar with the cost; ``callback(epoch, cost)`` (epochs from 1) runs after every epoch.

        ``device="cuda"`` runs the epochs on the GPU (one warp per record, Hogwild across warps; the
        same update and initial parameters; needs CuPy and the CUDA build; not yet verified on a
        GPU). At most :func:`cuda_concurrency` records are in flight, so that lock-free updates
        rarely collide: on small or very skewed vocabularies the GPU runs few warps. The costs
        differ from the CPU path's by the effect of lock-free updates in another order.

        ``memory`` (GB; CPU only, ``cooc`` a path): train in bounded memory, for co-occurrence
        files larger than the machine's memory. The file is shuffled once into a temporary file in
        ``temp_dir`` as Stanford's ``shuffle`` does (chunks shuffled in memory, then merged by
        drawing an equal slice of every shuffled chunk into each output chunk, shuffled again), and
        every epoch streams that file through one chunk buffer; the parameters, the AdaGrad
        accumulators and the chunk stay within ``memory`` (a ValueError names the least that works).
        Threads take contiguous slices of each chunk.

        ``resume``: a checkpoint written by :meth:`save_checkpoint` (the CLI's ``-checkpoint-every``
        writes one): training continues after its last epoch with its parameters, accumulators,
        costs and seed, so with one thread the result equals the uninterrupted run's."""
        if device not in DEVICES:
            raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
        if memory is not None and device != "cpu":
            raise ValueError("memory: bounded-memory training runs on the CPU only (device='cpu')")
        if device == "cuda":
            from .._backend import cuda_available

            if not cuda_available():
                raise RuntimeError("GloVe.fit(device='cuda'): no CUDA device, or seqkernels was built without CUDA")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs: expected a non-negative integer, got {epochs!r}")
        if memory is not None:
            return self._fit_streaming(cooc, epochs, progress, vocab_size, callback, memory, resume, temp_dir)
        if isinstance(cooc, (str, os.PathLike)):
            cooc = Cooccurrence.load(cooc, vocab_size=vocab_size)
        if not isinstance(cooc, Cooccurrence):
            raise TypeError(f"cooc: expected a Cooccurrence or a path to cooccurrence.bin, got {type(cooc).__name__}")
        if len(cooc) == 0:
            raise ValueError("cooc: has no records to train on")
        V, D, N = cooc.vocab_size, self.vector_size, len(cooc)
        self.vocabulary = cooc.vocabulary
        self._start(V, resume)
        order = np.random.default_rng(self.seed_).permutation(N)
        rows, cols, values = cooc.rows[order], cooc.cols[order], cooc.values[order]
        # log(x) and f(x) do not change between epochs: computed once (with libm, as Stanford does).
        log_values, weights = _C.glove_record_terms(values, self.x_max, self.alpha, self.threads)
        bar = _epoch_bar(progress, epochs, len(self.costs_))
        run_epoch = self._cuda_epochs(rows, cols, log_values, weights, V, D) if device == "cuda" else None
        try:
            for _ in range(len(self.costs_), int(epochs)):
                if run_epoch is not None:
                    cost, _skipped = run_epoch()
                else:
                    cost, _skipped = _C.glove_train_epoch(
                        self.W_,
                        self.gradsq_,
                        rows,
                        cols,
                        values,
                        self.learning_rate,
                        self.x_max,
                        self.alpha,
                        self.grad_clip,
                        self.threads,
                        log_values,
                        weights,
                    )
                self.costs_.append(cost / N)
                if bar is not None:
                    bar.set_postfix(cost=f"{cost / N:.6f}")
                    bar.update(1)
                if callback is not None:
                    if run_epoch is not None:
                        run_epoch.download()  # the callback may save or inspect the parameters
                    callback(len(self.costs_), cost / N)
        finally:
            if bar is not None:
                bar.close()
            if run_epoch is not None:
                run_epoch.download()
        return self

    def _start(self, V: int, resume) -> None:
        """Initial parameters (Stanford's, from the seed), or those of the checkpoint ``resume``."""
        if resume is None:
            self.seed_ = self.seed if self.seed is not None else int.from_bytes(os.urandom(4), "little")
            self.W_ = _C.glove_stanford_init(V, self.vector_size, self.seed_)
            self.gradsq_ = np.ones_like(self.W_)  # accumulators start at 1: the first step is eta * gradient
            self.costs_ = []
            return
        path = os.fspath(resume)
        try:
            with np.load(path, allow_pickle=False) as z:
                W, gradsq, costs, seed = z["W"], z["gradsq"], z["costs"], int(z["seed"])
                settings = z["settings"]
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"resume: '{path}' is not a GloVe checkpoint ({e})") from None
        if W.shape != (2 * V, self.vector_size + 1) or gradsq.shape != W.shape:
            raise ValueError(
                f"resume: checkpoint '{path}' has parameters of shape {W.shape}, this model needs "
                f"{(2 * V, self.vector_size + 1)} (vocabulary size or vector_size differ)"
            )
        mine = self._settings()
        if not np.array_equal(settings, mine):
            raise ValueError(
                f"resume: checkpoint '{path}' was trained with x_max, alpha, learning_rate, grad_clip "
                f"= {settings.tolist()}, this model has {mine.tolist()}"
            )
        self.seed_, self.W_, self.gradsq_, self.costs_ = seed, W, gradsq, costs.tolist()

    def _settings(self) -> np.ndarray:
        return np.array([self.x_max, self.alpha, self.learning_rate, self.grad_clip])

    def save_checkpoint(self, path) -> str:
        """Saves what :meth:`fit` needs to resume (parameters, accumulators, costs so far, seed and
        settings) to ``path`` (an .npz file, written all or nothing)."""
        W = self._check_fitted()
        path = os.fspath(path)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(
                    f,
                    W=W,
                    gradsq=self.gradsq_,
                    costs=np.array(self.costs_, dtype=np.float64),
                    seed=np.int64(self.seed_),
                    settings=self._settings(),
                )
        return path

    def _fit_streaming(self, path, epochs, progress, vocab_size, callback, memory, resume, temp_dir) -> GloVe:
        if isinstance(memory, bool) or not isinstance(memory, (int, float)) or not 0 < memory < float("inf"):
            raise ValueError(f"memory: expected a positive number of GB, got {memory!r}")
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(
                f"cooc: bounded-memory training (memory=...) reads a cooccurrence.bin path, got {type(path).__name__}"
            )
        from .streaming import RecordFile, StreamPlan

        records = RecordFile(path, vocab_size)
        V, D = records.vocab_size, self.vector_size
        plan = StreamPlan(memory, V, D, records.count)
        self.vocabulary = None
        self._start(V, resume)
        bar = _epoch_bar(progress, epochs, len(self.costs_))
        try:
            with records.shuffled(plan.chunk_records, self.seed_, temp_dir) as shuffled:
                for _ in range(len(self.costs_), int(epochs)):
                    cost = 0.0
                    for rows, cols, values in shuffled.chunks():
                        log_values, weights = _C.glove_record_terms(values, self.x_max, self.alpha, self.threads)
                        c, _skipped = _C.glove_train_epoch(
                            self.W_,
                            self.gradsq_,
                            rows,
                            cols,
                            values,
                            self.learning_rate,
                            self.x_max,
                            self.alpha,
                            self.grad_clip,
                            self.threads,
                            log_values,
                            weights,
                        )
                        cost += c
                    self.costs_.append(cost / records.count)
                    if bar is not None:
                        bar.set_postfix(cost=f"{cost / records.count:.6f}")
                        bar.update(1)
                    if callback is not None:
                        callback(len(self.costs_), cost / records.count)
        finally:
            if bar is not None:
                bar.close()
        return self

    def _cuda_epochs(self, rows, cols, log_values, weights, V, D):
        """An epoch runner on the GPU: uploads the records and parameters once; ``download()``
        copies W_ and gradsq_ back."""
        import cupy as cp

        from .._backend import _cuda

        dW, dG = cp.asarray(self.W_), cp.asarray(self.gradsq_)
        d_rows, d_cols = cp.asarray(rows, dtype=cp.int32), cp.asarray(cols, dtype=cp.int32)
        d_log, d_f = cp.asarray(log_values), cp.asarray(weights)
        warps = cuda_concurrency(rows, cols, V, _cuda.glove_resident_warps())
        blocks = _cuda.glove_epoch_blocks(warps)
        block_cost, block_skipped = cp.zeros(blocks), cp.zeros(blocks, dtype=cp.int64)
        N = len(rows)

        def run():
            _cuda.glove_train_epoch(
                dW.data.ptr,
                dG.data.ptr,
                d_rows.data.ptr,
                d_cols.data.ptr,
                d_log.data.ptr,
                d_f.data.ptr,
                V,
                D,
                N,
                self.learning_rate,
                self.grad_clip,
                block_cost.data.ptr,
                block_skipped.data.ptr,
                warps,
                cp.cuda.get_current_stream().ptr,
            )
            return float(block_cost.get().sum()), int(block_skipped.get().sum())

        def download():
            self.W_[...] = dW.get()
            self.gradsq_[...] = dG.get()

        run.download = download
        return run

    # ---- results ----
    def _check_fitted(self) -> np.ndarray:
        if self.W_ is None:
            raise RuntimeError("GloVe: call fit() first")
        return self.W_

    @property
    def word_vectors(self) -> np.ndarray:
        """(V, D) word vectors w_i (a view of ``W_``)."""
        W = self._check_fitted()
        return W[: W.shape[0] // 2, : self.vector_size]

    @property
    def context_vectors(self) -> np.ndarray:
        """(V, D) context-word vectors (a view of ``W_``)."""
        W = self._check_fitted()
        return W[W.shape[0] // 2 :, : self.vector_size]

    @property
    def biases(self) -> tuple[np.ndarray, np.ndarray]:
        """(word biases, context biases), each (V,)."""
        W = self._check_fitted()
        V = W.shape[0] // 2
        return W[:V, -1], W[V:, -1]

    def vectors(self, model: int = 2) -> np.ndarray:
        """Stanford's ``-model``: 0 = word and context vectors with biases side by side (V, 2D+2);
        1 = word vectors (V, D); 2 = word + context vectors (V, D)."""
        W = self._check_fitted()
        V = W.shape[0] // 2
        if model == 0:
            return np.concatenate([W[:V], W[V:]], axis=1)
        if model == 1:
            return W[:V, : self.vector_size].copy()
        if model == 2:
            return W[:V, : self.vector_size] + W[V:, : self.vector_size]
        raise ValueError(f"model: expected 0, 1 or 2, got {model!r}")

    def to_word_vectors(self, vocabulary: Vocabulary | None = None, model: int = 2):
        """:class:`WordVectors` for the vocabulary (the one the co-occurrences came with by default)."""
        from .vectors import WordVectors

        vocabulary = self._vocabulary(vocabulary)
        return WordVectors(vocabulary.words, self.vectors(model))

    def _vocabulary(self, vocabulary) -> Vocabulary:
        if vocabulary is None:
            vocabulary = self.vocabulary
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = Vocabulary.load(vocabulary)
        if not isinstance(vocabulary, Vocabulary):
            raise ValueError("vocabulary: needed to name the vectors (pass a Vocabulary or a path to vocab.txt)")
        V = self._check_fitted().shape[0] // 2
        if len(vocabulary) != V:
            raise ValueError(f"vocabulary: has {len(vocabulary)} words but the model has {V}")
        return vocabulary

    def save(
        self,
        save_file,
        vocabulary: Vocabulary | None = None,
        binary: int = 0,
        model: int = 2,
        write_header: bool = False,
        unk_vector: bool = True,
        gradsq_file=None,
    ) -> list[str]:
        """Writes Stanford's outputs for ``save_file`` (a name without extension): ``binary`` 0 =
        ``save_file.txt``, 1 = ``save_file.bin`` (raw float64 W, shape (2V, D+1)), 2 = both. The text
        file has one "word v1 ... vk" line per word in the ``model`` layout (see :meth:`vectors`),
        optionally Stanford's header "V D" (V without the <unk> line, D even for model 0), and, like
        Stanford, an ``<unk>`` line: the mean of the last min(100, V) words' parameters.
        ``gradsq_file`` also writes the accumulators the same way (all parameters, as Stanford).
        Every file is written all or nothing. Returns the paths written."""
        W = self._check_fitted()
        if binary not in (0, 1, 2):
            raise ValueError(f"binary: expected 0 (text), 1 (binary) or 2 (both), got {binary!r}")
        if model not in (0, 1, 2):
            raise ValueError(f"model: expected 0, 1 or 2, got {model!r}")
        save_file = os.fspath(save_file)
        written = []
        vocabulary = self._vocabulary(vocabulary) if binary != 1 else None
        for stem, array in [(save_file, W)] + ([(os.fspath(gradsq_file), self.gradsq_)] if gradsq_file else []):
            if binary in (1, 2):
                with atomic_path(stem + ".bin") as tmp:
                    array.tofile(tmp)
                written.append(stem + ".bin")
            if binary in (0, 2):
                layout = model if array is W else 0
                matrix = _layout(array, self.vector_size, layout)
                words = vocabulary.encoded()
                if unk_vector:
                    matrix = np.vstack([matrix, _layout(_unk_rows(array), self.vector_size, layout)])
                    words = words + [b"<unk>"]
                with atomic_path(stem + ".txt") as tmp:
                    header = f"{W.shape[0] // 2} {self.vector_size}" if write_header else ""
                    _C.glove_write_text_vectors(tmp, words, np.ascontiguousarray(matrix), header)
                written.append(stem + ".txt")
        return written


def _epoch_bar(progress, epochs, done):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=int(epochs), initial=done, desc="GloVe", unit="epoch", file=sys.stderr, dynamic_ncols=True)


def _layout(W: np.ndarray, D: int, model: int) -> np.ndarray:
    V = W.shape[0] // 2
    if model == 0:
        return np.concatenate([W[:V], W[V:]], axis=1)
    if model == 1:
        return W[:V, :D]
    return W[:V, :D] + W[V:, :D]


def _unk_rows(W: np.ndarray) -> np.ndarray:
    """Stanford's <unk>: the mean of the last min(100, V) word and context rows, summed in order
    (each row divided by the count first, as glove.c does), as a (2, D+1) array in W's layout."""
    V = W.shape[0] // 2
    n = min(100, V)
    word, context = np.zeros(W.shape[1]), np.zeros(W.shape[1])
    for a in range(V - n, V):
        word += W[a] / n
        context += W[V + a] / n
    return np.stack([word, context])
