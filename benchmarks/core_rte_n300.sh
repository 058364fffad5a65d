#!/usr/bin/env bash
# Issue 2's check: RTE, n = 300, seeds 1-3, vanilla and mixup-blo at the released settings (all defaults).
# Keeps each run's run.json and config.yaml under results/core_rte_n300/ (the model weights stay in runs/).
set -euo pipefail
cd "$(dirname "$0")/.."
for method in vanilla mixup-blo; do
  for seed in 1 2 3; do
    name="rte-$method-n300-s$seed"
    [ -f "results/core_rte_n300/$name.json" ] && continue
    mixtune train --task rte --train-size 300 --seed "$seed" --method "$method" \
      --data-dir ../shared/data/glue --output-dir "runs/$name" --overwrite --quiet
    cp "runs/$name/run.json" "results/core_rte_n300/$name.json"
  done
done
