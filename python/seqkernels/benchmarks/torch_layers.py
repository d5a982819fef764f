"""The drop-in torch layers in a torch model: ``seqkernels.torch.LSTM``/``GRU`` against ``torch.nn``'s.

    python bench/torch_layers.py [--quick] [--cell lstm|gru] [--shape CELL,B,H ...] [--repeats N]
                                 [--max-iqr PCT] [--threads N] [--openblas-env current|default|machine|both]
                                 [--contend N] [--layer-rows] [--device cpu|cuda] [--json PATH]

The model is what a user writes: ``nn.Embedding(V, H)`` → the recurrent layer (H → H over T steps)
→ ``nn.Linear(H, V)``, cross-entropy over all T·B positions, ``torch.optim.Adam``; V = 1000, T = 50.
Two modes: ``train`` is one training step (zero_grad, forward, loss, backward, Adam step) and
``infer`` the logits under ``torch.no_grad()`` with the model in eval mode. The two models start
from the same weights (the drop-in loads torch.nn's state dict) and are checked against each other
first (loss, gradients, logits). Then their steps alternate in one process (A B, B A, ...) until
each side's interquartile range is within ``--max-iqr`` % of its median, or a time limit.

Every row shows GFLOP/s and the percentage of this machine's float32 FMA peak, measured at the start
on the same threads. ``--layer-rows`` adds rows for the layer alone (forward + ``y.backward(dy)``),
with ``seqkernels.nn`` over the same kernels to show the torch wrapper's own cost.

FLOPs counted (matrix products only), G gates (LSTM 4, GRU 3):
    model forward = 2·T·B·(G·H·(H+H) + H·V)      recurrent layer (I = H) plus the output projection
    training step ≈ 3 × forward                  (the backward's products are twice the forward's)
"""

from __future__ import annotations

import sys
import time

import numpy as np

from ..reference import GATES
from . import harness as hz

CELLS = ("lstm", "gru")
T_STEPS = 50
VOCAB = 1000
MODES = ("train", "infer")
FULL_SHAPES = [(c, b, h) for c in CELLS for h in (256, 512) for b in (1, 16, 64)]  # (cell, B, H)
QUICK_SHAPES = [(c, b, 256) for c in CELLS for b in (1, 16)]
TOL = 1e-4  # float32: max |error| relative to torch's max magnitude (validation before timing)
LAYER_CLASS = {"lstm": "LSTM", "gru": "GRU"}


def model_flops(cell, B, H, T, V, mode) -> float:
    fwd = 2.0 * T * B * (GATES[cell] * H * (H + H) + H * V)
    return fwd if mode == "infer" else 3.0 * fwd


def layer_flops(cell, B, H, T, I) -> float:
    """Matrix-product FLOPs of a layer's training step (as bench/rnn.py): 3 x 2·T·B·G·H·(I+H)."""
    return 3.0 * 2.0 * T * B * GATES[cell] * H * (I + H)


# ---- the model rows ----------------------------------------------------------------------------
def _model(layer_cls, V, H):
    import torch

    class SequenceModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(V, H)
            self.rnn = layer_cls(H, H)
            self.out = torch.nn.Linear(H, V)

        def forward(self, ids):
            y, _ = self.rnn(self.embed(ids))
            return self.out(y)

    return SequenceModel()


def make_model_variants(cell, B, H, mode, seed=0, device="cpu", T=None, V=None):
    """``{"ours": fn, "torch": fn}``: each fn runs one step of its model and returns what validation
    compares (train: loss and gradients after the step; infer: logits)."""
    import torch

    import seqkernels.torch as skt

    T, V = T or T_STEPS, V or VOCAB
    torch.manual_seed(seed)
    ref = _model(getattr(torch.nn, LAYER_CLASS[cell]), V, H)
    ours = _model(getattr(skt, LAYER_CLASS[cell]), V, H)
    ours.load_state_dict(ref.state_dict())
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, V, (T, B), generator=g).to(device)
    targets = torch.randint(0, V, (T, B), generator=g).reshape(-1).to(device)
    fns = {}
    for name, model in (("ours", ours), ("torch", ref)):
        model.to(device)
        if mode == "infer":
            model.eval()

            def infer(model=model):
                with torch.no_grad():
                    return {"logits": model(ids)}

            fns[name] = infer
            continue
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step(model=model, opt=opt):
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(ids).reshape(-1, V), targets)
            loss.backward()
            opt.step()
            return {
                "loss": loss.detach(),
                "dW_hh": model.rnn.weight_hh_l0.grad,
                "dW_ih": model.rnn.weight_ih_l0.grad,
                "dembed": model.embed.weight.grad,
                "dout": model.out.weight.grad,
            }

        fns[name] = step
    return fns


