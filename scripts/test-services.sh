#!/usr/bin/env bash
# Installs and starts the real components the tests use, on loopback only:
# the Docker engine, a local base image, a registry with htpasswd auth, sshd and PostgreSQL;
# and installs Prometheus (the metrics test scrapes the service with it), systemd-analyze and
# zstd (pipeline caches are compressed with it; the cache tests craft archives with it), and
# sqlite3 and strace (the store tests read a backup and watch the service flush its writes), and
# nginx (a load balancer in front of two replicas).
# Prints the environment the tests read. Safe to run again.
set -euo pipefail

state=/tmp/rapidflow-test-services
mkdir -p "$state"

missing=()
for pair in docker.io:dockerd docker-registry:docker-registry busybox-static:busybox apache2-utils:htpasswd \
            openssh-server:sshd openssh-client:ssh git:git curl:curl prometheus:prometheus systemd:systemd-analyze zstd:zstd \
            sqlite3:sqlite3 strace:strace nginx-light:nginx; do
  package=${pair%%:*}; tool=${pair##*:}
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$package")
done
pg_bin=/usr/lib/postgresql/15/bin
[ -x "$pg_bin/postgres" ] || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing: ${missing[*]}" >&2
  # Installed without starting their services (nginx would listen on every address's port
  # 80): the tests start what they need, on loopback.
  made_policy=false
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=true
  fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  if $made_policy; then rm -f /usr/sbin/policy-rc.d; fi
fi

# The Docker engine.
if ! docker info >/dev/null 2>&1; then
  setsid dockerd >"$state/dockerd.log" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see $state/dockerd.log" >&2; exit 1; }
fi

# A base image, built locally since nothing can be pulled: static busybox on scratch.
if ! docker image inspect rapidflow-test/busybox >/dev/null 2>&1; then
  build=$(mktemp -d)
  cp "$(command -v busybox)" "$build/busybox"
  printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox","--install","-s","/bin"]\nENV PATH=/bin\nCMD ["sh"]\n' > "$build/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t rapidflow-test/busybox "$build" >&2
  rm -rf "$build"
fi

# A registry with htpasswd auth on 127.0.0.1:5055.
registry_user=rapidflow
registry_password=registry-test-pass-4711
if ! curl -sf -o /dev/null -u "$registry_user:$registry_password" http://127.0.0.1:5055/v2/; then
  mkdir -p "$state/registry"
  htpasswd -Bbn "$registry_user" "$registry_password" > "$state/htpasswd"
  cat > "$state/registry.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $state/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5055
auth:
  htpasswd:
    realm: rapidflow-test
    path: $state/htpasswd
YAML
  setsid docker-registry serve "$state/registry.yml" >"$state/registry.log" 2>&1 < /dev/null &
  for _ in $(seq 1 30); do curl -sf -o /dev/null -u "$registry_user:$registry_password" http://127.0.0.1:5055/v2/ && break; sleep 0.5; done
fi

# sshd on 127.0.0.1:2222 that accepts one generated key, for cloning over ssh.
if [ ! -f "$state/ssh/id_ed25519" ]; then
  mkdir -p "$state/ssh"
  ssh-keygen -q -t ed25519 -N '' -f "$state/ssh/id_ed25519"
  ssh-keygen -q -t ed25519 -N '' -f "$state/ssh/host_key"
  cp "$state/ssh/id_ed25519.pub" "$state/ssh/authorized_keys"
  ssh-keygen -q -t ed25519 -N '' -f "$state/ssh/other_key"
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/2222) 2>/dev/null; then
  mkdir -p /run/sshd
  cat > "$state/ssh/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port 2222
HostKey $state/ssh/host_key
AuthorizedKeysFile $state/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
StrictModes no
PidFile $state/ssh/sshd.pid
CONF
  /usr/sbin/sshd -f "$state/ssh/sshd_config" -E "$state/ssh/sshd.log"
fi

# PostgreSQL on 127.0.0.1:5433, run by the postgres user from its own data directory. The
# superuser `rapidflow` signs in with a password generated at initdb (scram-sha-256, so the
# store's password handling is exercised); the tests create and drop a database each.
# Durability is off: this server holds nothing worth keeping and the tests run faster.
pg_dir=$state/postgres
pg_password() { cat "$pg_dir/password"; }
if [ ! -f "$pg_dir/data/PG_VERSION" ] || [ ! -f "$pg_dir/password" ]; then
  rm -rf "$pg_dir"
  mkdir -p "$pg_dir"
  od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$pg_dir/password"
  chmod 700 "$pg_dir"; chmod 600 "$pg_dir/password"
  chown -R postgres:postgres "$pg_dir"
  runuser -u postgres -- "$pg_bin/initdb" -D "$pg_dir/data" -U rapidflow --pwfile="$pg_dir/password" \
    --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$pg_dir/initdb.log" 2>&1 \
    || { echo "initdb failed; see $pg_dir/initdb.log" >&2; exit 1; }
fi
if ! "$pg_bin/pg_isready" -q -h 127.0.0.1 -p 5433; then
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/postgres.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -c port=5433 -c unix_socket_directories=$pg_dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >&2 || { echo "PostgreSQL did not start; see $pg_dir/postgres.log" >&2; exit 1; }
  for _ in $(seq 1 30); do "$pg_bin/pg_isready" -q -h 127.0.0.1 -p 5433 && break; sleep 0.5; done
  "$pg_bin/pg_isready" -q -h 127.0.0.1 -p 5433 || { echo "PostgreSQL does not accept connections; see $pg_dir/postgres.log" >&2; exit 1; }
fi

# Python for the webhook receiver (it verifies deliveries with the standardwebhooks package
# from PyPI), in the venv the other Python test tools share.
venv=$state/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
"$venv/bin/python" -c 'import standardwebhooks' 2>/dev/null \
  || "$venv/bin/pip" install -q "$(grep -i '^standardwebhooks==' "$(dirname "$0")/requirements-test.txt")" >&2

cat <<ENV
export RAPIDFLOW_TEST_PYTHON=$venv/bin/python
export RAPIDFLOW_TEST_REGISTRY=127.0.0.1:5055
export RAPIDFLOW_TEST_REGISTRY_USER=$registry_user
export RAPIDFLOW_TEST_REGISTRY_PASSWORD=$registry_password
export RAPIDFLOW_TEST_SSH_KEY=$state/ssh/id_ed25519
export RAPIDFLOW_TEST_SSH_OTHER_KEY=$state/ssh/other_key
export RAPIDFLOW_TEST_SSH_PORT=2222
export RAPIDFLOW_TEST_POSTGRES_URL=postgres://rapidflow:$(pg_password)@127.0.0.1:5433/postgres?sslmode=disable
ENV
