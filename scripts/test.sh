#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs every test target.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build --build-tests
swift test 2>&1 | tee /tmp/maclr-test.log
