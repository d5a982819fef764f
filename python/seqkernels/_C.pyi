"""
seqkernels CPU kernels (C++17, OpenMP, OpenBLAS). See seqkernels/recurrent.h.
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['backward', 'beam_step', 'beam_step_marks', 'build_info', 'cell_math', 'cpu_capabilities', 'cpu_capability', 'fma_peak', 'forward', 'glove_bucket', 'glove_cooccur', 'glove_cooccur_runs', 'glove_merge_runs', 'glove_record_terms', 'glove_stanford_init', 'glove_train_epoch', 'glove_value_scale', 'glove_vocab_count', 'glove_word_less', 'glove_write_text_vectors', 'pack_size', 'pool_free_bytes', 'pool_release', 'pooled_empty', 'set_cpu_capability', 'set_team_sharing', 'team_forks_seen', 'team_jobs_withdrawn', 'team_shares_openmp_pool', 'team_size', 'word2vec_encode', 'word2vec_train_epoch', 'workspace_layout', 'workspace_size']
def backward(*, mode: str, reset_after: bool, nonlinearity: str, x: numpy.ndarray, w_ih: numpy.ndarray, w_hh: numpy.ndarray, lengths: typing.Any, reverse: bool, dy: numpy.ndarray, direction: typing.SupportsInt | typing.SupportsIndex, dh_n: typing.Any, dc_n: typing.Any, workspace: numpy.ndarray, dx: numpy.ndarray, dh0: numpy.ndarray, dc0: typing.Any, dw_ih: numpy.ndarray, dw_hh: numpy.ndarray, db_ih: typing.Any, db_hh: typing.Any, pack: typing.Any = None, num_threads: typing.SupportsInt | typing.SupportsIndex = 0, proj_size: typing.SupportsInt | typing.SupportsIndex = 0, w_hr: typing.Any = None, dw_hr: typing.Any = None, accumulate_dx: bool = True) -> None:
    """
    Backward through time of one direction of one layer: adds into dx (writes it with accumulate_dx=False: the first direction, so dx needs no zeroing), writes dh0, dc0 and the weight and bias gradients.
    """
def beam_step(scores: numpy.ndarray, beam_scores: numpy.ndarray, eos_id: typing.SupportsInt | typing.SupportsIndex, log_probs: bool = False, forbid_eos: bool = False, num_threads: typing.SupportsInt | typing.SupportsIndex = 0, history: typing.Any = None, history_hash: typing.Any = None, repetition_penalty: typing.SupportsFloat | typing.SupportsIndex = 1.0, no_repeat_ngram_size: typing.SupportsInt | typing.SupportsIndex = 0, banned: typing.Any = None, forced: typing.Any = None, candidates: typing.SupportsInt | typing.SupportsIndex = 0) -> tuple:
    """
    Fused beam-search step (seqkernels/beam_search.h): returns (cand_score, cand_beam, cand_token, cand_logp, cand_finished, alive). scores and beam_scores: float32 or float64, same dtype; history, banned, forced: int32; history_hash: uint64. candidates: K >= 2B candidates per item (0: 2B).
    """
def beam_step_marks(rows: typing.SupportsInt | typing.SupportsIndex, vocab: typing.SupportsInt | typing.SupportsIndex, eos_id: typing.SupportsInt | typing.SupportsIndex, forbid_eos: bool = False, history: typing.Any = None, history_hash: typing.Any = None, repetition_penalty: typing.SupportsFloat | typing.SupportsIndex = 1.0, no_repeat_ngram_size: typing.SupportsInt | typing.SupportsIndex = 0, banned: typing.Any = None) -> tuple:
    """
    The tokens each row's decoding controls touch, as CSR (offsets, tokens, kinds: 1 penalised, 2 masked), for the CUDA beam step.
    """
def build_info() -> dict:
    ...
def cell_math(fn: str, x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], vector: bool = False) -> numpy.typing.NDArray[numpy.float32]:
    """
    The float32 activations the CPU kernels use (for accuracy tests): vector=False as the scalar loops (GRU, RNN) compute them, vector=True as the LSTM rows' explicit vector code does.
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
def forward(*, mode: str, reset_after: bool, nonlinearity: str, x: numpy.ndarray, w_ih: numpy.ndarray, w_hh: numpy.ndarray, b_ih: typing.Any, b_hh: typing.Any, h0: typing.Any, c0: typing.Any, lengths: typing.Any, reverse: bool, y: numpy.ndarray, direction: typing.SupportsInt | typing.SupportsIndex, h_n: numpy.ndarray, c_n: typing.Any, workspace: typing.Any, pack: typing.Any = None, num_threads: typing.SupportsInt | typing.SupportsIndex = 0, proj_size: typing.SupportsInt | typing.SupportsIndex = 0, w_hr: typing.Any = None) -> None:
    """
    One direction of one layer over a whole sequence; writes y[:, :, d*R:(d+1)*R], h_n, c_n and, when a workspace is given (training), everything backward needs (R = proj_size or H).
    """
