#!/usr/bin/env bash
# The GPU check (issue 14), under 5 minutes on one GPU: the gpu test group (tiny models: every method, the three
# precisions, CUDA RNG, the search cache, predict), then benchmarks/gpu_check.py on the default model: every method
# briefly on CUDA, one short run on the CPU and the GPU side by side, and a vanilla step, a finetune-phase step and
# a bi-level iteration timed on the GPU with their ratios. From the repository root, the venv active, the GLUE
# data beside it (DATA=... to point elsewhere):
#   bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/glue}
if ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA GPU visible to torch $(python -c 'import torch; print(torch.__version__)'): run it on a machine with one" >&2
    exit 2
fi
python -c "import torch; print('gpu_check:', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| CUDA', torch.version.cuda)"
python -m pytest -q -m gpu tests/test_device.py tests/mixup/test_search_workers.py
python benchmarks/gpu_check.py --data-dir "$DATA"