def _timing(args):
    quick = args.quick
    return {
        "repeats": args.repeats or (5 if quick else 20),
        "warmup": 2 if quick else 5,
        "min_time": 0.2 if quick else 1.0,
        "max_time": 2.0 if quick else 20.0,
        "target_iqr_pct": args.max_iqr,
    }


def _validated(fns, what):
    """Run torch's fn and every other once from the same state; compare; return max errors."""
    base = {k: hz.to_host(v) for k, v in fns["torch"]().items()}
    errors = {}
    for name, fn in fns.items():
        if name != "torch":
            out = fn()
            errors[name] = max(
                hz.validate(hz.to_host(out[k]), base[k], TOL, f"{name} {k} vs torch, {what}") for k in base
            )
    return errors


def _row(fns, flops, timing, contention, peak_gflops, sync):
    """Time ``fns`` ("ours", "torch", ...) alternately, quiet and (with ``contention``) loaded."""
    m = hz.measure(lambda: hz.time_interleaved(fns, sync=sync, **timing), contention)
    stats = m["quiet"]
    ms = {n: s["median_ms"] for n, s in stats.items()}

    def rate(n):
        return flops / (ms[n] * 1e6)

    row = {
        "ours_ms": ms["ours"],
        "ours_iqr_pct": 100 * stats["ours"]["iqr_ms"] / ms["ours"],
        "torch_ms": ms["torch"],
        "torch_iqr_pct": 100 * stats["torch"]["iqr_ms"] / ms["torch"],
        "x_torch": ms["torch"] / ms["ours"],
        "gflops": rate("ours"),
        "pct_peak": hz.pct_of_peak(rate("ours"), peak_gflops),
        "torch_gflops": rate("torch"),
        "torch_pct_peak": hz.pct_of_peak(rate("torch"), peak_gflops),
        "n": stats["ours"]["n"],
        "others_pct": m["quiet_others_pct"],
        "flops": flops,
        "stats": stats,
        **hz.contended_fields(m, ms, contention),
    }
    return row, ms


def bench_model(cell, B, H, mode, timing, *, contention=None, peak_gflops=None, device="cpu", sync=None, seed=0):
    """One model row: validate, then time the two models' steps alternately."""
    fns = make_model_variants(cell, B, H, mode, seed=seed, device=device)
    errors = _validated(fns, f"{cell} model B{B} H{H} T{T_STEPS} {mode}")
    row, _ = _row(fns, model_flops(cell, B, H, T_STEPS, VOCAB, mode), timing, contention, peak_gflops, sync)
    return {
        "what": "model",
        "cell": cell.upper(),
        "B": B,
        "H": H,
        "T": T_STEPS,
        "V": VOCAB,
        "mode": mode,
        **row,
        "max_rel_error": errors,
    }


# ---- the layer-only rows -----------------------------------------------------------------------
def _torch_step(module, x, dy):
    """fn() running one training step of a torch module; returns y, dx, dW_hh (tensors)."""

    def fn():
        x.grad = None
        module.zero_grad(set_to_none=True)
        y, _ = module(x)
        y.backward(dy)
        return {"y": y.detach(), "dx": x.grad, "dW_hh": module.weight_hh_l0.grad}

    return fn


