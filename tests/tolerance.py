"""Shared test checks. The tolerance rule of this project (docs/architecture.md §3): a float32
kernel's error against the float64 reference may be at most K times the error of the same reference
run in float32, and never needs to beat one float32 ulp of the quantity's magnitude. Failures print
the worst element."""

import numpy as np

K = 8.0
EPS32 = float(np.finfo(np.float32).eps)


def max_err(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if np.size(a) else 0.0


def assert_within_rule(name, kernel, ref64, ref32, k=K):
    kernel, ref64 = np.asarray(kernel, np.float64), np.asarray(ref64, np.float64)
    assert kernel.shape == ref64.shape, f"{name}: shape {kernel.shape} != reference {ref64.shape}"
    if kernel.size == 0:
        return
    scale = float(np.max(np.abs(ref64)))
    limit = k * max(max_err(ref32, ref64), EPS32 * scale)
    diff = np.abs(kernel - ref64)
    worst = np.unravel_index(np.argmax(diff), diff.shape)
    assert diff[worst] <= limit, (
        f"{name}: max |kernel - ref64| = {diff[worst]:.3e} at {worst} "
        f"(kernel {kernel[worst]:.8g}, ref {ref64[worst]:.8g}) > limit {limit:.3e} "
        f"= {k} x max(float32 reference error, ulp)"
    )


def assert_close_rel(name, got, want, rel):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    if got.size == 0:
        return
    scale = max(float(np.max(np.abs(want))), 1e-30)
    diff = np.abs(got - want)
    worst = np.unravel_index(np.argmax(diff), diff.shape)
    assert diff[worst] <= rel * scale, (
        f"{name}: max diff {diff[worst]:.3e} at {worst} (got {got[worst]:.10g}, "
        f"want {want[worst]:.10g}) > {rel:g} x max|want| = {rel * scale:.3e}"
    )


def numerical_grad(loss_fn, arr, eps=1e-6, indices=None):
    """Central finite differences of ``loss_fn()`` with respect to entries of ``arr`` (all, or the
    flat ``indices``), perturbing ``arr`` in place and restoring it. Returns a flat array with one
    value per index (reshaped to ``arr.shape`` when all entries are taken)."""
    assert arr.dtype == np.float64 and arr.flags.c_contiguous
    flat = arr.reshape(-1)
    picks = range(flat.size) if indices is None else indices
    num = np.empty(len(picks))
    for n, i in enumerate(picks):
        orig = flat[i]
        flat[i] = orig + eps
        lp = loss_fn()
        flat[i] = orig - eps
        lm = loss_fn()
        flat[i] = orig
        num[n] = (lp - lm) / (2 * eps)
    return num.reshape(arr.shape) if indices is None else num
