"""
seqkernels CUDA kernels: device queries and the fused beam-search step.
"""
from __future__ import annotations
import typing
__all__: list[str] = ['beam_chunk_of_block', 'beam_step', 'beam_step_controls', 'beam_step_grid', 'beam_step_scratch_bytes', 'cuda_archs', 'device_count', 'device_properties', 'driver_status', 'glove_epoch_blocks', 'glove_resident_warps', 'glove_train_epoch', 'last_launch_plan', 'recurrent_backward', 'recurrent_forward', 'recurrent_scratch_sizes', 'runtime_version']
def beam_chunk_of_block(block: typing.SupportsInt | typing.SupportsIndex, chunks: typing.SupportsInt | typing.SupportsIndex, beams: typing.SupportsInt | typing.SupportsIndex, vocab: typing.SupportsInt | typing.SupportsIndex) -> tuple[int, int, int]:
    """
    (item, lo, hi): the candidates [lo, hi) of item `item` that chunk_top_k's block `block` ranks.
    """
def beam_step(dtype: str, scores: typing.SupportsInt | typing.SupportsIndex, beam_scores: typing.SupportsInt | typing.SupportsIndex, items: typing.SupportsInt | typing.SupportsIndex, beams: typing.SupportsInt | typing.SupportsIndex, vocab: typing.SupportsInt | typing.SupportsIndex, eos_id: typing.SupportsInt | typing.SupportsIndex, log_probs: bool, forbid_eos: bool, cand_score: typing.SupportsInt | typing.SupportsIndex, cand_beam: typing.SupportsInt | typing.SupportsIndex, cand_token: typing.SupportsInt | typing.SupportsIndex, cand_logp: typing.SupportsInt | typing.SupportsIndex, cand_finished: typing.SupportsInt | typing.SupportsIndex, alive: typing.SupportsInt | typing.SupportsIndex, scratch: typing.SupportsInt | typing.SupportsIndex, bad_item: typing.SupportsInt | typing.SupportsIndex, stream: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Fused beam step on device pointers (seqkernels/beam_search.h); queued on `stream`. Use seqkernels.ops.beam_step, which owns the arrays.
    """
def beam_step_controls(dtype: str, scores: typing.SupportsInt | typing.SupportsIndex, beam_scores: typing.SupportsInt | typing.SupportsIndex, items: typing.SupportsInt | typing.SupportsIndex, beams: typing.SupportsInt | typing.SupportsIndex, vocab: typing.SupportsInt | typing.SupportsIndex, eos_id: typing.SupportsInt | typing.SupportsIndex, log_probs: bool, forbid_eos: bool, cand_score: typing.SupportsInt | typing.SupportsIndex, cand_beam: typing.SupportsInt | typing.SupportsIndex, cand_token: typing.SupportsInt | typing.SupportsIndex, cand_logp: typing.SupportsInt | typing.SupportsIndex, cand_finished: typing.SupportsInt | typing.SupportsIndex, alive: typing.SupportsInt | typing.SupportsIndex, scratch: typing.SupportsInt | typing.SupportsIndex, bad_item: typing.SupportsInt | typing.SupportsIndex, stream: typing.SupportsInt | typing.SupportsIndex, forced: typing.SupportsInt | typing.SupportsIndex, mark_offsets: typing.SupportsInt | typing.SupportsIndex, mark_tokens: typing.SupportsInt | typing.SupportsIndex, mark_kinds: typing.SupportsInt | typing.SupportsIndex, repetition_penalty: typing.SupportsFloat | typing.SupportsIndex) -> None:
    """
    beam_step with the decoding controls: forced (N*B,) int32 and the CSR marks of seqkernels._C.beam_step_marks, as device pointers (0 = none). Use seqkernels.ops.beam_step.
    """
def beam_step_grid(items: typing.SupportsInt | typing.SupportsIndex, beams: typing.SupportsInt | typing.SupportsIndex, vocab: typing.SupportsInt | typing.SupportsIndex) -> tuple[int, int, int, int]:
    """
    Blocks of the beam step's launches: (row_norm, chunks per item, chunk_top_k, merge).
    """
def beam_step_scratch_bytes(items: typing.SupportsInt | typing.SupportsIndex, beams: typing.SupportsInt | typing.SupportsIndex, vocab: typing.SupportsInt | typing.SupportsIndex, element_bytes: typing.SupportsInt | typing.SupportsIndex) -> int:
    ...
def device_count() -> int:
    """
    Number of visible CUDA devices (0 when there is no driver or GPU).
    """
def device_properties(device: typing.SupportsInt | typing.SupportsIndex = 0) -> dict:
    """
    Name, compute capability, SM count, memory and cooperative-launch support of one device.
    """
def driver_status() -> dict:
    """
    {driver_version, runtime_version, device_count, error}: CUDA versions as 1000*major + 10*minor (driver 0: no driver found); error is the device query's CUDA error, empty when it succeeded.
    """
def glove_epoch_blocks(warps: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    Blocks (and partial sums) of a GloVe epoch run by `warps` warps.
    """
def glove_resident_warps() -> int:
    """
    Warps of the GloVe epoch kernel resident at once on the current device (0 if unknown).
    """
def glove_train_epoch(W: typing.SupportsInt | typing.SupportsIndex, gradsq: typing.SupportsInt | typing.SupportsIndex, rows: typing.SupportsInt | typing.SupportsIndex, cols: typing.SupportsInt | typing.SupportsIndex, log_values: typing.SupportsInt | typing.SupportsIndex, weights: typing.SupportsInt | typing.SupportsIndex, vocab_size: typing.SupportsInt | typing.SupportsIndex, vector_size: typing.SupportsInt | typing.SupportsIndex, records: typing.SupportsInt | typing.SupportsIndex, eta: typing.SupportsFloat | typing.SupportsIndex, grad_clip: typing.SupportsFloat | typing.SupportsIndex, block_cost: typing.SupportsInt | typing.SupportsIndex, block_skipped: typing.SupportsInt | typing.SupportsIndex, warps: typing.SupportsInt | typing.SupportsIndex, stream: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    One GloVe AdaGrad epoch on device pointers (seqkernels/glove.h, CUDA) run by `warps` warps; per-block partial sums (glove_epoch_blocks(warps) of each).
    """
def last_launch_plan() -> dict:
    ...
def recurrent_backward(dtype: str, mode: str, reset_after: bool, nonlinearity: str, steps: typing.SupportsInt | typing.SupportsIndex, batch: typing.SupportsInt | typing.SupportsIndex, hidden: typing.SupportsInt | typing.SupportsIndex, w_hh: typing.SupportsInt | typing.SupportsIndex, lengths: typing.SupportsInt | typing.SupportsIndex, reverse: bool, dy: typing.SupportsInt | typing.SupportsIndex, ldy: typing.SupportsInt | typing.SupportsIndex, dh_n: typing.SupportsInt | typing.SupportsIndex, dc_n: typing.SupportsInt | typing.SupportsIndex, workspace: typing.SupportsInt | typing.SupportsIndex, dzx: typing.SupportsInt | typing.SupportsIndex, dzh: typing.SupportsInt | typing.SupportsIndex, dh0: typing.SupportsInt | typing.SupportsIndex, dc0: typing.SupportsInt | typing.SupportsIndex, scratch: typing.SupportsInt | typing.SupportsIndex, stream: typing.SupportsInt | typing.SupportsIndex, proj_size: typing.SupportsInt | typing.SupportsIndex, w_hr: typing.SupportsInt | typing.SupportsIndex, dht: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Backward through time of one layer-direction on device pointers: writes dzx (and dzh), dh0, dc0 (and, with proj_size > 0, dht: the gradient reaching h_t).
    """
def recurrent_forward(dtype: str, mode: str, reset_after: bool, nonlinearity: str, steps: typing.SupportsInt | typing.SupportsIndex, batch: typing.SupportsInt | typing.SupportsIndex, hidden: typing.SupportsInt | typing.SupportsIndex, xz: typing.SupportsInt | typing.SupportsIndex, w_hh: typing.SupportsInt | typing.SupportsIndex, b_hh: typing.SupportsInt | typing.SupportsIndex, h0: typing.SupportsInt | typing.SupportsIndex, c0: typing.SupportsInt | typing.SupportsIndex, lengths: typing.SupportsInt | typing.SupportsIndex, reverse: bool, y: typing.SupportsInt | typing.SupportsIndex, ldy: typing.SupportsInt | typing.SupportsIndex, h_n: typing.SupportsInt | typing.SupportsIndex, c_n: typing.SupportsInt | typing.SupportsIndex, workspace: typing.SupportsInt | typing.SupportsIndex, scratch: typing.SupportsInt | typing.SupportsIndex, stream: typing.SupportsInt | typing.SupportsIndex, proj_size: typing.SupportsInt | typing.SupportsIndex, w_hr: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Recurrence of one layer-direction on device pointers (seqkernels/recurrent.h, CUDA); 0 = null. proj_size > 0 (LSTM with projections) takes w_hr (R, H). Use seqkernels.nn, which owns the arrays.
    """
def recurrent_scratch_sizes(mode: str, reset_after: bool, nonlinearity: str, batch: typing.SupportsInt | typing.SupportsIndex, hidden: typing.SupportsInt | typing.SupportsIndex, proj_size: typing.SupportsInt | typing.SupportsIndex) -> tuple[int, int]:
    """
    (forward inference scratch, backward scratch) in elements of the working type.
    """
def runtime_version() -> int:
    ...
__version__: str = '0.1.0'
cuda_archs: str = '90'
