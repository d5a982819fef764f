#!/usr/bin/env bash
# The one device check: build with CUDA, run the `cuda` tests (plain, then under compute-sanitizer
# memcheck and racecheck), then the CUDA benches. Every log lands under $OUT.
# The build compiles for this machine's GPU only (SEQKERNELS_CUDA_ARCHS=native; the release list of
# 12 architectures costs minutes of device time); set SEQKERNELS_CUDA_ARCHS to override.
#
# The device image lacks only scipy-openblas32 (see the device tool's README): once, here,
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .whl scipy-openblas32
# then call the device with carry [".whl"] and the command `bash bench/device.sh`.
set -uo pipefail
OUT=${OUT:-/tmp/seqkernels-device}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
step() { echo "== $*" | tee -a "$OUT/summary.txt"; }

if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
fi
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1

ARCHS=${SEQKERNELS_CUDA_ARCHS:-native}
step "build (SEQKERNELS_CUDA=ON, SEQKERNELS_CUDA_ARCHS=$ARCHS)"
if ! SEQKERNELS_CUDA=ON SEQKERNELS_CUDA_ARCHS="$ARCHS" python3 -m pip install -v --no-build-isolation --no-deps . > "$OUT/build.log" 2>&1; then
  tail -60 "$OUT/build.log"; exit 1
fi
cd /tmp  # import the installed package, not the source tree
python3 -c "import seqkernels, json; print(json.dumps(seqkernels.build_info(), indent=1))" | tee "$OUT/build_info.json"
cd - >/dev/null

step "cuda tests"
python3 -m pytest -q -m cuda tests 2>&1 | tee "$OUT/cuda-tests.log" | tail -5 | tee -a "$OUT/summary.txt"

for tool in memcheck racecheck; do
  step "compute-sanitizer --tool $tool (cuda tests)"
  compute-sanitizer --tool "$tool" --error-exitcode 9 python3 -m pytest -q -x -m cuda tests/search tests/nn \
    > "$OUT/sanitizer-$tool.log" 2>&1
  echo "exit $? ($(grep -c 'ERROR SUMMARY: 0 errors' "$OUT/sanitizer-$tool.log") clean summaries)" | tee -a "$OUT/summary.txt"
  grep "ERROR SUMMARY" "$OUT/sanitizer-$tool.log" | sort | uniq -c | tee -a "$OUT/summary.txt"
done

step "bench search --device cuda"
python3 bench/search.py --device cuda --json "$OUT/search-cuda.json" 2>&1 | tee "$OUT/search-cuda.txt" | tail -12

step "bench rnn --device cuda (fp32 vs cuDNN fp32 and TF32)"
python3 bench/rnn.py --device cuda --json "$OUT/rnn-cuda.json" 2>&1 | tee "$OUT/rnn-cuda.txt" | tail -40

step "bench torch_layers --device cuda"
python3 bench/torch_layers.py --device cuda --quick --json "$OUT/torch-layers-cuda.json" 2>&1 | tee "$OUT/torch-layers-cuda.txt" | tail -8
