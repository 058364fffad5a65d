#!/usr/bin/env bash
# ARCHIVED (benchmarks/archive/README.md): its cells no longer resume from the committed results; the current
# pipeline is benchmarks/table2.sh.
# The first full table end to end: tune -> select -> table -> report. Every step resumes, so after an
# interruption run it again and it goes on where it stopped (a finished step costs seconds).
#   bash benchmarks/archive/table_n300.sh            # WORKERS=3 to run three single-threaded runs side by side
# The tuned choice (benchmarks/archive/tuned_n300.yaml) is written once and then kept: delete it to select again.
set -uo pipefail
cd "$(dirname "$0")/../.."
source benchmarks/chain.sh

bench benchmarks/archive/tune_n300.yaml
[ -f benchmarks/archive/tuned_n300.yaml ] || mixtune select results/tune_n300.jsonl --out benchmarks/archive/tuned_n300.yaml || exit $?
bench benchmarks/archive/table_n300.yaml
mixtune report results/table_n300.jsonl
