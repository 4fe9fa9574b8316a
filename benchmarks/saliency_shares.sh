#!/usr/bin/env bash
# The share of a visual encoder's saliency map (`maclr saliency`) that lies on moving pixels
# (where the clip's motion boundaries are above their mean), per test video and on average, for
# each SOURCE: "LABEL:ARGS", ARGS being what names the encoder to `maclr saliency`
# (--checkpoint RUN, or --recipe R --set ... for a random init). Pictures go to
# OUT/pictures/LABEL/VIDEO/; the per-video shares are appended to OUT/shares.txt.
#   bash benchmarks/saliency_shares.sh OUT DATASET VIDEOS LAYER SOURCE...
#        VIDEOS: how many test videos (the manifest's first; with SPREAD=1 evenly spaced over the
#        test split, so every class is drawn); LAYER: a conv's name, or last
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1; ds=$2; videos=$3; layer=$4; shift 4
maclr=${MACLR:-.build/release/maclr}
layer_option=(); [ "$layer" = last ] || layer_option=(--layer "$layer")
mkdir -p "$out"
names=$(python3 -c "
import json, sys
test, n = json.load(open(sys.argv[1]))['splits']['test'], int(sys.argv[2])
print('\n'.join([test[i * len(test) // n] for i in range(n)] if sys.argv[3] == '1' else test[:n]))" "$ds/manifest.json" "$videos" "${SPREAD:-0}")
for source in "$@"; do
  label=${source%%:*}; read -r -a args <<< "${source#*:}"
  shares=()
  while read -r name; do
    line=$($maclr saliency "${args[@]}" --dataset "$ds" "${layer_option[@]}" --video "$name" --output "$out/pictures/${label// /-}/${name//\//-}" 2>/dev/null)
    shares+=("$(echo "$line" | sed -E 's/.*; ([0-9]+) % of.*\(([0-9]+) % of the pixels.*/\1:\2/')")
  done <<< "$names"
  echo "$label ($layer): ${shares[*]}" >> "$out/shares.txt"
  python3 -c "
import sys
pairs = [tuple(map(float, x.split(':'))) for x in sys.argv[2:]]
mass = [m for m, _ in pairs]; area = sum(a for _, a in pairs) / len(pairs)
print(f'{sys.argv[1]}: {sum(mass)/len(mass):.1f} % of the saliency on moving pixels (min {min(mass):.0f}, max {max(mass):.0f}; '
      f'they are {area:.1f} % of the pixels; {len(mass)} test videos)')" "$label" "${shares[@]}"
done
