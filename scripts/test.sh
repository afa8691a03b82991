#!/usr/bin/env bash
# Installs what the tests need, builds everything and runs every test.
# Safe to run again: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Docker engine, base image, registry, sshd and PostgreSQL on loopback (see the script).
eval "$(scripts/test-services.sh)"

swift build --build-tests
# At most 40 tests at once. Unbounded, Swift Testing starts all ~330 together: ~250 services
# then hold over 2,000 descriptors in the test process, and past about 1,360 Foundation's
# Process.run() (which the service uses to start runners and archivers) reads past the end of
# its /proc/self/fd listing and crashes; the machine's two cores are shared no better by more.
width=(--experimental-maximum-parallelization-width 40)
if [ $# -eq 0 ]; then
  swift test --skip-build "${width[@]}"
else
  swift test --skip-build "${width[@]}" "$@"
fi

# With a filter the caller wants only some Swift tests; the whole run adds the HTTP contract
# (schemathesis against /openapi.json) and the dashboard in headless Chromium.
if [ $# -eq 0 ]; then
  scripts/test-openapi.sh
  scripts/test-dashboard.sh
fi
