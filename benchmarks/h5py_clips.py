#!/usr/bin/env python3
"""Times h5py reading the clips `maclr bench data` read (RGB + flow of each clip, one thread),
the ways maclr's ShardReader can: `contiguous` reads the clip's whole span of frames and keeps
every stride-th in memory; `directChunk` reads each chunk the clip touches as stored
(read_direct_chunk) and keeps the clip's frames; `stridedSelection` asks HDF5 for the strided
hyperslab. Then `contiguous` again with HDF5's chunk cache off and sized to a whole clip span
(h5py's rdcc_nbytes; the default is 1 MiB). Writes clips/s of each to the JSON file after --json.

Usage: python3 benchmarks/h5py_clips.py DATASET CLIPS.json --json OUT.json   (needs h5py)
"""
import argparse
import json
import time

import h5py
import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dataset")
    p.add_argument("clips")
    p.add_argument("--json", required=True)
    a = p.parse_args()
    clips = json.load(open(a.clips))
    rates = {}

    def timed(label, files, read):
        start = time.perf_counter()
        for c in clips:
            f = files[c["shard"]]
            for name in ("rgb", "flow"):
                frames = read(f[name], c["row"], c["frames"], c["stride"])
                assert frames.shape[0] == c["frames"]
        rates[label] = len(clips) / (time.perf_counter() - start)
        print(f"h5py {label}: {rates[label]:.0f} clips/s")

    def contiguous(d, first, n, step):
        return d[first:first + (n - 1) * step + 1][::step]

    def strided(d, first, n, step):
        return d[first:first + (n - 1) * step + 1:step]

    def direct_chunk(d, first, n, step):
        rows = d.chunks[0]
        wanted = range(first, first + (n - 1) * step + 1, step)
        out, chunk_start, chunk = [], None, None
        for r in wanted:
            if chunk_start != r // rows * rows:
                chunk_start = r // rows * rows
                _, raw = d.id.read_direct_chunk((chunk_start,) + (0,) * (d.ndim - 1))
                chunk = np.frombuffer(raw, dtype=d.dtype).reshape((rows,) + d.shape[1:])
            out.append(chunk[r - chunk_start])
        return np.stack(out)

    def open_all(**kwargs):
        return {c["shard"]: h5py.File(f"{a.dataset}/{c['shard']}", "r", **kwargs) for c in clips}

    files = open_all()
    timed("contiguous", files, contiguous)
    timed("directChunk", files, direct_chunk)
    timed("stridedSelection", files, strided)
    timed("contiguous, chunk cache off", open_all(rdcc_nbytes=0), contiguous)
    span = max((c["frames"] - 1) * c["stride"] + 1 for c in clips)
    clip_bytes = max(int(np.prod(f["rgb"].shape[1:])) for f in files.values()) * (span + 2 * files[clips[0]["shard"]]["rgb"].chunks[0])
    timed("contiguous, chunk cache of a clip", open_all(rdcc_nbytes=clip_bytes, rdcc_nslots=10007), contiguous)
    json.dump(rates, open(a.json, "w"))


if __name__ == "__main__":
    main()
