"""
seqkernels CPU kernels (C++17, OpenMP, OpenBLAS). See seqkernels/recurrent.h.
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['backward', 'beam_step', 'beam_step_marks', 'build_info', 'cell_math', 'cpu_capabilities', 'cpu_capability', 'fma_peak', 'forward', 'glove_bucket', 'glove_cooccur', 'glove_record_terms', 'glove_stanford_init', 'glove_train_epoch', 'glove_vocab_count', 'glove_word_less', 'glove_write_text_vectors', 'pack_size', 'set_cpu_capability', 'team_forks_seen', 'team_size', 'workspace_layout', 'workspace_size']
def backward(*, mode: str, reset_after: bool, nonlinearity: str, x: numpy.ndarray, w_ih: numpy.ndarray, w_hh: numpy.ndarray, lengths: typing.Any, reverse: bool, dy: numpy.ndarray, direction: typing.SupportsInt | typing.SupportsIndex, dh_n: typing.Any, dc_n: typing.Any, workspace: numpy.ndarray, dx: numpy.ndarray, dh0: numpy.ndarray, dc0: typing.Any, dw_ih: numpy.ndarray, dw_hh: numpy.ndarray, db_ih: typing.Any, db_hh: typing.Any, pack: typing.Any = None, num_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
    """
    Backward through time of one direction of one layer: adds into dx, writes dh0, dc0 and the weight and bias gradients.
    """
def beam_step(scores: numpy.ndarray, beam_scores: numpy.ndarray, eos_id: typing.SupportsInt | typing.SupportsIndex, log_probs: bool = False, forbid_eos: bool = False, num_threads: typing.SupportsInt | typing.SupportsIndex = 0, history: typing.Any = None, history_hash: typing.Any = None, repetition_penalty: typing.SupportsFloat | typing.SupportsIndex = 1.0, no_repeat_ngram_size: typing.SupportsInt | typing.SupportsIndex = 0, banned: typing.Any = None, forced: typing.Any = None) -> tuple:
    """
    Fused beam-search step (seqkernels/beam_search.h): returns (cand_score, cand_beam, cand_token, cand_logp, cand_finished, alive). scores and beam_scores: float32 or float64, same dtype; history, banned, forced: int32; history_hash: uint64.
    """
def beam_step_marks(rows: typing.SupportsInt | typing.SupportsIndex, vocab: typing.SupportsInt | typing.SupportsIndex, eos_id: typing.SupportsInt | typing.SupportsIndex, forbid_eos: bool = False, history: typing.Any = None, history_hash: typing.Any = None, repetition_penalty: typing.SupportsFloat | typing.SupportsIndex = 1.0, no_repeat_ngram_size: typing.SupportsInt | typing.SupportsIndex = 0, banned: typing.Any = None) -> tuple:
    """
    The tokens each row's decoding controls touch, as CSR (offsets, tokens, kinds: 1 penalised, 2 masked), for the CUDA beam step.
    """
def build_info() -> dict:
    ...
def cell_math(fn: str, x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> numpy.typing.NDArray[numpy.float32]:
    """
    The float32 activations the CPU kernels use (for accuracy tests).
    """
def cpu_capabilities() -> list[str]:
    """
    Every CPU kernel copy this build has, narrowest first (not all may run on this CPU).
    """
def cpu_capability() -> str:
    ...
def fma_peak(threads: typing.SupportsInt | typing.SupportsIndex, seconds: typing.SupportsFloat | typing.SupportsIndex = 0.2) -> dict:
    """
    Measured float32 FMA rate: `threads` std::threads started together, each running a register-resident loop of independent vector multiply-adds (the current CPU capability's widest vectors) for about `seconds`. Returns a dict: gflops (all threads), seconds, flops, threads, lanes, accumulators, fused, cpu_capability.
    """
def forward(*, mode: str, reset_after: bool, nonlinearity: str, x: numpy.ndarray, w_ih: numpy.ndarray, w_hh: numpy.ndarray, b_ih: typing.Any, b_hh: typing.Any, h0: typing.Any, c0: typing.Any, lengths: typing.Any, reverse: bool, y: numpy.ndarray, direction: typing.SupportsInt | typing.SupportsIndex, h_n: numpy.ndarray, c_n: typing.Any, workspace: typing.Any, pack: typing.Any = None, num_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
    """
    One direction of one layer over a whole sequence; writes y[:, :, d*H:(d+1)*H], h_n, c_n and, when a workspace is given (training), everything backward needs.
    """
def glove_bucket(word: str) -> int:
    """
    Stanford's hash bucket of a word (bitwisehash).
    """
def glove_cooccur(corpus: typing.Any, words: collections.abc.Sequence[str], window_size: typing.SupportsInt | typing.SupportsIndex = 15, symmetric: bool = True, distance_weighting: bool = True, memory_gb: typing.SupportsFloat | typing.SupportsIndex = 4.0, threads: typing.SupportsInt | typing.SupportsIndex = 0, temp_dir: str = '', output_fd: typing.Any = None, max_product: typing.SupportsInt | typing.SupportsIndex = -1, overflow_length: typing.SupportsInt | typing.SupportsIndex = -1, max_open_runs: typing.SupportsInt | typing.SupportsIndex = 0, block_bytes: typing.SupportsInt | typing.SupportsIndex = 0, progress: typing.Any = None) -> tuple:
    """
    Stanford cooccur: returns (stats, rows, cols, values) with 0-based int32 ids, or (stats, None, None, None) after writing cooccurrence.bin to output_fd.
    """
def glove_record_terms(values: numpy.ndarray, x_max: typing.SupportsFloat | typing.SupportsIndex, alpha: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple[numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64]]:
    """
    Per-record log(x) and f(x) = min(1, (x / x_max)^alpha) as Stanford computes them (libm log and pow).
    """
def glove_stanford_init(vocab_size: typing.SupportsInt | typing.SupportsIndex, vector_size: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float64]:
    """
    Stanford's initial parameters (2V, D+1) for srand(seed) with glibc's rand().
    """
def glove_train_epoch(W: numpy.ndarray, gradsq: numpy.ndarray, rows: numpy.ndarray, cols: numpy.ndarray, values: numpy.ndarray, eta: typing.SupportsFloat | typing.SupportsIndex, x_max: typing.SupportsFloat | typing.SupportsIndex, alpha: typing.SupportsFloat | typing.SupportsIndex, grad_clip: typing.SupportsFloat | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex = 0, log_values: typing.Any = None, weights: typing.Any = None) -> tuple[float, int]:
    """
    One Stanford AdaGrad epoch over the records in order; returns (summed cost, skipped records). log_values/weights: optional per-record log(x) and f(x) from glove_record_terms.
    """
def glove_vocab_count(corpus: typing.Any, min_count: typing.SupportsInt | typing.SupportsIndex = 1, max_vocab: typing.SupportsInt | typing.SupportsIndex = 0, threads: typing.SupportsInt | typing.SupportsIndex = 0, block_bytes: typing.SupportsInt | typing.SupportsIndex = 0, progress: typing.Any = None) -> tuple[list, numpy.typing.NDArray[numpy.int64], int, int]:
    """
    Stanford vocab_count: returns (words: list[bytes], counts: int64 array, tokens, distinct).
    """
def glove_word_less(a: str, b: str) -> bool:
    """
    Stanford's vocabulary tie order (scmp on signed chars).
    """
def glove_write_text_vectors(path: str, words: collections.abc.Sequence[str], vectors: numpy.ndarray, header: str = '') -> None:
    """
    Writes an optional header line, then 'word v1 ... vk' lines with Stanford's %lf formatting.
    """
def pack_size(mode: str, reset_after: bool, nonlinearity: str, hidden: typing.SupportsInt | typing.SupportsIndex, dtype: str) -> int:
    """
    Elements of a pack buffer for one layer-direction's W_hh (pass it as pack= to forward/backward).
    """
def set_cpu_capability(name: str) -> None:
    """
    Select the CPU kernels' instruction set, one of cpu_capabilities() (tests use this; the environment variable SEQKERNELS_CPU_CAPABILITY caps the choice at import).
    """
def team_forks_seen() -> int:
    """
    Times this process's thread team was re-created after fork() (0 in a process that never forked).
    """
def team_size(requested: typing.SupportsInt | typing.SupportsIndex = 0) -> int:
    """
    Threads a kernel call uses when asked for `requested` (0 = the default team size).
    """
def workspace_layout(mode: str, reset_after: bool, nonlinearity: str, steps: typing.SupportsInt | typing.SupportsIndex, batch: typing.SupportsInt | typing.SupportsIndex, hidden: typing.SupportsInt | typing.SupportsIndex) -> dict:
    """
    Element offsets of the workspace blocks (states, cstates, acts, aux; -1 = absent) and its size.
    """
def workspace_size(mode: str, reset_after: bool, nonlinearity: str, steps: typing.SupportsInt | typing.SupportsIndex, batch: typing.SupportsInt | typing.SupportsIndex, hidden: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    Elements of the training workspace of one layer-direction.
    """
__version__: str = '0.1.0'
