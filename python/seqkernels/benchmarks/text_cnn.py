"""Text CNN layers: seqkernels.nn.Conv1d / TextCNN against torch.nn.Conv1d on the CPU, Kim-CNN shapes.

    python bench/text_cnn.py [--quick] [--repeats N] [--threads N] [--json PATH]

Shape (Kim 2014): B = 50 sentences of T = 50 tokens, C = 300-dimensional word vectors, F = 100
filters of each width k = 3, 4, 5. Rows:

* ``conv fwd`` (eval mode, no saved activations) and ``conv fwd+bwd`` (training forward, then the
  backward for dx, dweight, dbias) of one ``Conv1d`` per width;
* ``kim fwd+bwd``: the whole encoder — the three widths, ReLU, max over time, concatenated
  (``nn.TextCNN`` against the same network written with ``torch.nn.Conv1d``, ``relu``, ``max``, ``cat``).

Each side takes its own layout: seqkernels time-major ``(T, B, C)``, torch ``(B, C, T)``; no
transposes are timed. Both start from the same weights and are validated against each other first
(float32, 1e-4 of the largest magnitude). Then calls alternate (A B, B A, ...) so both see the same
moments of the machine; the table shows medians, the interquartile range and the load that other
processes put on the machine meanwhile. Rows run once on 1 thread (what the models' training loops
use: NumPy's BLAS on one thread) and once on ``--threads``.

FLOPs counted: a convolution's forward is 2·T_out·B·C·k·F; forward + backward ≈ 3 × that.
"""

import sys
import time

import numpy as np
import torch  # first, as users import it
from threadpoolctl import threadpool_limits

import seqkernels as sk
from seqkernels.benchmarks import harness as hz

B, T, C, F, WIDTHS = 50, 50, 300, 100, (3, 4, 5)
TOL = 1e-4


def conv_flops(k, mode):
    fwd = 2.0 * (T - k + 1) * B * C * k * F
    return fwd if mode == "fwd" else 3.0 * fwd


def conv_pair(k, mode, rng):
    conv = sk.nn.Conv1d(C, F, k, seed=k)
    tconv = torch.nn.Conv1d(C, F, k)
    tconv.load_state_dict({n: torch.tensor(v) for n, v in conv.state_dict().items()})
    x = rng.standard_normal((T, B, C)).astype(np.float32)
    tx = torch.tensor(x.transpose(1, 2, 0).copy())
    dy = rng.standard_normal((T - k + 1, B, F)).astype(np.float32)
    tdy = torch.tensor(dy.transpose(1, 2, 0).copy())
    if mode == "fwd":
        conv.eval()

        def ours():
            return conv(x)

        def theirs():
            with torch.no_grad():
                return tconv(tx)

        hz.validate(ours(), theirs().numpy().transpose(2, 0, 1), TOL, f"conv k={k} y")
    else:
        txg = tx.clone().requires_grad_(True)

        def ours():
            conv(x)
            return conv.backward(dy)

        def theirs():
            tconv.zero_grad(set_to_none=True)
            txg.grad = None
            tconv(txg).backward(tdy)
            return txg.grad

        hz.validate(ours(), theirs().numpy().transpose(2, 0, 1), TOL, f"conv k={k} dx")
        hz.validate(conv.grads["weight"], tconv.weight.grad.numpy(), TOL, f"conv k={k} dweight")
    return ours, theirs


def kim_pair(rng):
    cnn = sk.nn.TextCNN(C, WIDTHS, F, seed=0)
    tconvs = torch.nn.ModuleList(torch.nn.Conv1d(C, F, k) for k in WIDTHS)
    for conv, t in zip(cnn.convs, tconvs):
        t.load_state_dict({n: torch.tensor(v) for n, v in conv.state_dict().items()})
    x = rng.standard_normal((T, B, C)).astype(np.float32)
    tx = torch.tensor(x.transpose(1, 2, 0).copy(), requires_grad=True)
    dfeats = rng.standard_normal((B, len(WIDTHS) * F)).astype(np.float32)
    tdfeats = torch.tensor(dfeats)

    def ours():
        cnn(x)
        return cnn.backward(dfeats)

    def theirs():
        tconvs.zero_grad(set_to_none=True)
        tx.grad = None
        torch.cat([torch.relu(t(tx)).max(dim=2).values for t in tconvs], dim=1).backward(tdfeats)
        return tx.grad

    hz.validate(ours(), theirs().numpy().transpose(2, 0, 1), TOL, "kim dx")
    return ours, theirs


