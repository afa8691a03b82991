# Shared by the benchmark scripts (sourced, not run).

# The step by hand: the same `bash -eo pipefail -c true` a RapidFlow step runs, $jobs times
# from a shell loop; prints each run's ms, one a line.
shell_steps() {
  local i t0
  for ((i = 0; i < jobs; i++)); do
    t0=$EPOCHREALTIME
    bash -eo pipefail -c true
    echo "$t0 $EPOCHREALTIME"
  done | awk '{ printf "%.3f\n", ($2 - $1) * 1000 }'
}
