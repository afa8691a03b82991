#!/usr/bin/env bash
# Jobs claimed and finished per second: one replica on SQLite (the baseline), one on
# PostgreSQL, two on PostgreSQL, in one run, on loopback. Writes the table in BENCHMARKS.md.
#   scripts/bench-replicas.sh [--quick]   (full: 3 repetitions of 400 jobs per setup, a few minutes)
# Each job is one `true` step. Jobs are submitted by 8 concurrent clients (split over the
# replicas); the figure is jobs / (last finished_at − first created_at), read from the store.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

jobs=400 reps=3 concurrency=8
if [ "${1:-}" = --quick ]; then jobs=100 reps=1; fi

eval "$(scripts/test-services.sh)"   # PostgreSQL on 127.0.0.1:5433 (and the rest, unused here)
command -v jq >/dev/null || { apt-get install -y -q jq >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q jq >/dev/null; }; }

echo "== release build" >&2
swift build -c release --scratch-path .build-release --product rapidflow 2>&1 | grep -E "error|Build" >&2 || true
bin=$repo/.build-release/release/rapidflow
[ -x "$bin" ] || { echo "release build failed" >&2; exit 1; }

work=$(mktemp -d /tmp/rapidflow-bench-replicas.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

admin_url=$RAPIDFLOW_TEST_POSTGRES_URL
pg_password=$(sed -E 's|^postgres://[^:]+:([^@]+)@.*|\1|' <<<"$admin_url")
psql_admin() { PGPASSWORD=$pg_password psql -q -h 127.0.0.1 -p 5433 -U rapidflow -d postgres -v ON_ERROR_STOP=1 "$@" >/dev/null; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_replica NAME DATABASE_URL [FLAG…] → appends its base URL to urls
start_replica() {
  local name=$1 database=$2 port
  shift 2
  port=$(free_port)
  mkdir -p "$work/$name"
  RAPIDFLOW_DATABASE=$database "$bin" serve --host 127.0.0.1 --port "$port" --data-dir "$work/$name" --executor shell --allow-local-repos \
    --max-concurrent-jobs 4 --log-level error "$@" > "$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/ready" >/dev/null || { echo "replica $name did not start: $(cat "$work/$name.log")" >&2; exit 1; }
  urls+=("http://127.0.0.1:$port")
}

# run_once URL... → prints jobs per second
run_once() {
  local urls=("$@") first=$1 n=${#urls[@]} pipeline
  pipeline=$(curl -sf -X POST "$first/pipelines" -d '{"name": "bench", "config": "steps:\n  - \"true\"\n"}' | jq -r .data.id)
  # One list of request URLs, spread over the replicas in turn.
  for i in $(seq 0 $((jobs - 1))); do echo "${urls[$((i % n))]}/pipelines/$pipeline/jobs"; done > "$work/requests"
  xargs -P "$concurrency" -n 1 curl -sf -o /dev/null -X POST < "$work/requests"
  local deadline=$((SECONDS + 120))
  while :; do
    local open
    open=$(( $(curl -sf "$first/jobs?status=pending&limit=500" | jq '.data | length') + $(curl -sf "$first/jobs?status=running&limit=500" | jq '.data | length') ))
    [ "$open" -eq 0 ] && break
    [ $SECONDS -lt $deadline ] || { echo "jobs did not finish" >&2; exit 1; }
    sleep 0.05
  done
  curl -sf "$first/jobs?pipeline_id=$pipeline&limit=500" | python3 -c '
import json, sys, datetime
jobs = json.load(sys.stdin)["data"]
assert all(j["status"] == "success" for j in jobs), [j["status"] for j in jobs if j["status"] != "success"][:5]
t = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
span = max(t(j["finished_at"]) for j in jobs) - min(t(j["created_at"]) for j in jobs)
print(f"{len(jobs) / span:.1f}")'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
range() { sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s–%s", lo, hi }'; }

# scenario NAME REPLICAS sqlite|postgres [FLAG…] → the runs' figures in $work/NAME.figures
scenario() {
  local name=$1 replicas=$2 kind=$3 rep urls db
  shift 3
  : > "$work/$name.figures"
  for rep in $(seq 0 "$reps"); do   # rep 0 is the warm-up
    urls=()
    if [ "$kind" = sqlite ]; then
      start_replica "$name-$rep-a" "" "$@"
    else
      db=bench_replicas_$$_${name//-/_}_$rep
      psql_admin -c "CREATE DATABASE $db"
      local url=${admin_url%/postgres*}/$db?sslmode=disable
      for r in $(seq 1 "$replicas"); do start_replica "$name-$rep-$r" "$url" "$@"; done
    fi
    figure=$(run_once "${urls[@]}")
    [ "$rep" -gt 0 ] && echo "$figure" >> "$work/$name.figures"
    echo "   $name run $rep: $figure jobs/s" >&2
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
    [ "$kind" = sqlite ] || psql_admin -c "DROP DATABASE $db WITH (FORCE)"
  done
}

began=$(date +%s)
# The test PostgreSQL runs with fsync off: the baseline is SQLite without its flush before each
# answer (--relaxed-durability); SQLite as it runs by default is the row after it.
scenario sqlite-1 1 sqlite --relaxed-durability
scenario sqlite-1-durable 1 sqlite
scenario postgres-1 1 postgres
scenario postgres-2 2 postgres

base=$(median < "$work/sqlite-1.figures")
row() { # label name
  local m r
  m=$(median < "$work/$2.figures"); r=$(range < "$work/$2.figures")
  printf '| %s | %s (%s) jobs/s | %s |\n' "$1" "$m" "$r" "$(awk -v a="$m" -v b="$base" 'BEGIN { printf "%.2f", a / b }')"
}
table=$(cat <<TABLE
- Command: \`scripts/bench-replicas.sh\` ($(( $(date +%s) - began )) s), $(date +%Y-%m-%d); $jobs jobs of one \`true\` step per run, $concurrency submitting clients, \`--max-concurrent-jobs 4\` per replica, median of $reps runs after a warm-up (range in parentheses)
- Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%d GiB", $2 / 1048576 }' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"), release build, PostgreSQL $(PGPASSWORD=$pg_password psql -tA -h 127.0.0.1 -p 5433 -U rapidflow -d postgres -c 'SHOW server_version') on loopback (fsync off)

| Setup | Jobs claimed and finished per second | Ratio to one replica on SQLite |
| --- | --- | --- |
$(row "One replica, SQLite, \`--relaxed-durability\` (baseline)" sqlite-1)
$(row "One replica, SQLite, flushed before each answer (the default)" sqlite-1-durable)
$(row "One replica, PostgreSQL" postgres-1)
$(row "Two replicas, one PostgreSQL" postgres-2)
TABLE
)
echo "$table"
if [ "${1:-}" != --quick ]; then
  python3 - "$table" <<'PY'
import re, sys
path = "BENCHMARKS.md"
text = open(path).read()
begin, end = "<!-- scripts/bench-replicas.sh: table begin -->", "<!-- scripts/bench-replicas.sh: table end -->"
block = f"{begin}\n{sys.argv[1]}\n\n{end}"
text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S) if begin in text else text.rstrip() + "\n\n" + block + "\n"
open(path, "w").write(text)
PY
  echo "BENCHMARKS.md updated" >&2
fi
