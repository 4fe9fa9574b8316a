#!/usr/bin/env python3
"""TV-L1: maclr's Swift implementation vs OpenCV's DualTVL1 on the same frames.

Frames: a smooth random texture (sum of sinusoids) and the same texture under a known
sub-pixel motion (translation, rotation, zoom), sampled exactly, so the true flow is known.
Reports end-point error (interior, 8 px border excluded) and speed (pairs/s), both on
--threads threads (ours: pairs in parallel; OpenCV: cv2.setNumThreads).

Usage (needs numpy, safetensors, opencv-contrib-python-headless):
  /opt/torchref/bin/pip install opencv-contrib-python-headless
  /opt/torchref/bin/python benchmarks/tvl1_vs_opencv.py --maclr .build/release/maclr [--size 112] [--pairs 16]
"""
import argparse
import json
import math
import os
import subprocess
import tempfile
import time

import cv2
import numpy as np
from safetensors.numpy import load_file, save_file


def texture(rng, n_waves=24):
    waves = []
    for _ in range(n_waves):
        angle, freq = rng.uniform(0, 2 * math.pi), 0.15 + 0.5 * rng.uniform()
        waves.append((freq * math.cos(angle), freq * math.sin(angle), rng.uniform(0, 2 * math.pi), 10 + 20 * rng.uniform()))
    def f(x, y):
        out = np.full(x.shape, 128.0)
        for kx, ky, ph, a in waves:
            out += a * np.sin(kx * x + ky * y + ph)
        return out.astype(np.float32)
    return f


def make_pairs(n, size, seed):
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    c = (size - 1) / 2
    i0s, i1s, us, vs = [], [], [], []
    for k in range(n):
        f = texture(rng)
        kind = k % 3
        if kind == 0:   # translation
            du, dv = rng.uniform(-2, 2), rng.uniform(-2, 2)
            i1 = f(xs - du, ys - dv)
            u, v = np.full_like(xs, du), np.full_like(ys, dv)
        elif kind == 1:  # rotation about the centre
            a = math.radians(rng.uniform(-3, 3))
            dx, dy = xs - c, ys - c
            i1 = f(math.cos(a) * dx + math.sin(a) * dy + c, -math.sin(a) * dx + math.cos(a) * dy + c)
            u, v = math.cos(a) * dx - math.sin(a) * dy - dx, math.sin(a) * dx + math.cos(a) * dy - dy
        else:            # zoom
            s = 1 + rng.uniform(-0.04, 0.04)
            i1 = f((xs - c) / s + c, (ys - c) / s + c)
            u, v = (s - 1) * (xs - c), (s - 1) * (ys - c)
        i0s.append(f(xs, ys)); i1s.append(i1); us.append(u.astype(np.float32)); vs.append(v.astype(np.float32))
    return np.stack(i0s), np.stack(i1s), np.stack(us), np.stack(vs)


def epe(u, v, tu, tv, border=8):
    s = (slice(None), slice(border, -border), slice(border, -border))
    return float(np.mean(np.sqrt((u[s] - tu[s]) ** 2 + (v[s] - tv[s]) ** 2)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--maclr", default=os.path.join(os.path.dirname(__file__), "..", ".build", "release", "maclr"))
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    i0, i1, tu, tv = make_pairs(a.pairs, a.size, a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "pairs.safetensors"), os.path.join(tmp, "flow.safetensors")
        save_file({"i0": i0, "i1": i1}, src)
        res = subprocess.run([a.maclr, "bench", "flow", src, out, "--threads", str(a.threads)], check=True, capture_output=True, text=True)
        ours_s = json.loads(res.stdout.strip().splitlines()[-1])["seconds"]
        flow = load_file(out)
        ours_epe = epe(flow["u"], flow["v"], tu, tv)

    cv2.setNumThreads(a.threads)
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()  # OpenCV defaults: tau .25, lambda .15, theta .3, 5 scales, 5 warps
    cu, cvv = [], []
    t0 = time.perf_counter()
    for k in range(a.pairs):
        f = tvl1.calc(i0[k], i1[k], None)
        cu.append(f[..., 0]); cvv.append(f[..., 1])
    cv_s = time.perf_counter() - t0
    cv_epe = epe(np.stack(cu), np.stack(cvv), tu, tv)

    print(f"TV-L1 on {a.pairs} pairs of {a.size}x{a.size} (translation / rotation / zoom, sub-pixel), {a.threads} threads")
    print("| implementation | mean EPE (px) | pairs/s | time |")
    print("|---|---|---|---|")
    print(f"| maclr (Swift) | {ours_epe:.4f} | {a.pairs / ours_s:.2f} | {ours_s:.2f} s |")
    print(f"| OpenCV {cv2.__version__} DualTVL1 | {cv_epe:.4f} | {a.pairs / cv_s:.2f} | {cv_s:.2f} s |")
    print(f"speed ratio ours / OpenCV: {cv_s / ours_s:.2f}x (>1: ours faster)")


if __name__ == "__main__":
    main()
