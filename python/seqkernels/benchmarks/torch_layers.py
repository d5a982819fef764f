"""Training-step benchmark of the drop-in torch layer: ``seqkernels.torch.LSTM`` against
``torch.nn.LSTM`` (and, to show the wrapper's cost, the NumPy-facing ``seqkernels.nn.LSTM`` over
the same kernels).

    python bench/torch_layers.py [--device cpu|cuda] [--quick] [--repeats N] [--threads N] [--json PATH]

One training step = forward of a ``(T, B, I)`` float32 input with ``requires_grad`` on the input
and the parameters, then ``y.backward(dy)`` for a fixed random ``dy`` (seqkernels.nn: ``forward``
then ``backward(dy)``). Every variant is checked against torch.nn first (y, dx, dW_hh). Times are
medians of at least ``--repeats`` steps after warm-up, the variants timed in alternating blocks
(``harness.time_blocks``).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from . import harness as hz

T_STEPS = 50
FULL_SHAPES = [(b, h) for h in (256, 512) for b in (1, 16, 64)]  # (B, H), I = H, T = 50
QUICK_SHAPES = [(b, 256) for b in (1, 16, 64)]
TOL = 1e-4  # float32: max |error| relative to torch's max magnitude (validation before timing)


def flops(B, H, T, I) -> float:
    """Matrix-product FLOPs of an LSTM training step (as bench/rnn.py): 3 x 2·T·B·4H·(I+H)."""
    return 3.0 * 2.0 * T * B * 4 * H * (I + H)


def _torch_step(module, x, dy):
    """fn() running one training step of a torch module; returns y, dx, dW_hh (tensors)."""
    def fn():
        x.grad = None
        module.zero_grad(set_to_none=True)
        y, _ = module(x)
        y.backward(dy)
        return {"y": y.detach(), "dx": x.grad, "dW_hh": module.weight_hh_l0.grad}
    return fn


def make_variants(params, x_np, dy_np, device="cpu"):
    import torch

    import seqkernels as sk
    import seqkernels.torch as skt

    T, B, I = x_np.shape
    H = params["weight_hh_l0"].shape[1]
    state = {k: torch.from_numpy(v) for k, v in params.items()}
    fns = {}
    for name, cls in (("torch", torch.nn.LSTM), ("ours", skt.LSTM)):
        m = cls(I, H).to(device)
        m.load_state_dict(state)
        m.train()
        x = torch.from_numpy(x_np).clone().to(device).requires_grad_()
        fns[name] = _torch_step(m, x, torch.from_numpy(dy_np).to(device))
    layer = sk.nn.LSTM(I, H)
    layer.load_state_dict(params)
    layer.train()
    x_in, dy_in = x_np, dy_np
    if device == "cuda":
        import cupy

        layer.to("cuda")
        x_in, dy_in = cupy.asarray(x_np), cupy.asarray(dy_np)

    def raw():
        y, _ = layer(x_in)
        dx, _ = layer.backward(dy_in)
        return {"y": y, "dx": dx, "dW_hh": layer.grads["weight_hh_l0"]}
    fns["sk_nn"] = raw
    return fns


def bench_shape(B, H, repeats, seed=0, device="cpu", sync=None):
    T, I = T_STEPS, H
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(H)  # torch.nn's initialisation range
    shapes = {"weight_ih_l0": (4 * H, I), "weight_hh_l0": (4 * H, H), "bias_ih_l0": (4 * H,), "bias_hh_l0": (4 * H,)}
    params = {k: rng.uniform(-bound, bound, s).astype(np.float32) for k, s in shapes.items()}
    x = rng.standard_normal((T, B, I), dtype=np.float32)
    dy = rng.standard_normal((T, B, H), dtype=np.float32)
    fns = make_variants(params, x, dy, device)
    base = {k: hz.to_host(v) for k, v in fns["torch"]().items()}
    errors = {}
    for name in ("ours", "sk_nn"):  # validation doubles as the first warm-up
        out = fns[name]()
        errors[name] = max(hz.validate(hz.to_host(out[k]), base[k], TOL, f"{name} {k} vs torch, LSTM B{B} H{H} T{T}")
                           for k in base)
    before = hz.cpu_snapshot()
    stats = hz.time_blocks(fns, repeats=repeats, warmup=2, rounds=2, min_time=0.3, sync=sync)
    others = hz.others_load(before, hz.cpu_snapshot())
    ms = {n: s["median_ms"] for n, s in stats.items()}
    f = flops(B, H, T, I)
    return {"cell": "LSTM", "B": B, "H": H, "I": I, "T": T, "ours_ms": ms["ours"], "torch_ms": ms["torch"],
            "sk_nn_ms": ms["sk_nn"], "x_torch": ms["torch"] / ms["ours"],
            "overhead_pct": 100.0 * (ms["ours"] - ms["sk_nn"]) / ms["sk_nn"], "gflops": f / (ms["ours"] * 1e6),
            "iqr_pct": 100 * max(s["iqr_ms"] / s["median_ms"] for s in stats.values()), "others_pct": others,
            "flops": f, "max_rel_error": errors, "stats": stats}


COLUMNS = [("cell", "cell", "s"), ("B", "B", "d"), ("H", "H", "d"), ("T", "T", "d"),
           ("ours_ms", "seqkernels.torch ms", ".2f"), ("torch_ms", "torch.nn ms", ".2f"),
           ("x_torch", "speed-up", lambda v: f"{v:.2f}x"), ("sk_nn_ms", "seqkernels.nn ms", ".2f"),
           ("overhead_pct", "wrapper %", "+.0f"), ("gflops", "GFLOP/s", ".1f"), ("iqr_pct", "max IQR %", ".0f"),
           ("others_pct", "others CPU %", ".0f")]


def parse_args(argv):
    ap = hz.bench_parser("torch-layers", __doc__.split("\n\n")[0], "H=256 only (B = 1, 16, 64)",
                         "timed steps per variant, at least (default 10)")
    args = hz.parse_bench_args(ap, argv)
    args.repeats = args.repeats or 10
    return args


def main(argv=None, results_dir=None) -> int:
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        print("this benchmark compares against torch.nn.LSTM: pip install torch", file=sys.stderr)
        return 2
    sync = None
    if args.device == "cuda":
        import seqkernels

        if not (torch.cuda.is_available() and seqkernels.cuda_available()):
            print("--device cuda: needs a GPU, torch with CUDA, CuPy and seqkernels built with CUDA",
                  file=sys.stderr)
            return 2
        sync = torch.cuda.synchronize
    # torch and seqkernels share one OpenMP runtime in the process, so this sets both.
    torch.set_num_threads(args.threads)
    notes = [f"threads: {args.threads} (torch.set_num_threads; the seqkernels kernels use the same OpenMP runtime)",
             "one step = forward + y.backward(dy), input and parameters requiring grad; seqkernels.nn is the "
             "NumPy-facing layer over the same kernels, so 'wrapper %' is the torch layer's own cost",
             "max IQR %: widest interquartile range among a row's variants, in % of its median; others CPU %: the "
             "machine's CPU time used by other processes while the row was timed. Rerun rows where either is high"]
    info, rows, t0 = hz.machine_info(), [], time.perf_counter()
    for B, H in (QUICK_SHAPES if args.quick else FULL_SHAPES):
        row = bench_shape(B, H, args.repeats, device=args.device, sync=sync)
        rows.append(row)
        hz.log(f"LSTM B{B} H{H} T{T_STEPS}: ours {row['ours_ms']:.2f} ms, torch {row['torch_ms']:.2f} ms, "
               f"seqkernels.nn {row['sk_nn_ms']:.2f} ms")
    hz.finish("torch-layers", args, argv,
              settings={"threads": args.threads, "repeats": args.repeats, "quick": args.quick, "tol": TOL,
                        "T": T_STEPS},
              extra={"flops": "3 x 2*T*B*4H*(I+H) per training step (matrix products only)"},
              notes=notes, info=info, t0=t0, rows=rows, columns=COLUMNS, results_dir=results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
