#!/usr/bin/env bash
# Installs what the tests need, builds everything and runs every test.
# Safe to run again: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Docker engine, base image, registry and sshd on loopback (see the script).
eval "$(scripts/test-services.sh)"

swift build --build-tests
swift test --skip-build "$@"