def glove_bucket(word: str) -> int:
    """
    Stanford's hash bucket of a word (bitwisehash).
    """
def glove_cooccur(corpus: typing.Any, words: collections.abc.Sequence[str], window_size: typing.SupportsInt | typing.SupportsIndex = 15, symmetric: bool = True, distance_weighting: bool = True, memory_gb: typing.SupportsFloat | typing.SupportsIndex = 4.0, threads: typing.SupportsInt | typing.SupportsIndex = 0, temp_dir: str = '', output_fd: typing.Any = None, max_product: typing.SupportsInt | typing.SupportsIndex = -1, overflow_length: typing.SupportsInt | typing.SupportsIndex = -1, max_open_runs: typing.SupportsInt | typing.SupportsIndex = 0, block_bytes: typing.SupportsInt | typing.SupportsIndex = 0, progress: typing.Any = None) -> tuple:
    """
    Stanford cooccur: returns (stats, rows, cols, values) with 0-based int32 ids, or (stats, None, None, None) after writing cooccurrence.bin to output_fd.
    """
def glove_cooccur_runs(corpus: typing.Any, words: collections.abc.Sequence[str], fds: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], first_rows: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], window_size: typing.SupportsInt | typing.SupportsIndex = 15, symmetric: bool = True, distance_weighting: bool = True, memory_gb: typing.SupportsFloat | typing.SupportsIndex = 4.0, threads: typing.SupportsInt | typing.SupportsIndex = 0, max_product: typing.SupportsInt | typing.SupportsIndex = -1, overflow_length: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple[dict, list[int]]:
    """
    Map task: counts with exact sums into one sorted run file per row range; returns (stats, records per run).
    """
def glove_merge_runs(paths: collections.abc.Sequence[str], scale: typing.SupportsFloat | typing.SupportsIndex, output_fd: typing.SupportsInt | typing.SupportsIndex, temp_dir: str, max_open_runs: typing.SupportsInt | typing.SupportsIndex = 64) -> int:
    """
    Reduce task: merges run files of one row range into cooccurrence.bin records on output_fd.
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
def glove_value_scale(window_size: typing.SupportsInt | typing.SupportsIndex, distance_weighting: bool) -> float:
    """
    The integer scale of the co-occurrence weights (lcm(1..window) for windows up to 22, else 1).
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
def pack_size(mode: str, reset_after: bool, nonlinearity: str, input: typing.SupportsInt | typing.SupportsIndex, hidden: typing.SupportsInt | typing.SupportsIndex, dtype: str, proj_size: typing.SupportsInt | typing.SupportsIndex = 0) -> int:
    """
    Elements of a pack buffer for one layer-direction's recurrent weights (W_hh, with W_ih where the cell fuses its input product into the step; pass it as pack= to forward/backward).
    """
