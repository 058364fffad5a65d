#!/usr/bin/env bash
# The optional second size, after the n = 300 table: n = 1000 for vanilla and mixup-blo, then one report over
# both sizes (its size plot shows score against n). Resumes like table_n300.sh.
#   bash benchmarks/table_n1000.sh           # WORKERS=N for N single-threaded runs side by side (default 2)
set -uo pipefail
cd "$(dirname "$0")/.."
workers="${WORKERS:-2}"

[ -f benchmarks/tuned_n300.yaml ] || { echo "error: benchmarks/tuned_n300.yaml missing: run bash benchmarks/table_n300.sh first" >&2; exit 2; }
mixtune bench benchmarks/table_n1000.yaml --workers "$workers"
status=$?
# exit 1 = some cells failed (recorded; the report shows them); 2 = bad config, 130 = Ctrl-C
if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then exit "$status"; fi
mixtune report results/table_n300.jsonl results/table_n1000.jsonl --out results/table_sizes-report
