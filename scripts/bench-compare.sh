#!/usr/bin/env bash
# The release service of an earlier commit beside the current one, in one run on one machine:
# per-job overhead (200 jobs of one `true` step, submit → final status) and capture throughput
# (a step printing 1 GiB), each beside its baseline by hand, the two builds alternating.
#   scripts/bench-compare.sh OLD_REV [REPS]     (REPS: default 3)
# Both are built in .build-release (the earlier one from a temporary worktree); the figures
# are printed, not written: copy them to BENCHMARKS.md with the date and the commits.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
old_rev=${1:?usage: scripts/bench-compare.sh OLD_REV [REPS]}
reps=${2:-3}
jobs=200 size=1G

work=$(mktemp -d /tmp/rapidflow-compare.XXXXXX)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  git -C "$repo" worktree remove --force "$work/old-tree" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The earlier build is kept by commit, so a second comparison builds only the working tree.
cache=/tmp/rapidflow-compare-cache
mkdir -p "$cache"
old_sha=$(git -C "$repo" rev-parse "$old_rev")
if [ ! -x "$cache/rapidflow-$old_sha" ]; then
  echo "== building $old_rev (release, .build-release)"
  git -C "$repo" worktree add --detach "$work/old-tree" "$old_rev" >/dev/null 2>&1
  (cd "$work/old-tree" && swift build -c release --product rapidflow --scratch-path "$repo/.build-release" 2>&1 | grep -E "error|Build" || true)
  cp "$repo/.build-release/release/rapidflow" "$cache/rapidflow-$old_sha"
fi
cp "$cache/rapidflow-$old_sha" "$work/rapidflow-old"
echo "== building the working tree (release, .build-release)"
swift build -c release --product rapidflow --scratch-path .build-release 2>&1 | grep -E "error|Build" || true
swift build -c release --product rapidflow-bench --scratch-path .build-release 2>&1 | grep -E "error|Build" || true
cp .build-release/release/rapidflow "$work/rapidflow-new"
bench=$repo/.build-release/release/rapidflow-bench
old_commit=$(git -C "$repo" rev-parse --short "$old_rev")
new_commit="$(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- Sources Package.swift || echo '+changes')"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# start BINARY DATA_DIR: sets $port and $server.
start() {
  port=$(free_port)
  "$1" serve --host 127.0.0.1 --port "$port" --data-dir "$2" --executor shell --log-level error >"$2.log" 2>&1 &
  server=$!
  pids+=("$server")
  local i
  for i in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && return 0; sleep 0.1; done
  echo "the service did not start; see $2.log" >&2
  exit 1
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# shell_steps: the step by hand, each run's ms.
. "$repo/scripts/bench-common.sh"

# capture BINARY: seconds the service's step took to print $size (its stored duration).
capture() {
  start "$1" "$work/capture-$RANDOM"
  local base="http://127.0.0.1:$port" pipeline job status
  pipeline=$(curl -sf -X POST "$base/pipelines" -d "{\"name\": \"flood\", \"config\": \"steps:\\n  - yes 2>/dev/null | head -c $size\\n\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["id"])')
  job=$(curl -sf -X POST "$base/pipelines/$pipeline/jobs" | python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["id"])')
  for _ in $(seq 1 1200); do
    status=$(curl -sf "$base/jobs/$job/status")
    if python3 -c 'import json, sys; sys.exit(0 if json.loads(sys.argv[1])["data"]["status"] in ("success", "failed", "cancelled") else 1)' "$status"; then
      break
    fi
    sleep 0.1
  done
  python3 -c 'import json, sys; print(json.loads(sys.argv[1])["data"]["steps"][0]["duration_seconds"])' "$status"
  stop "$server"
}

for rep in $(seq 1 "$reps"); do
  echo "== run $rep of $reps"
  shell_steps | median >>"$work/overhead-shell.txt"
  for build in old new; do
    start "$work/rapidflow-$build" "$work/overhead-$build-$rep"
    "$bench" jobs --url "http://127.0.0.1:$port" --jobs "$jobs" --warmup 20 --out "$work/samples-$build-$rep.txt" >/dev/null
    median <"$work/samples-$build-$rep.txt" >>"$work/overhead-$build.txt"
    stop "$server"
  done
  t0=$EPOCHREALTIME
  # `yes` ends by SIGPIPE when head has enough, which is no failure here.
  { yes 2>/dev/null || true; } | head -c "$size" >"$work/baseline.out"
  echo "$t0 $EPOCHREALTIME" | awk '{ printf "%.3f\n", $2 - $1 }' >>"$work/capture-shell.txt"
  rm -f "$work/baseline.out"
  for build in old new; do capture "$work/rapidflow-$build" >>"$work/capture-$build.txt"; done
done

m() { median <"$work/$1.txt"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'; }
range() { sort -g "$work/$1.txt" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s–%s", lo, hi }'; }
shell=$(m overhead-shell) cshell=$(m capture-shell)
echo
echo "Side by side on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(date -u +%F), median of $reps runs (range)"
echo "| Scenario | Baseline by hand | $old_commit (before) | $new_commit (now) | now / before |"
echo "| --- | --- | --- | --- | --- |"
printf '| Per-job time, %s jobs of one `true` step, submit → final status | %s ms | %s ms (%s) | %s ms (%s) | %.2f |\n' \
  "$jobs" "$shell" "$(m overhead-old)" "$(range overhead-old)" "$(m overhead-new)" "$(range overhead-new)" \
  "$(ratio "$(m overhead-new)" "$(m overhead-old)")"
printf '| Capture, a step printing %sB (`yes | head -c %s`) | %s s | %s s (%s), ratio %.2f | %s s (%s), ratio %.2f | %.2f |\n' \
  "$size" "$size" "$cshell" "$(m capture-old)" "$(range capture-old)" "$(ratio "$(m capture-old)" "$cshell")" \
  "$(m capture-new)" "$(range capture-new)" "$(ratio "$(m capture-new)" "$cshell")" \
  "$(ratio "$(m capture-new)" "$(m capture-old)")"
