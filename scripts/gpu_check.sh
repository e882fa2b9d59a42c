#!/usr/bin/env bash
# CUDA check for a machine with a GPU: the lossless and verifier tests on CUDA, then the generate
# benchmark on CUDA. Under 5 minutes on one GPU. Usage: scripts/gpu_check.sh [python]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
"$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no GPU'; print(torch.cuda.get_device_name(0))"
SPECFMT_TEST_DEVICE=cuda "$PY" -m pytest -q -x tests/test_lossless.py tests/test_verification.py -k "not chi_square"
"$PY" benchmarks/generate.py --device cuda --tokens 64
