#!/usr/bin/env bash
# The first full table end to end: tune -> select -> table -> report. Every step resumes, so after an
# interruption run it again and it goes on where it stopped (a finished step costs seconds).
#   bash benchmarks/table_n300.sh            # WORKERS=3 to run three single-threaded runs side by side
# The tuned choice (benchmarks/tuned_n300.yaml) is written once and then kept: delete it to select again.
set -uo pipefail
cd "$(dirname "$0")/.."
source benchmarks/chain.sh

bench benchmarks/tune_n300.yaml
select_once tune_n300
bench benchmarks/table_n300.yaml
mixtune report results/table_n300.jsonl
