#!/usr/bin/env bash
# What the durability promise costs: the same benchmarks on a service that flushes SQLite's log
# before each write's answer (the default) and on one with --relaxed-durability, in one run,
# release build: per-job time (200 trivial jobs one after another, submit → final status, the
# shell baseline beside them) and the scale run (1,000 × `sleep 5` on 200 slots, 100 clients
# submitting together: p99 submit latency against p99 /health, time to the last job's end).
#   scripts/bench-durability.sh [--jobs 200] [--scale-jobs 1000] [--binary DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=200 scale_jobs=1000 bin=
while [ $# -gt 0 ]; do
  case $1 in
    --jobs) jobs=$2; shift 2 ;;
    --scale-jobs) scale_jobs=$2; shift 2 ;;
    --binary) bin=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
. scripts/bench-common.sh
release_binaries

work=$(mktemp -d /tmp/rapidflow-bench-durability.XXXXXX)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
ulimit -n 65536 2>/dev/null || true

start() { # NAME [serve flags…]
  local name=$1; shift
  port=$(free_port)
  mkdir -p "$work/$name"
  "$bin/rapidflow" serve --host 127.0.0.1 --port "$port" --data-dir "$work/$name" --executor shell --log-level error "$@" \
    > "$work/$name.log" 2>&1 &
  server=$!
  wait_for_health "$port"
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; server=; }

shell_ms() { # the step by hand: bash -eo pipefail -c true, $jobs times; ms each
  local began=$(date +%s%N)
  for _ in $(seq 1 "$jobs"); do bash -eo pipefail -c true; done
  awk -v ns=$(( $(date +%s%N) - began )) -v n="$jobs" 'BEGIN { printf "%.2f", ns / n / 1e6 }'
}

for mode in durable relaxed; do
  flags=()
  [ "$mode" = relaxed ] && flags=(--relaxed-durability)
  echo "== $mode"
  start "$mode-jobs" "${flags[@]}"
  echo "  shell baseline: $(shell_ms) ms per step"
  "$bin/rapidflow-bench" jobs --url "http://127.0.0.1:$port" --jobs "$jobs" --warmup 20 --out "$work/$mode-jobs.txt" | sed 's/^/  /'
  echo "  shell baseline: $(shell_ms) ms per step"
  stop
  start "$mode-scale" --max-concurrent-jobs 200 "${flags[@]}"
  mkdir -p "$work/results"
  "$bin/rapidflow-bench" scale --url "http://127.0.0.1:$port" --jobs "$scale_jobs" --clients 100 --sleep 5 \
    --results "$work/results" --rep 1 | sed 's/^/  /'
  stop
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
