"""The torch-layers bench validates and times a (tiny) shape on the CPU and writes its JSON."""

import json

import pytest

torch = pytest.importorskip("torch")

from seqkernels.benchmarks import torch_layers  # noqa: E402


def test_bench_shape_validates_and_times(monkeypatch):
    monkeypatch.setattr(torch_layers, "T_STEPS", 5)
    row = torch_layers.bench_shape(B=2, H=8, repeats=2)
    assert row["T"] == 5 and row["ours_ms"] > 0 and row["torch_ms"] > 0 and row["sk_nn_ms"] > 0
    assert max(row["max_rel_error"].values()) <= torch_layers.TOL
    assert row["stats"]["ours"]["n"] >= 2


def test_main_writes_json(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch_layers, "T_STEPS", 3)
    monkeypatch.setattr(torch_layers, "QUICK_SHAPES", [(1, 4)])
    threads = torch.get_num_threads()
    try:
        assert torch_layers.main(["--quick", "--repeats", "1", "--threads", "1"], results_dir=tmp_path) == 0
    finally:
        torch.set_num_threads(threads)
    data = json.loads((tmp_path / "torch-layers-cpu.json").read_text())
    assert data["benchmark"] == "torch-layers" and len(data["rows"]) == 1
    assert "seqkernels.torch ms" in capsys.readouterr().out


def test_cuda_without_a_gpu_is_a_clear_message(capsys):
    import seqkernels

    if torch.cuda.is_available() and seqkernels.cuda_available():
        pytest.skip("a GPU is present: the CUDA bench runs on the device (bench/device.sh)")
    assert torch_layers.main(["--device", "cuda"]) == 2
    assert "--device cuda: needs a GPU" in capsys.readouterr().err