def main(argv=None, results_dir=None):
    ap = hz.bench_parser(
        "text_cnn",
        "seqkernels.nn.Conv1d / TextCNN vs torch.nn.Conv1d (CPU)",
        "fewer repeats, no waiting for a steady spread",
        "timed calls per variant (default 20, quick 5)",
    )
    args = hz.parse_bench_args(ap, argv)
    repeats = args.repeats or (5 if args.quick else 20)
    t0 = time.perf_counter()
    info = hz.machine_info()
    rng = np.random.default_rng(0)
    rows = []
    for threads in sorted({1, args.threads}):
        torch.set_num_threads(threads)
        with threadpool_limits(limits=threads, user_api="blas"):
            work = [(f"conv fwd k={k}", conv_flops(k, "fwd"), lambda k=k: conv_pair(k, "fwd", rng)) for k in WIDTHS]
            work += [
                (f"conv fwd+bwd k={k}", conv_flops(k, "bwd"), lambda k=k: conv_pair(k, "bwd", rng)) for k in WIDTHS
            ]
            work.append(("kim fwd+bwd 3,4,5", sum(conv_flops(k, "bwd") for k in WIDTHS), lambda: kim_pair(rng)))
            for name, flops, make in work:
                hz.log(f"{name}, {threads} thread(s)")
                ours, theirs = make()
                before = hz.cpu_snapshot()
                timing = hz.time_interleaved(
                    {"seqkernels": ours, "torch": theirs},
                    repeats=repeats,
                    warmup=2,
                    max_time=20.0,
                    target_iqr_pct=None if args.quick else 10.0,
                )
                load = hz.others_load(before, hz.cpu_snapshot())
                ms, tms = timing["seqkernels"]["median_ms"], timing["torch"]["median_ms"]
                rows.append(
                    {
                        "row": name,
                        "threads": threads,
                        "ms": ms,
                        "iqr_pct": 100 * timing["seqkernels"]["iqr_ms"] / ms,
                        "torch_ms": tms,
                        "torch_iqr_pct": 100 * timing["torch"]["iqr_ms"] / tms,
                        "x_torch": tms / ms,
                        "gflops": flops / ms / 1e6,
                        "torch_gflops": flops / tms / 1e6,
                        "others_load_pct": load,
                        "timing": timing,
                    }
                )
    notes = [
        "x torch > 1: seqkernels faster. The machine is shared with other builds: others_load_pct is the "
        "CPU share other processes used during the row; treat rows with a large value as noisy."
    ]
    cols = [
        ("row", "row", "s"),
        ("threads", "thr", "d"),
        ("ms", "ms", ".2f"),
        ("iqr_pct", "iqr%", ".0f"),
        ("torch_ms", "torch ms", ".2f"),
        ("torch_iqr_pct", "iqr%", ".0f"),
        ("x_torch", "x torch", ".2f"),
        ("gflops", "GFLOP/s", ".1f"),
        ("torch_gflops", "torch GFLOP/s", ".1f"),
        ("others_load_pct", "others %", ".0f"),
    ]
    hz.finish(
        "text_cnn",
        args,
        argv,
        settings={"B": B, "T": T, "C": C, "F": F, "widths": WIDTHS, "repeats": repeats, "tolerance": TOL},
        notes=notes,
        info=info,
        t0=t0,
        rows=rows,
        columns=cols,
        results_dir=results_dir,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
