#!/usr/bin/env bash
# The first GPU, checked in one go (at most about 8 minutes): the CUDA-marked tests, a tiny sweep of four
# trials sharing the GPU (resources.gpu: 0.25) and the priors' training throughput under AMP beside the
# README's on-paper estimate. Runs unchanged on any machine: without CUDA it says so and exits 0.
#
#     bash benchmarks/gpu_check.sh            # from the repository root, with the project installed
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export RAY_USAGE_STATS_ENABLED=0 MLFLOW_DISABLE_TELEMETRY=true
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing to check"
  exit 0
fi
"$PY" -c "import torch; print('gpu_check:', torch.cuda.get_device_name(0), '| CUDA', torch.version.cuda, '| torch', torch.__version__)"
status=0
work=$(mktemp -d)

echo "--- 1/3 the CUDA-marked tests"
timeout 150 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests || status=1

echo "--- 2/3 a tiny sweep: four trials sharing the GPU (resources.gpu: 0.25)"
timeout 240 "$PY" -m study.sweep sweeps/quickstart.yaml --storage "$work/ray" --tracking-uri "sqlite:///$work/mlflow.db" \
  --max-concurrent 4 --set resources.gpu=0.25 --set base.training.steps=100 --set base.schedule.finetune_steps=50 \
  --set base.separation.listen_seconds=0.5 || status=1

echo "--- 3/3 training throughput, float32 and AMP, against the estimate on paper"
timeout 150 "$PY" -m benchmarks.gpu_check || status=1

rm -rf "$work"
exit $status
