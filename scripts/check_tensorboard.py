#!/usr/bin/env python3
"""Reads a run folder's TensorBoard events with TensorBoard's own reader and checks them against
the run's metrics.jsonl: every logged step and every scalar (loss terms, lr, clips_per_s) must be
there with the same value (to float32 precision). Exits non-zero naming the first difference.

Usage: /opt/torchref/bin/python scripts/check_tensorboard.py RUN_FOLDER
       (needs the `tensorboard` package: pip install tensorboard)
"""
import json
import math
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    run = sys.argv[1]
    events = EventAccumulator(run, size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    if not tags:
        sys.exit(f"{run}: no TensorBoard scalars found")
    scalars = {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in tags}
    lines = [json.loads(line) for line in open(f"{run}/metrics.jsonl") if line.strip()]
    checked = 0
    for line in lines:
        step = line["step"]
        for key, value in line.items():
            if key in ("step", "elapsed_s"):
                continue
            if key not in scalars:
                sys.exit(f"{run}: metrics.jsonl has '{key}', the events have no such tag (tags: {sorted(scalars)})")
            if step not in scalars[key]:
                sys.exit(f"{run}: tag '{key}' has no event at step {step}")
            seen = scalars[key][step]
            if not math.isclose(seen, value, rel_tol=1e-6, abs_tol=1e-7):
                sys.exit(f"{run}: tag '{key}' at step {step} is {seen} in the events, {value} in metrics.jsonl")
            checked += 1
    print(f"{run}: {len(lines)} steps, {len(tags)} tags, {checked} values read by TensorBoard equal metrics.jsonl")


if __name__ == "__main__":
    main()
