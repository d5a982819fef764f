"""The torch_layers bench on tiny shapes: the model and layer rows validate and come out, main
writes its JSON, a run with a competing load leaves no process behind, and the GPU path says when it
cannot run (the timings themselves are not tested)."""

import json
import os
import sys

import pytest

torch = pytest.importorskip("torch")
from seqkernels.benchmarks import torch_layers  # noqa: E402  (needs torch)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("mode", ["train", "infer"])
def test_torch_model_row_on_a_tiny_shape(cell, mode):
    timing = {"repeats": 2, "warmup": 1, "min_time": 0.0, "max_time": 1.0, "target_iqr_pct": None}
    row = torch_layers.bench_model(cell, 2, 8, mode, timing, peak_gflops=100.0)
    assert row["ours_ms"] > 0 and row["torch_ms"] > 0 and row["x_torch"] > 0 and row["gflops"] > 0
    assert max(row["max_rel_error"].values()) < torch_layers.TOL


def _children():
    """Processes whose parent is this one (reaped children do not count)."""
    me, kids = os.getpid(), []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                kids.append((int(d), fields[0]))
    return kids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="lists processes from /proc")
def test_torch_layers_run_with_contention_leaves_no_process(tmp_path):
    out = tmp_path / "t.json"
    before = _children()
    assert (
        torch_layers.main(
            [
                "--quick",
                "--shape",
                "gru,2,8",
                "--repeats",
                "2",
                "--max-iqr",
                "1000",
                "--threads",
                "1",
                "--contend",
                "1",
                "--layer-rows",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert _children() == before
    payload = json.loads(out.read_text())
    rows = payload["rows"]
    assert [(r["what"], r["mode"]) for r in rows] == [("model", "train"), ("model", "infer"), ("layer", "train")]
    assert all(r["ours_load_ms"] > 0 and r["torch_slowdown"] > 0 and r["env"] for r in rows)
    assert payload["contend"] == 1 and payload["fma_peak"]["gflops"] > 0


def test_layer_row_validates_and_times(monkeypatch):
    monkeypatch.setattr(torch_layers, "T_STEPS", 5)
    timing = {"repeats": 2, "warmup": 1, "min_time": 0.0, "max_time": 1.0, "target_iqr_pct": None}
    row = torch_layers.bench_layer("lstm", 2, 8, timing)
    assert row["T"] == 5 and row["ours_ms"] > 0 and row["torch_ms"] > 0 and row["sk_nn_ms"] > 0
    assert max(row["max_rel_error"].values()) <= torch_layers.TOL
    assert row["stats"]["ours"]["n"] >= 2


def test_main_writes_json(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch_layers, "T_STEPS", 3)
    monkeypatch.setattr(torch_layers, "QUICK_SHAPES", [("lstm", 1, 4)])
    assert (
        torch_layers.main(["--quick", "--repeats", "1", "--max-iqr", "1000", "--threads", "1"], results_dir=tmp_path)
        == 0
    )
    data = json.loads((tmp_path / "torch-layers-cpu.json").read_text())
    assert data["benchmark"] == "torch-layers" and [r["mode"] for r in data["rows"]] == ["train", "infer"]
    assert all(r["T"] == 3 for r in data["rows"])
    assert "seqkernels.torch ms" in capsys.readouterr().out


def test_cuda_without_a_gpu_is_a_clear_message(capsys):
    import seqkernels

    if torch.cuda.is_available() and seqkernels.cuda_available():
        pytest.skip("a GPU is present: the CUDA bench runs on the device (bench/device.sh)")
    assert torch_layers.main(["--device", "cuda"]) == 2
    assert "--device cuda: needs a GPU" in capsys.readouterr().err
