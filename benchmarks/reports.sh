#!/usr/bin/env bash
# Regenerate every committed report from the results files alone (after merging a change to the report, or new
# records). The table2 reports read their headline tasks from the grid config (--config), named before the run.
#   bash benchmarks/reports.sh           # MIXTUNE="python -m mixtune.cli" to use another than the installed one
set -euo pipefail
cd "$(dirname "$0")/.."
report() { ${MIXTUNE:-mixtune} report "$@" > /dev/null && echo "wrote ${*: -1}"; }
report results/table2_n300.jsonl --focus mixup-blo --config benchmarks/table2_n300.yaml --out results/table2_n300-report
report results/table2_n300.jsonl --focus mixup-blo --baseline soup-start --config benchmarks/table2_n300.yaml --out results/table2_n300-vs-soup
report results/table2_n1000.jsonl --focus mixup-blo --config benchmarks/table2_n1000.yaml --out results/table2_n1000-report
report results/table2_mpnet.jsonl --focus mixup-blo --config benchmarks/table2_mpnet.yaml --out results/table2_mpnet-report
report results/table_n300.jsonl --out results/table_n300-report
report results/table_n300.jsonl results/table_n1000.jsonl --out results/table_sizes-report
report results/table_n300.jsonl results/matched_n300.jsonl --focus mixup-blo-matched --out results/matched_n300-report
report results/defaults_rte_n300.jsonl --out results/defaults_rte_n300-report
report results/pilot_head.jsonl results/pilot_cosine.jsonl --focus vanilla --out results/pilot_head-report
report results/pilot_mixup.jsonl --focus mixup-blo-released --out results/pilot_mixup-report
report results/pilot_mixup.jsonl --focus mixup-blo-released --baseline soup-start-released --out results/pilot_mixup-vs-soup
report results/pilot_mixup.jsonl --focus mixup-share-module --baseline soup-start --out results/pilot_mixup-share-vs-soup
report results/pilot_promise.jsonl --split pool_test --baseline 'vanilla[lr=5e-05]' --focus mixup-mask-swa --out results/pilot_promise-report
report results/confirm_promise.jsonl --focus mixup-mask-swa --config benchmarks/confirm_promise.yaml --out results/confirm_promise-report
report results/confirm_promise.jsonl --split pool_test --focus mixup-mask-swa --config benchmarks/confirm_promise.yaml --out results/confirm_promise-pool_test-report
