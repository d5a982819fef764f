"""Regenerate the type stubs of the compiled modules (python/seqkernels/_C.pyi, _cuda.pyi).

Editors and type checkers cannot look inside a pybind11 extension, so the stubs spell out its
functions, parameters and docstrings. They are generated from the built modules by pybind11-stubgen
(`pip install pybind11-stubgen`), so run this after changing a binding, with the package importable
(an editable install, or PYTHONPATH pointing at python/ with the extensions built), and commit the
result. tests/test_stubs.py fails when a stub and its module disagree on names or parameters.

    python tools/gen_stubs.py            # both modules (_cuda only when it was built)
"""

from __future__ import annotations

import importlib
import pathlib
import shutil
import subprocess
import sys
import tempfile

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1] / "python" / "seqkernels"


def generate(module: str) -> pathlib.Path:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pybind11_stubgen", f"seqkernels.{module}", "-o", tmp], check=True)
        target = PACKAGE_DIR / f"{module}.pyi"
        shutil.copyfile(pathlib.Path(tmp, "seqkernels", f"{module}.pyi"), target)
    return target


def main() -> int:
    for module in ("_C", "_cuda"):
        try:
            importlib.import_module(f"seqkernels.{module}")
        except ImportError as e:
            print(f"seqkernels.{module} is not importable ({e}); its stub is left as it is", file=sys.stderr)
            continue
        print(f"wrote {generate(module)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