def make_layer_variants(cell, params, x_np, dy_np, device="cpu"):
    """The layer alone: seqkernels.torch's ("ours"), torch.nn's, and seqkernels.nn's ("sk_nn")."""
    import torch

    import seqkernels as sk
    import seqkernels.torch as skt

    T, B, I = x_np.shape
    H = params["weight_hh_l0"].shape[1]
    state = {k: torch.from_numpy(v) for k, v in params.items()}
    fns = {}
    for name, cls in (("torch", getattr(torch.nn, LAYER_CLASS[cell])), ("ours", getattr(skt, LAYER_CLASS[cell]))):
        m = cls(I, H).to(device)
        m.load_state_dict(state)
        m.train()
        x = torch.from_numpy(x_np).clone().to(device).requires_grad_()
        fns[name] = _torch_step(m, x, torch.from_numpy(dy_np).to(device))
    layer = getattr(sk.nn, LAYER_CLASS[cell])(I, H)
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


def bench_layer(cell, B, H, timing, *, contention=None, peak_gflops=None, device="cpu", sync=None, seed=0):
    """One layer-only row: a training step of the layer (forward + y.backward(dy)), three variants."""
    T, I, G = T_STEPS, H, GATES[cell]
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(H)  # torch.nn's initialisation range
    shapes = {"weight_ih_l0": (G * H, I), "weight_hh_l0": (G * H, H), "bias_ih_l0": (G * H,), "bias_hh_l0": (G * H,)}
    params = {k: rng.uniform(-bound, bound, s).astype(np.float32) for k, s in shapes.items()}
    x = rng.standard_normal((T, B, I), dtype=np.float32)
    dy = rng.standard_normal((T, B, H), dtype=np.float32)
    fns = make_layer_variants(cell, params, x, dy, device)
    errors = _validated(fns, f"{cell} layer B{B} H{H} T{T}")
    row, ms = _row(fns, layer_flops(cell, B, H, T, I), timing, contention, peak_gflops, sync)
    return {
        "what": "layer",
        "cell": cell.upper(),
        "B": B,
        "H": H,
        "T": T,
        "V": None,
        "mode": "train",
        **row,
        "sk_nn_ms": ms["sk_nn"],
        "overhead_pct": 100.0 * (ms["ours"] - ms["sk_nn"]) / ms["sk_nn"],
        "max_rel_error": errors,
    }


# ---- the run -----------------------------------------------------------------------------------
COLUMNS = [
    ("env", "env", "s"),
    ("what", "what", "s"),
    ("cell", "cell", "s"),
    ("B", "B", "d"),
    ("H", "H", "d"),
    ("T", "T", "d"),
    ("mode", "mode", "s"),
    ("ours_ms", "seqkernels.torch ms", ".2f"),
    ("ours_iqr_pct", "IQR %", ".0f"),
    ("torch_ms", "torch.nn ms", ".2f"),
    ("torch_iqr_pct", "IQR %", ".0f"),
    ("x_torch", "speed-up", hz.fmt_x),
    ("sk_nn_ms", "seqkernels.nn ms", ".2f"),
    ("overhead_pct", "wrapper %", "+.0f"),
    *hz.PEAK_COLUMNS,
    ("n", "runs", "d"),
    ("others_pct", "others CPU %", ".0f"),
    *hz.LOADED_COLUMNS,
]


def parse_args(argv):
    ap = hz.bench_parser(
        "torch-layers",
        __doc__.split("\n\n")[0],
        "H = 256, B = 1 and 16, fewer runs (< 1 min)",
        "timed steps per side, at least (default 20, 5 with --quick)",
    )
    ap.add_argument("--cell", choices=CELLS, help="only this cell")
    ap.add_argument(
        "--shape",
        type=hz.shape_arg(CELLS, "B,H"),
        action="append",
        metavar="CELL,B,H",
        help="time this shape instead of the built-in list (repeatable)",
    )
    ap.add_argument(
        "--max-iqr",
        type=float,
        default=5.0,
        metavar="PCT",
        help="keep timing a row until each side's IQR is within PCT %% of its median (default "
        "%(default)s; stops after 20 s per row, 2 s with --quick)",
    )
    ap.add_argument(
        "--layer-rows",
        action="store_true",
        help="also time the layer alone (forward + backward of a fixed dy), with seqkernels.nn",
    )
    hz.add_run_options(ap)
    args = hz.parse_bench_args(ap, argv)
    if not args.max_iqr > 0:
        ap.error("--max-iqr must be > 0")
    return args


