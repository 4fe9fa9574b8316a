#!/usr/bin/env bash
# Peak memory of `maclr prepare` against a video's length: a 10-s and a 10-min synthetic video
# (240 x 240, 25 frames/s), each prepared alone at 112 x 112 with TV-L1 flow by each build given,
# one after the other: wall time and peak RSS.
#   bash benchmarks/prepare_long.sh OUT BUILD [BUILD ...]
# e.g. bash benchmarks/prepare_long.sh /tmp/long .build/release/maclr /tmp/maclr-before
# OUT keeps the videos between runs; NO_FLOW=1 prepares without flow; LONG_FRAMES sets the long
# video's length (default 15000 = 10 min).
set -euo pipefail
out=$1; shift
long=${LONG_FRAMES:-15000}
flow=(); [ -n "${NO_FLOW:-}" ] && flow=(--no-flow)
[ -x /usr/bin/time ] || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq time >/dev/null || sudo apt-get install -y -qq time >/dev/null; }
maclr=$1
mkdir -p "$out"
for frames in 250 "$long"; do
    if [ ! -f "$out/v$frames/labels.csv" ]; then
        "$maclr" synth "$out/v$frames" --classes 2 --per-class 1 --test-fraction 0 --frames "$frames" --size 240 --fps 25 --seed 0 >/dev/null
    fi
    head -n 1 "$out/v$frames/labels.csv" | grep -q '^path' && sed -n 2p "$out/v$frames/labels.csv" > "$out/one-$frames.csv" \
        || head -n 1 "$out/v$frames/labels.csv" > "$out/one-$frames.csv"
done
for build in "$@"; do
    echo "$build:"
    for frames in 250 "$long"; do
        rm -rf "$out/ds"
        /usr/bin/time -f "  $frames frames ($((frames / 25)) s): wall %e s, peak RSS %M KB" env -u OPENBLAS_CORETYPE "$build" prepare \
            "$out/one-$frames.csv" "$out/ds" --size 112x112 --flow-bound 4 "${flow[@]}" 2>&1 | grep -a "peak RSS"
    done
done
rm -rf "$out/ds"
