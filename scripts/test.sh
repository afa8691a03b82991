#!/usr/bin/env bash
# Installs what the tests need, builds everything and runs every test.
# Safe to run again: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Docker engine, base image, registry, sshd and PostgreSQL on loopback (see the script).
eval "$(scripts/test-services.sh)"

swift build --build-tests
if [ $# -eq 0 ]; then
  swift test --skip-build
else
  swift test --skip-build "$@"
fi

# With a filter the caller wants only some Swift tests; the whole run adds the HTTP contract
# (schemathesis against /openapi.json) and the dashboard in headless Chromium.
if [ $# -eq 0 ]; then
  scripts/test-openapi.sh
  scripts/test-dashboard.sh
fi
