#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs every test target (XCTest), and ends
# with one summary line "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build --build-tests
log=$(mktemp)
status=0
swift test --disable-swift-testing 2>&1 | tee "$log" || status=$?
summary=$(grep -E "Suite 'All tests' (passed|failed)" -A1 "$log" | grep -oE "Executed [0-9]+ tests?, with [0-9]+ failures?" | tail -1 || true)
if [ -n "$summary" ]; then
  total=$(echo "$summary" | grep -oE "Executed [0-9]+" | grep -oE "[0-9]+")
  failed=$(echo "$summary" | grep -oE "with [0-9]+" | grep -oE "[0-9]+")
  echo "$((total - failed)) passed, $failed failed"
fi
rm -f "$log"
exit $status
