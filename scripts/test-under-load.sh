#!/usr/bin/env bash
# Runs the whole test command's tests RUNS times in a row (default 10) while another process
# keeps one core busy, and stops at the first failing run: the Swift tests (as scripts/test.sh
# runs them), the HTTP contract (schemathesis) and the dashboard in headless Chromium. They
# must pass every run on 2 cores.
#   scripts/test-under-load.sh [RUNS]
# Installs and starts the test services like scripts/test.sh, and builds once first.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}

eval "$(scripts/test-services.sh)"
swift build --build-tests

# The load: one shell loop spinning on one core, for as long as the runs take (at most 3 hours).
timeout 3h bash -c 'while :; do :; done' &
load=$!
trap 'kill $load 2>/dev/null || true' EXIT

logs=$(mktemp -d /tmp/rapidflow-under-load.XXXXXX)
passed=0
for run in $(seq 1 "$runs"); do
  started=$(date +%s)
  # Line-buffered, so a run that hangs shows which tests started and never ended; a run
  # past 25 minutes is a hang, and fails.
  if timeout 25m bash -c 'stdbuf -oL -eL swift test --skip-build --experimental-maximum-parallelization-width 40 \
      && scripts/test-openapi.sh && scripts/test-dashboard.sh' >"$logs/run-$run.log" 2>&1; then
    passed=$((passed + 1))
    echo "run $run of $runs: passed in $(( $(date +%s) - started )) s ($(grep -Eo 'with [0-9]+ tests' "$logs/run-$run.log" | tail -1))"
  else
    echo "run $run of $runs: FAILED after $(( $(date +%s) - started )) s; its output: $logs/run-$run.log"
    grep -E '✘|FAIL|Error' "$logs/run-$run.log" | head -20 || true
    echo "under load: $passed passed, 1 failed"
    exit 1
  fi
done
echo "under load: $passed passed, 0 failed (logs in $logs)"
