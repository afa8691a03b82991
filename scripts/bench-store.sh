#!/usr/bin/env bash
# Store reads through the API beside a static route, in one run: `GET /health` (no store),
# `GET /jobs/:id/status` of a random job and `GET /jobs?limit=50`, with N stored jobs, on
# the release build; prints each figure, its ratio to /health (medians over the rounds).
#   scripts/bench-store.sh [--jobs 100000] [--rounds 3] [--seconds 5] [--binary DIR]
# --binary: a folder with another build's rapidflow and rapidflow-bench (a side-by-side run).
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=100000 rounds=3 seconds=5 bin=
while [ $# -gt 0 ]; do
  case $1 in
    --jobs) jobs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --binary) bin=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
. scripts/bench-common.sh
release_binaries
command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null

work=$(mktemp -d /tmp/rapidflow-bench-store.XXXXXX)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

echo "seeding $jobs jobs"
"$bin/rapidflow-bench" seed --data-dir "$work/data" --jobs "$jobs"
port=$(free_port)
"$bin/rapidflow" serve --host 127.0.0.1 --port "$port" --data-dir "$work/data" --executor shell --log-level error > "$work/service.log" 2>&1 &
server=$!
wait_for_health "$port"
base=http://127.0.0.1:$port
echo "request = function() return wrk.format(nil, \"/jobs/\" .. math.random(1, $jobs) .. \"/status\") end" > "$work/status.lua"

rps() { # NAME URL [wrk flags…]: one wrk run's requests per second, appended to NAME's file
  local name=$1 url=$2 text; shift 2
  text=$(wrk -t 2 -c 32 -d "${seconds}s" "$@" "$url")
  if grep -q "Non-2xx" <<< "$text"; then echo "$text" >&2; exit 1; fi
  awk '/^Requests\/sec:/ { print $2 }' <<< "$text" >> "$work/$name"
}
wrk -t 2 -c 32 -d 1s "$base/jobs?limit=50" >/dev/null
wrk -t 2 -c 32 -d 1s -s "$work/status.lua" "$base" >/dev/null
for round in $(seq 1 "$rounds"); do
  rps health "$base/health"
  rps status "$base" -s "$work/status.lua"
  rps list "$base/jobs?limit=50"
  echo "round $round: /health $(tail -1 "$work/health"), status $(tail -1 "$work/status"), list $(tail -1 "$work/list") req/s"
done
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
health=$(median "$work/health") status=$(median "$work/status") list=$(median "$work/list")
echo
echo "medians of $rounds rounds, $jobs jobs stored, wrk 2 threads 32 connections ${seconds} s each (load $(cut -d' ' -f1-3 /proc/loadavg)):"
printf '  GET /health             %8.0f req/s\n' "$health"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '  GET /jobs/:id/status    %8.0f req/s  %sx /health\n' "$status" "$(ratio "$status" "$health")"
printf '  GET /jobs?limit=50      %8.0f req/s  %sx /health\n' "$list" "$(ratio "$list" "$health")"