def main(argv=None, results_dir=None) -> int:
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        print("this benchmark compares against torch.nn: pip install torch", file=sys.stderr)
        return 2
    sync = None
    if args.device == "cuda":
        import seqkernels

        if not (torch.cuda.is_available() and seqkernels.cuda_available()):
            print("--device cuda: needs a GPU, torch with CUDA, CuPy and seqkernels built with CUDA", file=sys.stderr)
            return 2
        sync = torch.cuda.synchronize
    peak = hz.start_run(args)
    # torch and seqkernels share one OpenMP runtime in the process, so this sets both.
    torch.set_num_threads(args.threads)
    timing = _timing(args)
    shapes = [s for s in (args.shape or (QUICK_SHAPES if args.quick else FULL_SHAPES)) if args.cell in (None, s[0])]
    notes = [
        f"threads: {args.threads} (torch.set_num_threads; the seqkernels kernels use the same OpenMP runtime)",
        f"model: Embedding({VOCAB}, H) -> layer(H, H) -> Linear(H, {VOCAB}), T = {T_STEPS}, cross-entropy, Adam; "
        "train = zero_grad + forward + loss + backward + Adam step, infer = no_grad forward in eval mode; "
        "the two models' steps alternate",
        f"IQR %: interquartile range of a side's steps in % of its median (target {args.max_iqr:g} %); runs: "
        "timed steps per side; others CPU %: other processes' share of the machine while the row was timed",
    ]
    if args.layer_rows:
        notes.append(
            "layer rows: forward + y.backward(dy) of the layer alone; seqkernels.nn is the NumPy-facing "
            "layer over the same kernels, so 'wrapper %' is the torch layer's own cost"
        )
    notes += hz.contention_note(args.contend)
    notes += hz.import_order_notes()
    info, t0 = hz.machine_info(), time.perf_counter()

    def run_here():
        rows = []
        kw = {"peak_gflops": peak["gflops"], "device": args.device, "sync": sync}
        with hz.Contention(args.contend) as load:
            for cell, B, H in shapes:
                for mode in MODES:
                    rows.append(bench_model(cell, B, H, mode, timing, contention=load, **kw))
                    hz.log(
                        f"{cell} model B{B} H{H} {mode}: ours {rows[-1]['ours_ms']:.2f} ms, "
                        f"torch {rows[-1]['torch_ms']:.2f} ms ({rows[-1]['n']} steps each)"
                    )
                if args.layer_rows:
                    rows.append(bench_layer(cell, B, H, timing, contention=load, **kw))
                    hz.log(
                        f"{cell} layer B{B} H{H}: ours {rows[-1]['ours_ms']:.2f} ms, torch "
                        f"{rows[-1]['torch_ms']:.2f} ms, seqkernels.nn {rows[-1]['sk_nn_ms']:.2f} ms"
                    )
        for r in rows:
            r["env"] = hz.openblas_env_name(hz.openblas_env())
        return rows

    rows, envs = hz.run_env_variants(__spec__.name, args, argv, run_here, peak)  # also under python -m
    notes += hz.env_notes(envs)
    hz.finish(
        "torch-layers",
        args,
        argv,
        settings={
            "threads": args.threads,
            "quick": args.quick,
            "tol": TOL,
            "T": T_STEPS,
            "V": VOCAB,
            "timing": timing,
            "layer_rows": args.layer_rows,
            "contend": args.contend,
            "openblas_env": args.openblas_env,
        },
        extra={
            "flops": "model: forward 2*T*B*(G*H*2H + H*V), train 3 x forward; layer rows: 3 x 2*T*B*G*H*(I+H)",
            **hz.run_record(args, peak, info, envs),
        },
        notes=notes,
        info=info,
        t0=t0,
        rows=rows,
        columns=COLUMNS,
        results_dir=results_dir,
        headline=hz.peak_headline(peak, args.threads),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
