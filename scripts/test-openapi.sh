#!/usr/bin/env bash
# Checks the running service against its own OpenAPI document (GET /openapi.json) with
# schemathesis: no 5xx, only documented status codes, documented content types and headers,
# and bodies that match the documented schemas. Needs `swift build` first (uses
# .build/debug/rapidflow); finishes in about a minute and a half. Exits non-zero on any failure.
#
# Real ids: the server is fresh, so the seeded pipeline is 1 (and a second, 2, is the one
# the document's DELETE example removes), the seeded finished job is 1 and its first step
# is 1. The document's path examples use those ids, so the examples phase reaches the real
# 200 answers; the stateful phase follows the document's links from the ids that creates
# answer, and the other phases add invalid and unknown ids.
#
# Safety: schemathesis POSTs generated pipelines and image jobs and triggers them, and a
# pipeline step is bash on this host. So that this stays harmless:
# - when run as root the server runs as `nobody` (setpriv): its steps can write only its
#   temporary data directory and world-writable directories, and cannot reach the Docker
#   socket, so image jobs end at their first docker step;
# - `--executor shell` (no containers), `--max-concurrent-jobs 1`, `--job-timeout-seconds 10`
#   and `--kill-grace-seconds 1`: one step at a time, none for longer than 10 s;
# - the document's config examples are `echo` steps, and a generated string is almost never
#   a valid pipeline (a YAML mapping with a non-empty `steps` list), so what runs is the
#   examples' echo; clones go to the examples' example.com URLs or generated ones, never to a
#   repository on this host (no --allow-local-repos: generated paths and file:// URLs are 400s);
# - webhooks it registers may only send to 127.0.0.1 (--webhook-allow-hosts): a generated URL
#   elsewhere is a 400, so no delivery leaves this machine;
# - everything listens on 127.0.0.1 and the data directory is removed at the end.
# Triggering is not excluded: it is part of the API the document describes.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=.build/debug/rapidflow
[ -x "$binary" ] || { echo "test-openapi: $binary is missing; run 'swift build' first" >&2; exit 1; }

venv=/tmp/rapidflow-test-services/venv
if [ ! -x "$venv/bin/schemathesis" ]; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  # Only the schemathesis pin: this script needs nothing else from the file.
  "$venv/bin/pip" install -q "$(grep -i '^schemathesis==' scripts/requirements-test.txt)"
fi

work=$(mktemp -d)
data="$work/data"
mkdir -p "$data"
run_as=()
if [ "$(id -u)" = 0 ]; then
  chmod 711 "$work"
  chown nobody "$data"
  run_as=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups --reset-env)
fi

server_pid=
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid"
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$server_pid" 2>/dev/null && kill -9 "$server_pid"
  fi
  rm -rf "$work"
}
trap stop_server EXIT

: >"$work/server.log"
"${run_as[@]}" "$PWD/$binary" serve --host 127.0.0.1 --port 0 --data-dir "$data" --executor shell \
  --max-concurrent-jobs 1 --job-timeout-seconds 10 --kill-grace-seconds 1 --log-level warning --webhook-allow-hosts 127.0.0.1 \
  >"$work/server.log" 2>&1 &
server_pid=$!

base=
for _ in $(seq 1 100); do
  base=$(grep -o -m1 'http://127\.0\.0\.1:[0-9]*' "$work/server.log" || true)
  [ -n "$base" ] && curl -sf -o /dev/null "$base/health" && break
  kill -0 "$server_pid" 2>/dev/null || break
  base=
  sleep 0.1
done
if [ -z "$base" ]; then
  echo "test-openapi: the server did not start:" >&2
  cat "$work/server.log" >&2
  exit 1
fi

if ! curl -sf "$base/openapi.json" | cmp -s - Sources/RapidFlowServer/Resources/openapi.json; then
  echo "test-openapi: $binary serves another openapi.json than the repository's; run 'swift build'" >&2
  exit 1
fi

# Seeds what the document's examples point at; each answer must carry the expected id.
expect_id() { # <expected> <jq path> <curl args...>
  local expected=$1 path=$2; shift 2
  local got
  got=$(curl -sf "$@" | jq -r "$path")
  [ "$got" = "$expected" ] || { echo "test-openapi: seeding expected id $expected, got '$got' from $*" >&2; exit 1; }
}
pipeline='{"name": "seeded", "config": "steps:\n  - echo seeded build\n  - type: bash\n    content: echo seeded test\n    phase: test\n"}'
expect_id 1 .data.id -X POST "$base/pipelines" -d "$pipeline"
expect_id 2 .data.id -X POST "$base/pipelines" -d '{"name": "disposable", "config": "steps:\n  - echo disposable\n"}'
expect_id 1 .data.id -X POST "$base/pipelines/1/jobs"
for _ in $(seq 1 100); do
  status=$(curl -sf "$base/jobs/1" | jq -r .data.status)
  [ "$status" = success ] && break
  sleep 0.1
done
[ "$status" = success ] || { echo "test-openapi: seeded job 1 ended '$status'" >&2; exit 1; }
expect_id 1 '.data.logs[0].step_id' "$base/jobs/1/logs"

# One worker: with more, schemathesis 4.32.5 on Python 3.11 sometimes fails a case with
# "AST constructor recursion depth mismatch" (its generator is not thread-safe there).
command=("$venv/bin/schemathesis" run "$base/openapi.json"
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
  --phases examples,coverage,fuzzing,stateful --max-examples 15 --seed 4711 --workers 1
  --request-timeout 30 --generation-database none --no-color)
echo "test-openapi: ${command[*]}"
result=0
(cd "$work" && timeout 170 "${command[@]}") || result=$?

if [ "$result" -ne 0 ]; then
  echo "test-openapi: FAILED (schemathesis exit $result); server log:" >&2
  tail -n 40 "$work/server.log" >&2
  exit 1
fi
echo "test-openapi: the server conforms to its OpenAPI document"
