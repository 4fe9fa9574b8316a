#!/usr/bin/env bash
# Two maclr binaries side by side: they take turns ROUNDS times, ITERS timed steps each, and each
# turn prints its fastest, 25th-percentile and median step. KIND is `step` (the quickstart's
# MaCLR step, `bench step --no-torch`; a binary with `bench step --rounds` times its default 3
# rounds of them) or `engine` (R(2+1)D-18's training step, `bench engine --no-torch`; pass
# `--arch r3d_18` or `--two-pathways` after the binaries). The shared machine drifts by tens of
# percent within minutes; alternating puts its slow spells on both. Build each revision and copy
# its .build/release/maclr aside first.
#   bash benchmarks/ab.sh step 4 20 /tmp/maclr-before /tmp/maclr-after [recipe]
#   bash benchmarks/ab.sh engine 3 6 /tmp/maclr-before /tmp/maclr-after [--arch r3d_18]
set -euo pipefail
kind=$1; rounds=$2; iters=$3; a=$4; b=$5; shift 5
case "$kind" in step|engine) ;; *) echo "ab.sh: KIND must be step or engine, got '$kind'" >&2; exit 64 ;; esac
for _ in $(seq "$rounds"); do
  for bin in "$a" "$b"; do
    env -u OPENBLAS_CORETYPE "$bin" bench "$kind" --no-torch --iterations "$iters" "$@" 2>&1 >/dev/null \
      | tr '\r' '\n' | grep -oE "step [0-9]+/[0-9]+: [0-9.]+ ms" | awk '{print $3}' | sort -n \
      | awk -v n="$bin" '{t[NR]=$1} END {printf "%s  min %.1f  p25 %.1f  median %.1f ms\n", n, t[1], t[int(NR/4)+1], t[int(NR/2)+1]}'
  done
done
