#!/usr/bin/env bash
# Two maclr binaries' R(2+1)D-18 (or other `bench engine` network) training step side by side:
# they take turns ROUNDS times, ITERS timed steps each (`bench engine --no-torch`), and each turn
# prints its fastest, 25th-percentile and median step. As in ab_step.sh, alternating puts the
# shared machine's slow spells on both. Build each revision and copy its .build/release/maclr
# aside first.
#   bash benchmarks/ab_engine.sh 3 5 /tmp/maclr-before /tmp/maclr-after [--arch r3d_18 ...]
set -euo pipefail
rounds=$1; iters=$2; a=$3; b=$4; shift 4
for _ in $(seq "$rounds"); do
  for bin in "$a" "$b"; do
    env -u OPENBLAS_CORETYPE "$bin" bench engine --no-torch --iterations "$iters" "$@" 2>&1 >/dev/null \
      | tr '\r' '\n' | grep -oE "train step [0-9]+/[0-9]+: [0-9.]+ ms" | awk '{print $4}' | sort -n \
      | awk -v n="$bin" '{t[NR]=$1} END {printf "%s  min %.1f  p25 %.1f  median %.1f ms\n", n, t[1], t[int(NR/4)+1], t[int(NR/2)+1]}'
  done
done
