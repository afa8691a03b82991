#!/usr/bin/env bash
# What a cgroup per step costs per job: the same trivial jobs through one service that contains
# each step in a cgroup (fork + join before exec) and one that does not (posix_spawn, marker only),
# in one run, alternating rounds so both see the same machine.
#   scripts/bench-containment.sh [BINARY] [JOBS]   (default: .build/debug/rapidflow, 100 jobs a round)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-.build/debug/rapidflow}
jobs=${2:-100}
rounds=3
work=$(mktemp -d /tmp/rapidflow-bench-containment.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start() { # NAME ENV...: starts a service, prints its port
  local name=$1; shift
  mkdir -p "$work/$name"
  env "$@" "$bin" serve --port 0 --data-dir "$work/$name" --executor shell --max-concurrent-jobs 1 --log-level info \
    > "$work/$name.log" 2>&1 &
  pids+=($!)
  local i
  for i in $(seq 1 300); do
    grep -q "listening on" "$work/$name.log" 2>/dev/null && break
    sleep 0.1
  done
  sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$work/$name.log" | head -1
}

# One round: JOBS jobs of `true`, each submitted after the last ended; prints ms per job.
round() { # PORT PIPELINE
  local port=$1 pipeline=$2 started ended last
  started=$(date +%s%N)
  for _ in $(seq 1 "$jobs"); do
    last=$(curl -sf -X POST "http://127.0.0.1:$port/pipelines/$pipeline/jobs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')
    curl -sf "http://127.0.0.1:$port/jobs/$last/logs/stream?follow=true" > /dev/null
  done
  ended=$(date +%s%N)
  echo $(( (ended - started) / jobs / 1000 ))
}

contained=$(start contained)
marker=$(start marker RAPIDFLOW_NO_CGROUPS=1)
grep -q "cgroup per step" "$work/contained.log" || { echo "the first service has no cgroups here: $(grep containment "$work/contained.log")" >&2; exit 1; }
grep -q "marker variable" "$work/marker.log" || { echo "the second service uses cgroups" >&2; exit 1; }
for port in "$contained" "$marker"; do
  curl -sf -X POST "http://127.0.0.1:$port/pipelines" -d '{"name": "trivial", "config": "steps:\n  - \"true\"\n"}' > /dev/null
  round "$port" 1 > /dev/null   # warm-up
done
printf '%-28s %s\n' "round" "µs per job: cgroup per step | marker only"
for r in $(seq 1 "$rounds"); do
  a=$(round "$contained" 1)
  b=$(round "$marker" 1)
  printf '%-28s %8s | %8s\n' "$r ($jobs jobs each)" "$a" "$b"
done
