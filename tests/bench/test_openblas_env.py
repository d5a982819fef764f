"""The OpenBLAS environment of a bench run: the helpers, and the path that runs the rows of another
environment in a child process and merges them into one table. The OpenBLAS variables themselves are
never changed here: the child gets exactly this process's values (the test pretends that this
process has the other setting)."""

import json

import pytest

from seqkernels.benchmarks import harness as hz
from seqkernels.benchmarks import rnn

UNSET = {"OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None}


def test_the_variables_and_their_names():
    assert hz.openblas_env({}) == UNSET
    assert hz.openblas_env({"OPENBLAS_CORETYPE": "Haswell", "PATH": "/bin"}) == {
        "OPENBLAS_CORETYPE": "Haswell",
        "OPENBLAS_L2_SIZE": None,
    }
    assert hz.openblas_env_name(UNSET) == "default"
    assert hz.openblas_env_name({"OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": "512"}) == "machine"
    assert "OPENBLAS_CORETYPE=unset" in hz.openblas_env_line(UNSET)
    assert "OPENBLAS_CORETYPE=Haswell" in hz.openblas_env_line(hz.MACHINE_OPENBLAS_ENV)


def test_variants():
    mine = {"OPENBLAS_CORETYPE": "Zen", "OPENBLAS_L2_SIZE": None}
    assert hz.openblas_env_variant("default", mine) == UNSET
    assert hz.openblas_env_variant("machine", mine) == mine  # this machine's own setting
    assert hz.openblas_env_variant("machine", UNSET) == hz.MACHINE_OPENBLAS_ENV  # else the development machines'
    with pytest.raises(ValueError, match="'default' or 'machine'"):
        hz.openblas_env_variant("both", UNSET)


def test_child_options_are_rewritten_by_full_name():
    argv = ["--quick", "--json", "a.json", "--openblas-env=both", "--shape", "lstm,1,2,3", "--fma-peak-gflops", "9"]
    assert hz._without_options(argv, ("--openblas-env", "--json", "--fma-peak-gflops")) == [
        "--quick",
        "--shape",
        "lstm,1,2,3",
    ]
    with pytest.raises(SystemExit):  # no abbreviations, so the rewrite cannot miss one
        rnn.parse_args(["--openblas", "both"])


def test_rows_of_the_other_environment_come_from_a_child_and_merge(tmp_path, monkeypatch, capsys):
    real = hz.openblas_env()
    if hz.openblas_env_name(real) == "default":
        pretend, child_env = dict(hz.MACHINE_OPENBLAS_ENV), "default"
    else:
        pretend, child_env = dict(UNSET), "machine"
        monkeypatch.setattr(hz, "MACHINE_OPENBLAS_ENV", dict(real))
    real_fn = hz.openblas_env
    monkeypatch.setattr(hz, "openblas_env", lambda environ=None: dict(pretend) if environ is None else real_fn(environ))
    out = tmp_path / "rnn.json"
    assert (
        rnn.main(
            [
                "--quick",
                "--shape",
                "lstm,2,8,3",
                "--repeats",
                "1",
                "--threads",
                "1",
                "--openblas-env",
                "both",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.startswith("OpenBLAS environment: OPENBLAS_CORETYPE=")

    payload = json.loads(out.read_text())
    assert [(r["env"], r["mode"]) for r in payload["rows"]] == [
        ("default", "fwd"),
        ("default", "fwd+bwd"),
        ("machine", "fwd"),
        ("machine", "fwd+bwd"),
    ]  # headline first
    variants = payload["openblas_env"]["variants"]
    assert variants[child_env]["ran_in"] == "child process"
    assert variants[child_env]["machine"]["openblas_env"] == real  # the child saw exactly our variables
    here = "machine" if child_env == "default" else "default"
    assert variants[here]["ran_in"] == "this process"
    peak = payload["fma_peak"]["gflops"]
    assert peak > 0 and payload["threads"] == 1 and payload["cpu_model"] and payload["cpu_capability"]
    for r in payload["rows"]:  # every row, the child's too, against the parent's one measured peak
        assert r["pct_peak"] == pytest.approx(100 * r["gflops"] / peak)


def test_a_failing_child_raises_with_its_output():
    with pytest.raises(RuntimeError, match="failed in a child process"):
        hz.run_bench_child("seqkernels.benchmarks.rnn", ["--shape", "nonsense"], hz.openblas_env())
