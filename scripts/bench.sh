#!/usr/bin/env bash
# RapidFlow against the same work by hand and against Buildbot 4.3, on loopback, every figure
# beside a baseline measured in the same run; writes the table in BENCHMARKS.md.
#   scripts/bench.sh [--quick]   (full: about 10 minutes on 2 cores; --quick: a smoke run, no write)
# Scenarios: per-job overhead (shell, RapidFlow, Buildbot), API throughput with 100,000 stored
# jobs (wrk), submit throughput (wrk), scale (1,000 jobs of `sleep 5`, 200 at once).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
began=$(date +%s)

quick=false
[ "${1:-}" = --quick ] && quick=true
if $quick; then
  jobs=40 overhead_reps=2 builds=20 buildbot_reps=1 seed_jobs=5000 wrk_seconds=2 api_reps=1
  scale_jobs=200 scale_concurrency=50 scale_sleep=2 scale_reps=1
else
  jobs=200 overhead_reps=3 builds=200 buildbot_reps=2 seed_jobs=100000 wrk_seconds=5 api_reps=3
  scale_jobs=1000 scale_concurrency=200 scale_sleep=5 scale_reps=2
fi
wrk_connections=32 scale_clients=100

# Kept between runs: the Buildbot venv (installing it takes a minute).
cache=/tmp/rapidflow-bench
work=$(mktemp -d /tmp/rapidflow-bench-run.XXXXXX)
results=$work/results
mkdir -p "$cache" "$results"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf '\n== %s (%ss)\n' "$*" "$(($(date +%s) - began))"; }

# MARK: - Tools

say "release build"
swift build -c release --scratch-path .build-release --product rapidflow 2>&1 | grep -E "error|Compiling|Build" || true
swift build -c release --scratch-path .build-release --product rapidflow-bench 2>&1 | grep -E "error|Compiling|Build" || true
bin=$repo/.build-release/release
[ -x "$bin/rapidflow" ] && [ -x "$bin/rapidflow-bench" ] || { echo "release build failed" >&2; exit 1; }

if ! command -v wrk >/dev/null; then
  apt-get install -y -q wrk >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }
fi
venv=$cache/buildbot-venv
if [ ! -x "$venv/bin/buildbot-worker" ]; then
  say "Buildbot 4.3 into $venv"
  python3 -m venv "$venv"
  # buildbot-www carries the web application the REST API is served from.
  "$venv/bin/pip" install -q buildbot==4.3.0 buildbot-www==4.3.0 buildbot-worker==4.3.0
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # URL: up to 60 s
  local i
  for i in $(seq 1 600); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "nothing answered at $1" >&2; return 1
}
rss_mb() { awk -v key="$2:" '$1 == key { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"; }

# start_rapidflow DATA_DIR [serve flags…]: sets $port and $server.
start_rapidflow() {
  local data=$1; shift
  port=$(free_port)
  "$bin/rapidflow" serve --host 127.0.0.1 --port "$port" --data-dir "$data" --executor shell --allow-local-repos --log-level error "$@" \
    > "$data.log" 2>&1 &
  server=$!
  pids+=("$server")
  wait_for "http://127.0.0.1:$port/health"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# shell_steps: the step by hand, each run's ms.
. "$repo/scripts/bench-common.sh"

# wrk_rps OUT URL [wrk flags…]: requests per second into OUT; any non-2xx answer is a failure.
wrk_rps() {
  local out=$1 url=$2 text; shift 2
  text=$(wrk -t 2 -c "$wrk_connections" -d "${wrk_seconds}s" "$@" "$url")
  if grep -q "Non-2xx" <<< "$text"; then echo "$text" >&2; return 1; fi
  awk '/^Requests\/sec:/ { print $2 }' <<< "$text" > "$out"
  echo "  $(basename "$out" .txt): $(cat "$out") req/s"
}

cat > "$results/settings.txt" <<EOF
jobs $jobs
seed_jobs $seed_jobs
scale_jobs $scale_jobs
scale_concurrency $scale_concurrency
scale_sleep $scale_sleep
scale_clients $scale_clients
EOF
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# MARK: - Per-job overhead

say "per-job overhead: shell and RapidFlow, $overhead_reps × $jobs jobs"
start_rapidflow "$work/overhead"
for rep in $(seq 1 "$overhead_reps"); do
  shell_steps > "$results/overhead-shell-$rep.txt"
  "$bin/rapidflow-bench" jobs --url "http://127.0.0.1:$port" --jobs "$jobs" --warmup 20 --out "$results/overhead-rapidflow-$rep.txt"
done
stop "$server"

say "per-job overhead: Buildbot 4.3, $buildbot_reps × $builds builds"
bb=$work/buildbot
mkdir -p "$bb"
bb_pb=$(free_port) bb_www=$(free_port)
"$venv/bin/buildbot" create-master -q "$bb/master"
"$venv/bin/buildbot-worker" create-worker -q "$bb/worker" "127.0.0.1:$bb_pb" bench-worker bench-pass >/dev/null
# One builder with the same step, the force scheduler, and the REST API on loopback.
cat > "$bb/master/master.cfg" <<EOF
from buildbot.plugins import schedulers, steps, util, worker
c = BuildmasterConfig = {}
c['workers'] = [worker.Worker('bench-worker', 'bench-pass')]
c['protocols'] = {'pb': {'port': 'tcp:$bb_pb:interface=127.0.0.1'}}
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['bench'])]
c['builders'] = [util.BuilderConfig(name='bench', workernames=['bench-worker'],
    factory=util.BuildFactory([steps.ShellCommand(command=['bash', '-eo', 'pipefail', '-c', 'true'])]))]
