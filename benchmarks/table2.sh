#!/usr/bin/env bash
# Issue #15's second table end to end: tune -> select -> the n = 300 table (seeds 1-3 first, then 4-5) -> its
# reports. Every step resumes, so after an interruption run it again and it goes on where it stopped (a finished
# step costs seconds). The budget (README, "The second table"): 2.4 h of tuning (done), 3.5 h per seed of the table.
#   bash benchmarks/table2.sh                # WORKERS=N for N single-threaded runs side by side (default 2)
# The tuned choice (benchmarks/tuned_table2.yaml) is written once and then kept: delete it to select again.
set -uo pipefail
cd "$(dirname "$0")/.."
source benchmarks/chain.sh

bench benchmarks/tune_table2.yaml
select_once tune_table2
bench benchmarks/table2_n300.yaml --seeds 1-3
bench benchmarks/table2_n300.yaml
mixtune report results/table2_n300.jsonl --out results/table2_n300-report --focus mixup-blo
mixtune report results/table2_n300.jsonl --out results/table2_n300-vs-soup --focus mixup-blo --baseline soup-start
