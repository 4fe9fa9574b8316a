#!/usr/bin/env python3
"""Reads a dataset made by `maclr prepare` with h5py and checks the documented layout
(README.md, "The data format"). Exits non-zero naming the first fault.

Usage: python3 scripts/check_shard_h5py.py DATASET_FOLDER     (needs: pip install h5py numpy)
"""
import json
import os
import sys

import h5py
import numpy as np


def fail(msg):
    print(f"FAULT: {msg}")
    sys.exit(1)


def main(folder):
    manifest = json.load(open(os.path.join(folder, "manifest.json")))
    if manifest.get("format") != "maclr-dataset" or manifest.get("version") != 1:
        fail(f"manifest format/version {manifest.get('format')}/{manifest.get('version')}")
    total = 0
    for entry in manifest["shards"]:
        path = os.path.join(folder, entry["file"])
        with h5py.File(path, "r") as f:
            a = f.attrs
            for key in ("format", "version", "height", "width", "fps", "flow_algorithm", "flow_bound"):
                if key not in a:
                    fail(f"{path}: root attribute {key} missing")
            h, w = int(a["height"]), int(a["width"])
            rgb = f["rgb"]
            if rgb.dtype != np.uint8 or rgb.shape[1:] != (h, w, 3):
                fail(f"{path}: /rgb {rgb.dtype} {rgb.shape}, expected uint8 F x {h} x {w} x 3")
            if rgb.chunks is None:
                fail(f"{path}: /rgb is not chunked")
            has_flow = a["flow_algorithm"] != b"none" and a["flow_algorithm"] != "none"
            if has_flow:
                flow = f["flow"]
                if flow.dtype != np.uint8 or flow.shape != rgb.shape[:3] + (2,):
                    fail(f"{path}: /flow {flow.dtype} {flow.shape} does not match /rgb {rgb.shape}")
                # version 2: one motion score per frame (mean motion-boundary magnitude, pixels)
                if int(a["version"]) >= 2:
                    motion = f["motion"]
                    if motion.dtype != np.float32 or motion.shape != (rgb.shape[0],) or not np.all(motion[...] >= 0):
                        fail(f"{path}: /motion {motion.dtype} {motion.shape}, expected float32 ({rgb.shape[0]},) of scores >= 0")
            v = f["videos"]
            names, sources = v["name"][...], v["source"][...]
            start, length, label = v["start"][...], v["length"][...], v["label"][...]
            if start.dtype != np.int64 or length.dtype != np.int32 or label.dtype != np.int32:
                fail(f"{path}: /videos dtypes {start.dtype} {length.dtype} {label.dtype}")
            if not (len(names) == len(sources) == len(start) == len(length) == len(label) == entry["videos"]):
                fail(f"{path}: /videos tables disagree with each other or the manifest")
            if int((length).sum()) != rgb.shape[0] or int(start[-1] + length[-1]) != rgb.shape[0]:
                fail(f"{path}: video lengths do not cover /rgb")
            if has_flow:
                last = int(start[0] + length[0] - 1)
                if not np.all(np.abs(flow[last].astype(int) - 128) <= 1):
                    fail(f"{path}: the last frame of {names[0]!r} should hold zero flow (128)")
            clip = rgb[int(start[0]):int(start[0]) + min(4, int(length[0]))]
            total += int(rgb.shape[0])
            print(f"{entry['file']}: {len(names)} videos, {rgb.shape[0]} frames {h}x{w}, flow={has_flow}, "
                  f"first video {names[0].decode() if isinstance(names[0], bytes) else names[0]!r} label {label[0]}, clip mean {clip.mean():.1f}")
    if total != manifest_frames(manifest):
        fail(f"frames {total} != manifest {manifest_frames(manifest)}")
    print(f"OK: {len(manifest['shards'])} shards, {total} frames, layout as documented")


def manifest_frames(m):
    return sum(s["frames"] for s in m["shards"])


if __name__ == "__main__":
    main(sys.argv[1])
