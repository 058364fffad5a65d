# Sourced by the table_*.sh chains: `bench CONFIG [FLAGS]` runs one resumable sweep with $WORKERS workers (default 2).
# mixtune bench exits 1 when some cells failed (they are recorded and the steps after it show them),
# 2 on a bad config, 130 on Ctrl-C: only the first lets the chain go on.
workers="${WORKERS:-2}"

bench() {
  mixtune bench "$@" --workers "$workers"
  local status=$?
  if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then exit "$status"; fi
}

# `select_once NAME`: mixtune select on results/NAME.jsonl into benchmarks/tuned_${NAME#tune_}.yaml, once (a kept
# choice is not redone: delete the file to select again), with every candidate's dev scores beside the results
# in results/NAME-selection.txt (written only when select succeeds).
select_once() {
  local tuned="benchmarks/tuned_${1#tune_}.yaml" table="results/$1-selection.txt"
  [ -f "$tuned" ] && return 0
  mixtune select "results/$1.jsonl" --out "$tuned" > "$table.partial" || exit $?
  mv "$table.partial" "$table"
  cat "$table"
}
