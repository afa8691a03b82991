#!/usr/bin/env bash
# Image job benchmark: the service's wall time for clone → build → test → push, beside a
# shell script doing the same by hand, and the same job through `rapidflow runner`
# (`--executor runner`: the steps run in the job's runner process, its credentials sent over
# the runner's channel), all in the same invocation. Prints medians and the ratios.
#   scripts/bench-image-job.sh [runs]   (default 5; needs a release build of rapidflow)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
eval "$(scripts/test-services.sh)"

binary=.build-release/release/rapidflow
if [ ! -x "$binary" ]; then
  swift build -c release --product rapidflow --scratch-path .build-release >&2
fi

work=$(mktemp -d)
trap 'kill $server $runner_server 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/secrets" "$work/data" "$work/runner-data"
printf '{"username":"%s","password":"%s"}' "$RAPIDFLOW_TEST_REGISTRY_USER" "$RAPIDFLOW_TEST_REGISTRY_PASSWORD" > "$work/secrets/registry.json"
git init -q --bare --initial-branch=main "$work/repo.git"
git init -q "$work/src"
cat > "$work/src/Dockerfile" <<'DOCKERFILE'
FROM rapidflow-test/busybox
COPY . /app
RUN echo built > /built.txt
CMD ["sh", "-c", "cat /built.txt"]
DOCKERFILE
head -c 200000 /dev/urandom | base64 > "$work/src/data.txt"
git -C "$work/src" add . && git -C "$work/src" -c user.email=b@e -c user.name=b commit -qm bench
git -C "$work/src" push -q "$work/repo.git" HEAD:main

"$binary" serve --port 3917 --data-dir "$work/data" --secrets-dir "$work/secrets" --allow-local-repos --log-level error > "$work/server.log" 2>&1 &
server=$!
"$binary" serve --port 3918 --data-dir "$work/runner-data" --secrets-dir "$work/secrets" --allow-local-repos --log-level error \
  --executor runner > "$work/runner-server.log" 2>&1 &
runner_server=$!
for port in 3917 3918; do
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
done

registry=$RAPIDFLOW_TEST_REGISTRY
now() { date +%s.%N; }

by_hand() {
  local n=$1 t0 t1 t2 t3 dir="$work/hand-$1" config="$work/hand-config-$1"
  mkdir -p "$config"
  printf '{"auths":{"%s":{"auth":"%s"}}}' "$registry" "$(printf '%s:%s' "$RAPIDFLOW_TEST_REGISTRY_USER" "$RAPIDFLOW_TEST_REGISTRY_PASSWORD" | base64 -w0)" > "$config/config.json"
  t0=$(now)
  git init -q "$dir" && git -C "$dir" remote add origin "file://$work/repo.git"
  git -C "$dir" fetch -q --depth 1 origin main && git -C "$dir" checkout -q FETCH_HEAD
  t1=$(now)
  DOCKER_BUILDKIT=0 docker build -q --force-rm -t "bench-hand-$n:build" "$dir" >/dev/null
  t2=$(now)
  docker run --rm --entrypoint /bin/sh "bench-hand-$n:build" -c 'cat /built.txt' >/dev/null
  docker run --rm "bench-hand-$n:build" >/dev/null
  t3=$(now)
  echo "git=$(echo "$t1 - $t0" | bc) build=$(echo "$t2 - $t1" | bc) tests=$(echo "$t3 - $t2" | bc)" > "$work/hand-steps.txt"
  for tag in 1.0 latest; do
    docker tag "bench-hand-$n:build" "$registry/bench/hand:$tag"
    DOCKER_CONFIG=$config docker push -q "$registry/bench/hand:$tag" >/dev/null
  done
  docker rmi -f "bench-hand-$n:build" "$registry/bench/hand:1.0" "$registry/bench/hand:latest" >/dev/null
}

through_service() { # [port]: 3917 runs steps in the service, 3918 in a runner per job
  local id status port=${1:-3917}
  id=$(curl -sf -X POST "http://127.0.0.1:$port/jobs" -d "{\"owner\":\"bench\",\"repo_url\":\"file://$work/repo.git\",\"git_ref\":\"main\",
    \"image_tags\":[\"1.0\",\"latest\"],\"registry_url\":\"$registry/bench/service\",\"registry_credentials_path\":\"registry.json\",
    \"test_commands\":[\"cat /built.txt\"],\"test_entry_point\":true}" | sed -E 's/.*"job_id":"([0-9]+)".*/\1/')
  while :; do
    status=$(curl -sf "http://127.0.0.1:$port/jobs/$id" | sed -E 's/.*"status":"([a-z]+)".*/\1/')
    case $status in success) break ;; failed|cancelled) echo "job $id $status" >&2; exit 1 ;; esac
    sleep 0.02
  done
  curl -sf "http://127.0.0.1:$port/jobs/$id/status" | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(" ".join("%s=%.2f" % (s["type"], s["duration_seconds"]) for s in d["steps"]))' >> "$work/steps.txt"
  curl -sf -X POST "http://127.0.0.1:$port/jobs/$id/cleanup" >/dev/null
}

hand=() service=() runner=()
by_hand warmup; through_service; through_service 3918   # warm caches on every side
for i in $(seq 1 "$runs"); do
  start=$(now); by_hand "$i"; hand+=("$(echo "$(now) - $start" | bc)")
  start=$(now); through_service; service+=("$(echo "$(now) - $start" | bc)")
  start=$(now); through_service 3918; runner+=("$(echo "$(now) - $start" | bc)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
h=$(median "${hand[@]}"); s=$(median "${service[@]}"); r=$(median "${runner[@]}")
echo "Image job: clone, build, 2 tests (command + entry point), push 2 tags — median of $runs, alternating"
echo "  by hand (shell script)   ${h} s   runs: ${hand[*]}"
echo "  RapidFlow (POST /jobs)   ${s} s   runs: ${service[*]}"
echo "  ratio                    $(echo "scale=3; $s / $h" | bc)   (goal ≤ 1.10)"
echo "  through rapidflow runner ${r} s   runs: ${runner[*]}"
echo "  runner / local executor  $(echo "scale=3; $r / $s" | bc)   (goal ≤ 1.10)"
echo "  by-hand step times of the last run (s): $(cat "$work/hand-steps.txt")"
echo "  RapidFlow step durations of the last job (through the runner) (s): $(tail -1 "$work/steps.txt")"
