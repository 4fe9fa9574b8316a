#!/usr/bin/env python3
"""Times h5py reading the clips `maclr bench data` read (RGB + flow of each clip, one thread),
two ways: `contiguous` reads the clip's whole span of frames and keeps every stride-th in
memory; `stridedSelection` asks HDF5 for the strided hyperslab. Writes clips/s of each to the
JSON file after --json.

Usage: python3 benchmarks/h5py_clips.py DATASET CLIPS.json --json OUT.json   (needs h5py)
"""
import argparse
import json
import time

import h5py


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dataset")
    p.add_argument("clips")
    p.add_argument("--json", required=True)
    a = p.parse_args()
    clips = json.load(open(a.clips))
    files = {c["shard"]: h5py.File(f"{a.dataset}/{c['shard']}", "r") for c in clips}
    rates = {}
    for pattern in ("contiguous", "stridedSelection"):
        start = time.perf_counter()
        for c in clips:
            f = files[c["shard"]]
            first, n, step = c["row"], c["frames"], c["stride"]
            for name in ("rgb", "flow"):
                if pattern == "contiguous":
                    frames = f[name][first:first + (n - 1) * step + 1][::step]
                else:
                    frames = f[name][first:first + (n - 1) * step + 1:step]
                assert frames.shape[0] == n
        rates[pattern] = len(clips) / (time.perf_counter() - start)
        print(f"h5py {pattern}: {rates[pattern]:.0f} clips/s")
    json.dump(rates, open(a.json, "w"))


if __name__ == "__main__":
    main()