def pool_free_bytes() -> int:
    """
    Bytes held by the block pool's free blocks.
    """
def pool_release() -> int:
    """
    Frees the block pool's free blocks; returns the bytes freed.
    """
def pooled_empty(shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], dtype: numpy.dtype[typing.Any]) -> numpy.ndarray:
    """
    An uninitialised C-contiguous array whose memory comes from (and returns to) the block pool, so that a buffer allocated every call (a training workspace) does not fault in fresh pages each time.
    """
def set_cpu_capability(name: str) -> None:
    """
    Select the CPU kernels' instruction set, one of cpu_capabilities() (tests use this; the environment variable SEQKERNELS_CPU_CAPABILITY caps the choice at import).
    """
def set_team_sharing(share: bool) -> None:
    """
    Run the kernels' thread team on the process's libgomp pool (torch's) instead of our own threads.
    """
def team_forks_seen() -> int:
    """
    Times this process's thread team was re-created after fork() (0 in a process that never forked).
    """
def team_jobs_withdrawn() -> int:
    """
    Team jobs the caller took back from workers that had not started when its own share ended.
    """
def team_shares_openmp_pool() -> bool:
    """
    Whether team runs go to a shared OpenMP pool (sharing on, a libgomp loaded, not a fork child; a second on our own team after late pool workers on a busy host is not reported).
    """
def team_size(requested: typing.SupportsInt | typing.SupportsIndex = 0) -> int:
    """
    Threads a kernel call uses when asked for `requested` (0 = the default team size).
    """
def word2vec_encode(corpus: typing.Any, words: collections.abc.Sequence[str], max_sentence: typing.SupportsInt | typing.SupportsIndex = 10000) -> tuple[numpy.typing.NDArray[numpy.int32], numpy.typing.NDArray[numpy.int64], int]:
    """
    The corpus as word ids: returns (ids int32 (N,), offsets int64 (S+1,), tokens read); a line is a sentence, tokens outside `words` are dropped, long lines are cut every max_sentence kept tokens.
    """
def word2vec_train_epoch(syn0: numpy.ndarray, syn1neg: numpy.ndarray, ids: numpy.ndarray, offsets: numpy.ndarray, keep: typing.Any, table: numpy.ndarray, window: typing.SupportsInt | typing.SupportsIndex, negative: typing.SupportsInt | typing.SupportsIndex, cbow: bool, learning_rate: typing.SupportsFloat | typing.SupportsIndex, words_before: typing.SupportsInt | typing.SupportsIndex, words_total: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, threads: typing.SupportsInt | typing.SupportsIndex = 0, private_rows: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple[int, int, float]:
    """
    One word2vec epoch (skip-gram or CBOW, negative sampling) updating syn0 and syn1neg in place; returns (words read, words kept by subsampling, final learning rate). threads=1 is deterministic. private_rows: rows of the most frequent words each thread trains in its own copy during a piece (-1: 0 for one thread, 256 for several).
    """
def workspace_layout(mode: str, reset_after: bool, nonlinearity: str, steps: typing.SupportsInt | typing.SupportsIndex, batch: typing.SupportsInt | typing.SupportsIndex, hidden: typing.SupportsInt | typing.SupportsIndex, proj_size: typing.SupportsInt | typing.SupportsIndex = 0) -> dict:
    """
    Element offsets of the workspace blocks (states, cstates, acts, aux, proj; -1 = absent) and its size.
    """
def workspace_size(mode: str, reset_after: bool, nonlinearity: str, steps: typing.SupportsInt | typing.SupportsIndex, batch: typing.SupportsInt | typing.SupportsIndex, hidden: typing.SupportsInt | typing.SupportsIndex, proj_size: typing.SupportsInt | typing.SupportsIndex = 0) -> int:
    """
    Elements of the training workspace of one layer-direction.
    """
__version__: str = '0.1.0'
