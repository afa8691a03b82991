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

# The release build's rapidflow and rapidflow-bench, built into .build-release unless $bin
# already names a folder holding both (another build, for a side-by-side run); sets $bin.
release_binaries() {
  if [ -z "${bin:-}" ]; then
    swift build -c release --scratch-path .build-release --product rapidflow 2>&1 | grep -E "error|Build" || true
    swift build -c release --scratch-path .build-release --product rapidflow-bench 2>&1 | grep -E "error|Build" || true
    bin=$(pwd)/.build-release/release
  fi
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (up to a minute) until the service on 127.0.0.1:$1 answers /health.
wait_for_health() {
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 0.1; done
  echo "the service on port $1 did not answer /health" >&2
  return 1
}
