#!/usr/bin/env bash
# Test a built wheel as a user gets it: install it into a fresh virtual environment whose PATH has
# no C/C++/CUDA compiler (so nothing can quietly build from source), then run the whole test suite
# from a folder outside the source tree, against the installed package.
#
#   tools/test_installed_wheel.sh WHEEL [pip requirement ...]     e.g. ... dist/seqkernels-*.whl torch==2.13.0
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -ge 1 ] || { echo "usage: tools/test_installed_wheel.sh WHEEL [requirement ...]" >&2; exit 2; }
wheel="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
shift
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/venv"

# A PATH of the usual tool folders, less anything that compiles C, C++ or CUDA.
nocc="$work/bin"
mkdir -p "$nocc"
compiler='^(cc|c\+\+|c89|c99|cpp|gcc|g\+\+|clang|clang\+\+|clang-cpp|nvcc|cudafe\+\+|tcc|icc|icx|icpx)(-[0-9.]+)?$|-(gcc|g\+\+|cc|c\+\+|cpp)(-[0-9.]+)?$'
for dir in /usr/local/bin /usr/bin /bin; do
  [ -d "$dir" ] || continue
  for tool in "$dir"/*; do
    name="$(basename "$tool")"
    [ -e "$nocc/$name" ] || grep -qE "$compiler" <<<"$name" || ln -s "$tool" "$nocc/$name"
  done
done
export PATH="$work/venv/bin:$nocc"
unset CC CXX CUDACXX CUDA_HOME CUDA_PATH
for tool in cc c++ gcc g++ clang nvcc; do
  if command -v "$tool" >/dev/null; then echo "test_installed_wheel: $tool is still on PATH" >&2; exit 1; fi
done
echo "== installed-wheel test: no compiler on PATH; installing $(basename "$wheel")"
# --only-binary: every dependency must come as a wheel too (none could be compiled here anyway).
if ! pip install --only-binary=:all: "$wheel[test]" "$@" > "$work/pip.log" 2>&1; then
  tail -40 "$work/pip.log"
  exit 1
fi

# The tests and the pytest settings (pyproject.toml) only; no sources, no bench/, no cmake/.
mkdir -p "$work/run"
cp -r "$root/tests" "$work/run/tests"
cp "$root/pyproject.toml" "$work/run/"
find "$work/run/tests" -name __pycache__ -prune -exec rm -rf {} +
cd "$work/run"
python - <<'PY'
import json, pathlib, sys
import seqkernels
where = pathlib.Path(seqkernels.__file__).resolve()
assert pathlib.Path(sys.prefix).resolve() in where.parents, f"seqkernels imported from {where}, not the venv"
print("seqkernels from", where.parent)
print(json.dumps(seqkernels.build_info(), indent=1))
PY
python -m pytest -q -p no:cacheprovider tests
