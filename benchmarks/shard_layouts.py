#!/usr/bin/env python3
"""Rewrites one shard of a prepared dataset in other HDF5 layouts and times h5py reading the
same random clips from each (RGB + flow, `--frames` frames at `--stride`, the whole span read
and subsampled, as maclr's loader reads): bytes on disk against clips/s, to choose a layout.

Layouts: the shard as written (chunks of 16 frames, no filter); gzip level 1 and level 4
(HDF5's built-in deflate, which every HDF5 reader has); chunks of 8 and of 32 frames.

Usage: python3 benchmarks/shard_layouts.py DATASET/shard-00000.h5 [--clips 300] [--out /tmp/layouts]
(needs h5py and numpy)
"""
import argparse
import os
import random
import time

import h5py


def rewrite(src, dst, chunk_frames, compression, level):
    with h5py.File(src, "r") as s, h5py.File(dst, "w") as d:
        for name in ("rgb", "flow"):
            data = s[name][...]
            d.create_dataset(name, data=data, chunks=(chunk_frames,) + data.shape[1:],
                             compression=compression, compression_opts=level)
        s.copy("videos", d)
        for k, v in s.attrs.items():
            d.attrs[k] = v


def time_reads(path, clips, frames, stride):
    span = (frames - 1) * stride + 1
    with h5py.File(path, "r") as f:
        start = time.perf_counter()
        for first in clips:
            for name in ("rgb", "flow"):
                f[name][first:first + span][::stride]
        return len(clips) / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("shard")
    p.add_argument("--clips", type=int, default=300)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--stride", type=int, default=2)
    p.add_argument("--out", default="/tmp/layouts")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    with h5py.File(a.shard, "r") as f:
        rows = f["rgb"].shape[0]
    span = (a.frames - 1) * a.stride + 1
    random.seed(0)
    clips = [random.randrange(0, rows - span) for _ in range(a.clips)]
    layouts = [("as written (16-frame chunks)", a.shard)]
    for label, chunk, comp, level in [("gzip 1, 16-frame chunks", 16, "gzip", 1), ("gzip 4, 16-frame chunks", 16, "gzip", 4),
                                      ("8-frame chunks", 8, None, None), ("32-frame chunks", 32, None, None)]:
        dst = os.path.join(a.out, label.replace(" ", "_").replace(",", "") + ".h5")
        rewrite(a.shard, dst, chunk, comp, level)
        layouts.append((label, dst))
    print(f"| layout | MiB on disk | clips/s (h5py, {a.frames} frames at stride {a.stride}, RGB + flow) |")
    print("|---|---|---|")
    for label, path in layouts:
        time_reads(path, clips[:20], a.frames, a.stride)  # warm the page cache
        rate = time_reads(path, clips, a.frames, a.stride)
        print(f"| {label} | {os.path.getsize(path) / 2**20:.1f} | {rate:.0f} |")


if __name__ == "__main__":
    main()
