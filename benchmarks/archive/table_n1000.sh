#!/usr/bin/env bash
# ARCHIVED (benchmarks/archive/README.md): its cells no longer resume from the committed results; the current
# pipeline is benchmarks/table2.sh.
# The optional second size, after the n = 300 table: n = 1000 for vanilla and mixup-blo, then one report over
# both sizes (its size plot shows score against n). Resumes like table_n300.sh.
#   bash benchmarks/archive/table_n1000.sh           # WORKERS=N for N single-threaded runs side by side (default 2)
set -uo pipefail
cd "$(dirname "$0")/../.."
source benchmarks/chain.sh

[ -f benchmarks/archive/tuned_n300.yaml ] || { echo "error: benchmarks/archive/tuned_n300.yaml missing: run bash benchmarks/archive/table_n300.sh first" >&2; exit 2; }
bench benchmarks/archive/table_n1000.yaml
mixtune report results/table_n300.jsonl results/table_n1000.jsonl --out results/table_sizes-report
