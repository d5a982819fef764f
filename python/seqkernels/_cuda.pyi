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
def beam_step(arg0: str, arg1: typing.SupportsInt | typing.SupportsIndex, arg2: typing.SupportsInt | typing.SupportsIndex, arg3: typing.SupportsInt | typing.SupportsIndex, arg4: typing.SupportsInt | typing.SupportsIndex, arg5: typing.SupportsInt | typing.SupportsIndex, arg6: typing.SupportsInt | typing.SupportsIndex, arg7: bool, arg8: bool, arg9: typing.SupportsInt | typing.SupportsIndex, arg10: typing.SupportsInt | typing.SupportsIndex, arg11: typing.SupportsInt | typing.SupportsIndex, arg12: typing.SupportsInt | typing.SupportsIndex, arg13: typing.SupportsInt | typing.SupportsIndex, arg14: typing.SupportsInt | typing.SupportsIndex, arg15: typing.SupportsInt | typing.SupportsIndex, arg16: typing.SupportsInt | typing.SupportsIndex, arg17: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Fused beam step on device pointers (seqkernels/beam_search.h); queued on `stream`. Use seqkernels.ops.beam_step, which owns the arrays.
    """
def beam_step_controls(arg0: str, arg1: typing.SupportsInt | typing.SupportsIndex, arg2: typing.SupportsInt | typing.SupportsIndex, arg3: typing.SupportsInt | typing.SupportsIndex, arg4: typing.SupportsInt | typing.SupportsIndex, arg5: typing.SupportsInt | typing.SupportsIndex, arg6: typing.SupportsInt | typing.SupportsIndex, arg7: bool, arg8: bool, arg9: typing.SupportsInt | typing.SupportsIndex, arg10: typing.SupportsInt | typing.SupportsIndex, arg11: typing.SupportsInt | typing.SupportsIndex, arg12: typing.SupportsInt | typing.SupportsIndex, arg13: typing.SupportsInt | typing.SupportsIndex, arg14: typing.SupportsInt | typing.SupportsIndex, arg15: typing.SupportsInt | typing.SupportsIndex, arg16: typing.SupportsInt | typing.SupportsIndex, arg17: typing.SupportsInt | typing.SupportsIndex, arg18: typing.SupportsInt | typing.SupportsIndex, arg19: typing.SupportsInt | typing.SupportsIndex, arg20: typing.SupportsInt | typing.SupportsIndex, arg21: typing.SupportsInt | typing.SupportsIndex, arg22: typing.SupportsFloat | typing.SupportsIndex) -> None:
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
def glove_train_epoch(arg0: typing.SupportsInt | typing.SupportsIndex, arg1: typing.SupportsInt | typing.SupportsIndex, arg2: typing.SupportsInt | typing.SupportsIndex, arg3: typing.SupportsInt | typing.SupportsIndex, arg4: typing.SupportsInt | typing.SupportsIndex, arg5: typing.SupportsInt | typing.SupportsIndex, arg6: typing.SupportsInt | typing.SupportsIndex, arg7: typing.SupportsInt | typing.SupportsIndex, arg8: typing.SupportsInt | typing.SupportsIndex, arg9: typing.SupportsFloat | typing.SupportsIndex, arg10: typing.SupportsFloat | typing.SupportsIndex, arg11: typing.SupportsInt | typing.SupportsIndex, arg12: typing.SupportsInt | typing.SupportsIndex, arg13: typing.SupportsInt | typing.SupportsIndex, arg14: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    One GloVe AdaGrad epoch on device pointers (seqkernels/glove.h, CUDA) run by `warps` warps; per-block partial sums (glove_epoch_blocks(warps) of each).
    """
def last_launch_plan() -> dict:
    ...
def recurrent_backward(arg0: str, arg1: str, arg2: bool, arg3: str, arg4: typing.SupportsInt | typing.SupportsIndex, arg5: typing.SupportsInt | typing.SupportsIndex, arg6: typing.SupportsInt | typing.SupportsIndex, arg7: typing.SupportsInt | typing.SupportsIndex, arg8: typing.SupportsInt | typing.SupportsIndex, arg9: bool, arg10: typing.SupportsInt | typing.SupportsIndex, arg11: typing.SupportsInt | typing.SupportsIndex, arg12: typing.SupportsInt | typing.SupportsIndex, arg13: typing.SupportsInt | typing.SupportsIndex, arg14: typing.SupportsInt | typing.SupportsIndex, arg15: typing.SupportsInt | typing.SupportsIndex, arg16: typing.SupportsInt | typing.SupportsIndex, arg17: typing.SupportsInt | typing.SupportsIndex, arg18: typing.SupportsInt | typing.SupportsIndex, arg19: typing.SupportsInt | typing.SupportsIndex, arg20: typing.SupportsInt | typing.SupportsIndex, arg21: typing.SupportsInt | typing.SupportsIndex, arg22: typing.SupportsInt | typing.SupportsIndex, arg23: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Backward through time of one layer-direction on device pointers: writes dzx (and dzh), dh0, dc0 (and, with proj_size > 0, dht: the gradient reaching h_t).
    """
def recurrent_forward(arg0: str, arg1: str, arg2: bool, arg3: str, arg4: typing.SupportsInt | typing.SupportsIndex, arg5: typing.SupportsInt | typing.SupportsIndex, arg6: typing.SupportsInt | typing.SupportsIndex, arg7: typing.SupportsInt | typing.SupportsIndex, arg8: typing.SupportsInt | typing.SupportsIndex, arg9: typing.SupportsInt | typing.SupportsIndex, arg10: typing.SupportsInt | typing.SupportsIndex, arg11: typing.SupportsInt | typing.SupportsIndex, arg12: typing.SupportsInt | typing.SupportsIndex, arg13: bool, arg14: typing.SupportsInt | typing.SupportsIndex, arg15: typing.SupportsInt | typing.SupportsIndex, arg16: typing.SupportsInt | typing.SupportsIndex, arg17: typing.SupportsInt | typing.SupportsIndex, arg18: typing.SupportsInt | typing.SupportsIndex, arg19: typing.SupportsInt | typing.SupportsIndex, arg20: typing.SupportsInt | typing.SupportsIndex, arg21: typing.SupportsInt | typing.SupportsIndex, arg22: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Recurrence of one layer-direction on device pointers (seqkernels/recurrent.h, CUDA); 0 = null. proj_size > 0 (LSTM with projections) takes w_hr (R, H). Use seqkernels.nn, which owns the arrays.
    """
def recurrent_scratch_sizes(arg0: str, arg1: bool, arg2: str, arg3: typing.SupportsInt | typing.SupportsIndex, arg4: typing.SupportsInt | typing.SupportsIndex, arg5: typing.SupportsInt | typing.SupportsIndex) -> tuple[int, int]:
    """
    (forward inference scratch, backward scratch) in elements of the working type.
    """
def runtime_version() -> int:
    ...
__version__: str = '0.1.0'
cuda_archs: str = '90'
