# Sourced by the table_*.sh chains: `bench CONFIG [FLAGS]` runs one resumable sweep with $WORKERS workers (default 2).
# mixtune bench exits 1 when some cells failed (they are recorded and the steps after it show them),
# 2 on a bad config, 130 on Ctrl-C: only the first lets the chain go on.
workers="${WORKERS:-2}"

bench() {
  mixtune bench "$@" --workers "$workers"
  local status=$?
  if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then exit "$status"; fi
}
