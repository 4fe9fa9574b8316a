#!/bin/bash
# The fuzzed-input suite at a larger size: CASES mutations per input kind (safetensors, recipe,
# manifest, shard with and without checksums, video), each through the CLI under a timeout.
#   bash scripts/fuzz.sh [CASES]        # default 2000; the test suite runs 150
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
MACLR_FUZZ_CASES="${1:-2000}" swift test --skip-build --filter FuzzTests 2>&1 | grep -E "^fuzz |error|passed|failed"
