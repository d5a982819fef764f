"""The type stubs of the compiled modules (python/seqkernels/_C.pyi, _cuda.pyi) describe the modules
as built: the same functions and classes, and each function's parameters by name and order.
Regenerate them with tools/gen_stubs.py after changing a binding."""

import ast
import importlib
import pathlib
import re

import pytest

import seqkernels

STUB_DIR = pathlib.Path(seqkernels.__file__).parent


def _stub_signatures(path):
    """{name: [parameter names] or None for a class} of the stub's top-level definitions (overloads
    keep the first)."""
    out = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            a = node.args
            out.setdefault(node.name, [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)])
        elif isinstance(node, ast.ClassDef):
            out[node.name] = None
    return out


def _module_signatures(module):
    out = {}
    for name in dir(module):
        if name.startswith("_"):
            continue
        obj = getattr(module, name)
        if isinstance(obj, type):
            out[name] = None
        elif callable(obj):
            # pybind11 puts "name(arg: type, ...) -> ret" first in the docstring (numbered, after
            # "Overloaded function.", for overloads)
            m = re.search(rf"^(?:\d+\. )?{re.escape(name)}\((.*?)\) ->", obj.__doc__ or "", re.M)
            params = re.findall(r"(?:^|, )\*?(\w+):", m.group(1)) if m else []
            out[name] = params
    return out


@pytest.mark.parametrize("module", ["_C", "_cuda"])
def test_stub_matches_the_built_module(module):
    try:
        mod = importlib.import_module(f"seqkernels.{module}")
    except ImportError:
        if module == "_C":
            raise
        pytest.skip("seqkernels._cuda was not built (no nvcc at build time)")
    stub = STUB_DIR / f"{module}.pyi"
    assert stub.exists(), f"{stub} is missing: run tools/gen_stubs.py"
    declared, built = _stub_signatures(stub), _module_signatures(mod)
    assert sorted(declared) == sorted(built), "stub out of date: run tools/gen_stubs.py"
    for name, params in built.items():
        assert declared[name] == params, f"{module}.{name}: stub parameters {declared[name]} != built {params}"
