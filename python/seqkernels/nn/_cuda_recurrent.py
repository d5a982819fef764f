"""The CUDA path of the recurrent layers: one layer-direction's forward and backward on CuPy arrays,
with the same arguments as ``seqkernels._C.forward`` / ``_C.backward`` so that the layers call
either backend the same way.

The time-parallel products (x·W_ihᵀ for every step, dX, dW_ih, dW_hh, the bias sums) are CuPy
matrix products (cuBLAS); the recurrence is the persistent kernel of ``seqkernels._cuda``
(cuda/rnn/recurrent.cu). Everything is queued on CuPy's current stream.
"""

from __future__ import annotations

from .._backend import _C, _cuda
from ..reference import GATES


def _cupy():
    import cupy

    return cupy


def _ptr(a) -> int:
    return 0 if a is None else int(a.data.ptr)


def _stream() -> int:
    return int(_cupy().cuda.get_current_stream().ptr)


def _require_cuda():
    if _cuda is None:
        raise RuntimeError(
            "seqkernels was built without CUDA: reinstall where nvcc is available "
            "(SEQKERNELS_CUDA=ON) to run layers on the GPU"
        )


def forward(
    *,
    mode,
    reset_after,
    nonlinearity,
    x,
    w_ih,
    w_hh,
    b_ih,
    b_hh,
    h0,
    c0,
    lengths,
    reverse,
    y,
    direction,
    h_n,
    c_n,
    workspace,
    pack=None,
    num_threads=0,
    proj_size=0,
    w_hr=None,
):
    """Forward of one layer-direction; writes y[:, :, direction·R:(direction+1)·R], h_n, c_n and, in
    training mode, the workspace (same layout as the CPU kernels). R = proj_size (LSTM with
    projections, ``w_hr`` (R, H)) or H. ``pack`` and ``num_threads`` are the CPU kernels' (ignored
    here: the GPU kernels read W_hh as it is)."""
    _require_cuda()
    steps, batch, inputs = x.shape
    hidden = w_hh.shape[0] // GATES[mode]
    state = proj_size or hidden
    xz = x.reshape(steps * batch, inputs) @ w_ih.T  # cuBLAS
    if b_ih is not None:
        xz += b_ih
    scratch = None
    if workspace is None:
        size, _ = _cuda.recurrent_scratch_sizes(mode, reset_after, nonlinearity, batch, hidden, proj_size)
        scratch = _cupy().empty(size, dtype=x.dtype)
    offset = direction * state * x.dtype.itemsize
    _cuda.recurrent_forward(
        str(x.dtype),
        mode,
        reset_after,
        nonlinearity,
        steps,
        batch,
        hidden,
        _ptr(xz),
        _ptr(w_hh),
        _ptr(b_hh),
        _ptr(h0),
        _ptr(c0),
        _ptr(lengths),
        bool(reverse),
        _ptr(y) + offset,
        y.shape[2],
        _ptr(h_n),
        _ptr(c_n),
        _ptr(workspace),
        _ptr(scratch),
        _stream(),
        proj_size,
        _ptr(w_hr),
    )


def backward(
    *,
    mode,
    reset_after,
    nonlinearity,
    x,
    w_ih,
    w_hh,
    lengths,
    reverse,
    dy,
    direction,
    dh_n,
    dc_n,
    workspace,
    dx,
    dh0,
    dc0,
    dw_ih,
    dw_hh,
    db_ih,
    db_hh,
    pack=None,
    num_threads=0,
    proj_size=0,
    w_hr=None,
    dw_hr=None,
    accumulate_dx=True,
):
    """Backward of one layer-direction: adds into dx (writes it with ``accumulate_dx=False``), writes
    dh0, dc0 and the parameter gradients (``dw_hr`` too with projections)."""
    _require_cuda()
    cp = _cupy()
    steps, batch, inputs = x.shape
    G = GATES[mode]
    hidden = w_hh.shape[0] // G
    state = proj_size or hidden  # R, the units of h
    gh, rows = G * hidden, steps * batch
    gru_reset_after_product = mode == "gru" and reset_after
    gru_reset_before_product = mode == "gru" and not reset_after
    dzx = cp.empty((rows, gh), dtype=x.dtype)
    dzh = cp.empty((rows, gh), dtype=x.dtype) if gru_reset_after_product else None
    _, size = _cuda.recurrent_scratch_sizes(mode, reset_after, nonlinearity, batch, hidden, proj_size)
    scratch = cp.empty(size, dtype=x.dtype)
    dht = cp.empty((rows, state), dtype=x.dtype) if proj_size else None
    offset = direction * state * x.dtype.itemsize
    _cuda.recurrent_backward(
        str(x.dtype),
        mode,
        reset_after,
        nonlinearity,
        steps,
        batch,
        hidden,
        _ptr(w_hh),
        _ptr(lengths),
        bool(reverse),
        _ptr(dy) + offset,
        dy.shape[2],
        _ptr(dh_n),
        _ptr(dc_n),
        _ptr(workspace),
        _ptr(dzx),
        _ptr(dzh),
        _ptr(dh0),
        _ptr(dc0),
        _ptr(scratch),
        _stream(),
        proj_size,
        _ptr(w_hr),
        _ptr(dht),
    )
    # Time-parallel gradients: one product each over all T·B rows (the CPU kernel's GEMMs).
    x2 = x.reshape(rows, inputs)
    if accumulate_dx:
        dx.reshape(rows, inputs)[...] += dzx @ w_ih
    else:
        cp.matmul(dzx, w_ih, out=dx.reshape(rows, inputs))
    dw_ih[...] = dzx.T @ x2
    layout = _C.workspace_layout(mode, reset_after, nonlinearity, steps, batch, hidden, proj_size)  # the one definition
    first = layout["states"] + (batch * state if reverse else 0)  # h_{t-1} of every t
    h_prev_all = workspace[first : first + rows * state].reshape(rows, state)
    if proj_size:  # h_t = m_t·W_hrᵀ, m_t saved in the proj block
        m_all = workspace[layout["proj"] : layout["proj"] + rows * hidden].reshape(rows, hidden)
        dw_hr[...] = dht.T @ m_all
    dzh_all = dzh if gru_reset_after_product else dzx
    if gru_reset_before_product:  # the n block's recurrent input was r ⊙ h_{t-1}, saved as aux
        aux = workspace[layout["aux"] : layout["aux"] + rows * hidden].reshape(rows, hidden)
        dw_hh[: 2 * hidden] = dzx[:, : 2 * hidden].T @ h_prev_all
        dw_hh[2 * hidden :] = dzx[:, 2 * hidden :].T @ aux
    else:
        dw_hh[...] = dzh_all.T @ h_prev_all
    if db_ih is not None:
        db_ih[...] = dzx.sum(axis=0)
    if db_hh is not None:
        db_hh[...] = dzh_all.sum(axis=0)


def workspace_size(mode, reset_after, nonlinearity, steps, batch, hidden, proj_size=0):
    """Elements of the training workspace (the same layout on CPU and GPU)."""
    return _C.workspace_size(mode, reset_after, nonlinearity, steps, batch, hidden, proj_size=proj_size)


def last_launch_plan() -> dict:
    """Blocks, units per block and shared memory of the last recurrence launch on this thread."""
    _require_cuda()
    return dict(_cuda.last_launch_plan())
