#!/usr/bin/env bash
# The GPU check of issue 18 on a machine with a CUDA GPU, in one command from the repository root:
#
#     OUT=gpu-out benchmarks/gpu_check.sh            # PYTHON=... to pick the interpreter (default python3)
#
# 1. installs the project: `pip install -e '.[test]'`; where no package index can be reached (an
#    offline GPU image that already holds torch), `pip install --no-deps` from the source tree;
#    failing both, it runs from the source tree (PYTHONPATH), and says which in install.txt
# 2. runs the tests that need CUDA (pytest -m cuda; on a CPU machine they skip with the reason)
# 3. runs benchmarks/gpu_check.py: quick search and train with --device cuda (and the CPU search of
#    the same seed, for the genotype), 5 samples of the cifar10 search on synthetic CIFAR-10 in the
#    real on-disk format with and without AMP, 1 epoch of cifar10 small training, projections
#
# Everything lands in $OUT: install.txt, cuda-tests.txt, gpu_check.json (also printed). About 8-10
# minutes on one H200 (the CPU quick search is 1-2 of them: GPU_CHECK_ARGS=--skip-cpu leaves it out).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-gpu-check-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

if "$PY" -m pip install -q --retries 0 --timeout 10 -e '.[test]' >"$OUT/install.log" 2>&1; then
    echo "installed: pip install -e '.[test]'" >"$OUT/install.txt"
elif "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . >>"$OUT/install.log" 2>&1; then
    echo "installed: pip install --no-deps (offline; torch and the rest from the image)" >"$OUT/install.txt"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    echo "not installed (offline, no build backend): running from the source tree" >"$OUT/install.txt"
fi
"$PY" -m cpnas_cli.engine.deploy.native.build >>"$OUT/install.log" 2>&1 || true  # CPU kernels; not needed here
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" >>"$OUT/install.txt" 2>&1
cat "$OUT/install.txt"

"$PY" -m pytest -m cuda -rs -q -p no:cacheprovider tests 2>&1 | tee "$OUT/cuda-tests.txt"
tests=${PIPESTATUS[0]}

# shellcheck disable=SC2086  # GPU_CHECK_ARGS holds separate flags
"$PY" benchmarks/gpu_check.py --out "$OUT/gpu_check.json" ${GPU_CHECK_ARGS:-}
check=$?
echo "cuda tests exit $tests, gpu_check exit $check"
exit $((tests != 0 || check != 0))
