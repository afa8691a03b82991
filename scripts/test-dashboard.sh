#!/usr/bin/env bash
# Drives the web dashboard in headless Chromium against real services: the job list updating
# live, paging, filters and search; a running job's log line by line, reconnects without
# duplicates, cancel and retry from the page; phase cards by outcome; a 100,000-line log (timed
# in the browser), line links and search; ANSI colours, `\r` and the raw downloads; pipelines
# created, edited and run with a branch and env; the image job form; "not found"; the token
# prompt; a read-only token offered no action; and the Secrets page (set, listed without its
# value, refused, deleted).
#
# Needs `swift build` first (uses .build/debug/rapidflow; does not build). Installs Debian's
# chromium and chromium-driver when missing, and the venv from scripts/requirements-test.txt
# when selenium is missing. Starts two services on free 127.0.0.1 ports (one without a token,
# one with) with temporary data directories and `--executor shell`. Saves screenshots of a job
# page and of the log viewer to $RAPIDFLOW_ARTIFACTS (default /tmp/rapidflow-test-services)/
# dashboard-job.png and dashboard-log.png. Finishes in about two minutes, at most three and a
# half; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=.build/debug/rapidflow
[ -x "$binary" ] || { echo "test-dashboard: $binary is missing; run 'swift build' first" >&2; exit 1; }

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver >/dev/null
fi

venv=/tmp/rapidflow-test-services/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import selenium' 2>/dev/null || "$venv/bin/pip" install -q -r scripts/requirements-test.txt

artifacts=${RAPIDFLOW_ARTIFACTS:-/tmp/rapidflow-test-services}
mkdir -p "$artifacts"
work=$(mktemp -d)
token="dash-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

pids=()
browser_group=
cleanup() {
  if [ -n "$browser_group" ] && kill -0 "$browser_group" 2>/dev/null; then kill -- "-$browser_group" 2>/dev/null || true; fi
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || continue
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  done
  rm -rf "$work"
}
trap cleanup EXIT

# start_service <name> [flags...]: starts a service on a free port and sets service_url.
start_service() {
  local name=$1; shift
  mkdir -p "$work/$name"
  "$PWD/$binary" serve --host 127.0.0.1 --port 0 --data-dir "$work/$name" --executor shell --allow-local-repos \
    --kill-grace-seconds 2 --log-level warning "$@" >"$work/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  service_url=
  for _ in $(seq 1 100); do
    service_url=$(grep -o -m1 'http://127\.0\.0\.1:[0-9]*' "$work/$name.log" || true)
    [ -n "$service_url" ] && curl -sf -o /dev/null "$service_url/health" && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "test-dashboard: the $name service did not start:" >&2
  cat "$work/$name.log" >&2
  return 1
}

start_service open
open_url=$service_url
start_service guarded --api-token "$token"
token_url=$service_url

result=0
# timeout leads its own process group (it kills the group when time is up); the cleanup kills
# that group too, in case the test dies before it quits Chromium.
RAPIDFLOW_URL=$open_url RAPIDFLOW_TOKEN_URL=$token_url RAPIDFLOW_TEST_TOKEN=$token RAPIDFLOW_ARTIFACTS=$artifacts \
  timeout 170 "$venv/bin/python" Tests/browser/test_dashboard.py &
browser_group=$!
wait "$browser_group" || result=$?

if [ "$result" -ne 0 ]; then
  echo "test-dashboard: FAILED (exit $result); service logs:" >&2
  tail -n 20 "$work/open.log" "$work/guarded.log" >&2
  exit 1
fi
echo "test-dashboard: the dashboard works against a real service"
