#!/usr/bin/env bash
# Two maclr binaries' quickstart step side by side: they take turns ROUNDS times, ITERS timed
# steps each (`bench step --no-torch`; a binary with `bench step --rounds` times its default 3
# rounds of them), and each turn prints its fastest, 25th-percentile and
# median step. The shared machine drifts by tens of percent within minutes; alternating puts
# its slow spells on both. Build each revision and copy its .build/release/maclr aside first.
#   bash benchmarks/ab_step.sh 4 20 /tmp/maclr-before /tmp/maclr-after [recipe]
set -euo pipefail
rounds=$1; iters=$2; a=$3; b=$4; shift 4
for _ in $(seq "$rounds"); do
  for bin in "$a" "$b"; do
    env -u OPENBLAS_CORETYPE "$bin" bench step --no-torch --iterations "$iters" "$@" 2>&1 >/dev/null \
      | tr '\r' '\n' | grep -oE "step [0-9]+/[0-9]+: [0-9.]+ ms" | awk '{print $3}' | sort -n \
      | awk -v n="$bin" '{t[NR]=$1} END {printf "%s  min %.1f  p25 %.1f  median %.1f ms\n", n, t[1], t[int(NR/4)+1], t[int(NR/2)+1]}'
  done
done