c['www'] = {'port': 'tcp:$bb_www:interface=127.0.0.1', 'plugins': {}}
c['buildbotURL'] = 'http://127.0.0.1:$bb_www/'
c['db'] = {'db_url': 'sqlite:///state.sqlite'}
c['buildbotNetUsageData'] = None
EOF
"$venv/bin/buildbot" start --nodaemon "$bb/master" > "$bb/master.log" 2>&1 &
pids+=($!); bb_master=$!
wait_for "http://127.0.0.1:$bb_www/api/v2/builders"
"$venv/bin/buildbot-worker" start --nodaemon "$bb/worker" > "$bb/worker.log" 2>&1 &
pids+=($!); bb_worker=$!
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$bb_www/api/v2/workers" | grep -q '"masterid"' && break
  sleep 0.1
done
for rep in $(seq 1 "$buildbot_reps"); do
  shell_steps > "$results/buildbot-shell-$rep.txt"
  "$bin/rapidflow-bench" buildbot --url "http://127.0.0.1:$bb_www" --builds "$builds" --warmup 5 --out "$results/buildbot-$rep.txt"
done
stop "$bb_worker"; stop "$bb_master"

# MARK: - API throughput

say "API throughput: seeding $seed_jobs jobs"
"$bin/rapidflow-bench" seed --data-dir "$work/api" --jobs "$seed_jobs"
start_rapidflow "$work/api"
base=http://127.0.0.1:$port
cat > "$work/random-status.lua" <<EOF
request = function() return wrk.format(nil, "/jobs/" .. math.random(1, $seed_jobs) .. "/status") end
EOF
wrk -t 2 -c "$wrk_connections" -d 1s "$base/jobs?limit=50" >/dev/null   # warm-up
for rep in $(seq 1 "$api_reps"); do
  wrk_rps "$results/api-health-$rep.txt" "$base/health"
  wrk_rps "$results/api-status-$rep.txt" "$base" -s "$work/random-status.lua"
  wrk_rps "$results/api-list-$rep.txt" "$base/jobs?limit=50"
done
stop "$server"

# MARK: - Submit throughput

say "submit throughput"
start_rapidflow "$work/submit" --max-concurrent-jobs 1
base=http://127.0.0.1:$port
curl -sf -X POST "$base/pipelines" -d '{"name": "hold", "config": "steps:\n  - sleep 3600\n"}' >/dev/null
curl -sf -X POST "$base/pipelines" -d '{"name": "queued", "config": "steps:\n  - \"true\"\n"}' >/dev/null
curl -sf -X POST "$base/pipelines/1/jobs" >/dev/null   # holds the only slot: the submitted jobs stay pending
cat > "$work/submit.lua" <<'EOF'
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
EOF
wrk -t 2 -c "$wrk_connections" -d 1s -s "$work/submit.lua" "$base/pipelines/2/jobs" >/dev/null   # warm-up
for rep in $(seq 1 "$api_reps"); do
  wrk_rps "$results/submit-health-$rep.txt" "$base/health"
  wrk_rps "$results/submit-post-$rep.txt" "$base/pipelines/2/jobs" -s "$work/submit.lua"
done
stop "$server"

# MARK: - Scale

for rep in $(seq 1 "$scale_reps"); do
  say "scale: $scale_jobs jobs of sleep $scale_sleep, $scale_concurrency at once (run $rep)"
  start_rapidflow "$work/scale-$rep" --max-concurrent-jobs "$scale_concurrency"
  rss_mb "$server" VmRSS > "$results/scale-idle-$rep.txt"
  "$bin/rapidflow-bench" scale --url "http://127.0.0.1:$port" --jobs "$scale_jobs" --clients "$scale_clients" \
    --sleep "$scale_sleep" --results "$results" --rep "$rep"
  rss_mb "$server" VmHWM > "$results/scale-peak-$rep.txt"
  echo "  idle $(cat "$results/scale-idle-$rep.txt") MB, peak $(cat "$results/scale-peak-$rep.txt") MB"
  stop "$server"
done

# MARK: - Report

elapsed=$(($(date +%s) - began))
cat > "$results/machine.txt" <<EOF
Command: \`scripts/bench.sh$($quick && echo " --quick")\` ($((elapsed / 60)) min $((elapsed % 60)) s, build included), $(date -u +%Y-%m-%d)
Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/^Mem:/ { print $2 }') GiB, $(. /etc/os-release; echo "$PRETTY_NAME"), $(swift --version 2>&1 | grep -oE 'Swift version [0-9.]+' | head -1), release build, SQLite store, shell executor
Conditions: shared machine, load average $load_before at the start and $(cut -d' ' -f1-3 /proc/loadavg) at the end; Buildbot $("$venv/bin/buildbot" --version | grep -oE 'Buildbot version: [0-9.]+' | cut -d' ' -f3) (SQLite, one local worker), wrk $(wrk -v 2>&1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1), $wrk_connections connections, ${wrk_seconds} s per run
EOF
say "report"
if $quick; then
  "$bin/rapidflow-bench" report --results "$results"
else
  "$bin/rapidflow-bench" report --results "$results" --write BENCHMARKS.md
  echo "(written to BENCHMARKS.md)"
fi
