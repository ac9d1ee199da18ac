#!/usr/bin/env bash
# The GPU checks of issue 11 in one call on a device machine (its python3 holds torch+triton):
# the CUDA tests, then benchmarks/gpu.py. Prepare the peers' wheels here first (`make
# gpu-wheels`, they go to .whl/) and carry .whl; results land in $OUT (or benchmarks/results).
#   device run:  bash benchmarks/gpu_device.sh        (carry: [".whl"], timeout_s: 600)
set -uo pipefail
OUT="${OUT:-benchmarks/results}"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="$PWD:/tmp/site"
else
    echo "no .whl/ wheels: the peers (norse, snntorch, spikingjelly) are skipped if absent"
    export PYTHONPATH="$PWD"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
timeout 150 python3 -m pytest -q -p no:cacheprovider -m cuda -o addopts="" \
    tests/test_triton_kernels.py tests/test_quadratic_fused.py tests/test_parameters.py \
    2>&1 | tee "$OUT/cuda-tests.log"
tests_rc=${PIPESTATUS[0]}
timeout 400 python3 benchmarks/gpu.py --no-progress --out "$OUT/gpu.json" 2>&1 | tee "$OUT/gpu.log"
bench_rc=${PIPESTATUS[0]}
echo "cuda tests rc=$tests_rc, gpu.py rc=$bench_rc"
exit $((tests_rc != 0 || bench_rc != 0))
