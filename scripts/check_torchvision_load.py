#!/usr/bin/env python3
"""Checks that encoders exported by `maclr export` load into torchvision with strict=True and
give the same features as maclr on the same clips.

For r2plus1d_18 and r3d_18 at full width:
  1. `maclr synth` + `maclr prepare --no-flow`: four small videos (64 x 64, 24 frames);
  2. `maclr export`: a randomly initialised encoder (seed 3, BN running statistics at their init);
  3. `maclr extract --encoder ... --set data.crop=64 --set eval.clips_per_video=1`: maclr's
     features of the test videos (one clip of 8 frames, stride 2, starting at (length - 15) // 2,
     the whole 64 x 64 frame, so no resizing is involved);
  4. torchvision.models.video.<arch>() loads the file with load_state_dict(strict=True) (fc taken
     from the fresh model, since the encoder has none), fc replaced by identity, eval mode; the
     same clips read from the shard with h5py, scaled to [0, 1], normalised with the Kinetics
     mean and std, give features that must match maclr's to 1e-4 relative (max norm).

Usage: /opt/torchref/bin/python scripts/check_torchvision_load.py [--maclr .build/release/maclr]
       (needs torch, torchvision, safetensors, h5py: see docs/performance.md, "Steps, the loader and pretraining")
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch
import torchvision.models.video as tvv
from safetensors.torch import load_file

MEAN = np.array([0.43216, 0.394666, 0.37645], np.float32)
STD = np.array([0.22803, 0.22145, 0.216989], np.float32)
FRAMES, STRIDE = 8, 2


def run(*args):
    subprocess.run(list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def clips_from_shards(dataset):
    """name -> (1, 3, T, H, W) clip as maclr's evaluation cuts it with one clip per video."""
    manifest = json.load(open(os.path.join(dataset, "manifest.json")))
    clips = {}
    for shard in manifest["shards"]:
        with h5py.File(os.path.join(dataset, shard["file"]), "r") as f:
            v = f["videos"]
            for name, start, length in zip(v["name"][...], v["start"][...], v["length"][...]):
                first = int(start) + (int(length) - ((FRAMES - 1) * STRIDE + 1)) // 2
                rgb = f["rgb"][first:first + (FRAMES - 1) * STRIDE + 1:STRIDE].astype(np.float32) / 255
                clip = ((rgb - MEAN) / STD).transpose(3, 0, 1, 2)[None]
                clips[name.decode() if isinstance(name, bytes) else name] = torch.from_numpy(np.ascontiguousarray(clip))
    return clips


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--maclr", default=os.path.join(os.path.dirname(__file__), "..", ".build", "release", "maclr"))
    a = ap.parse_args()
    torch.set_num_threads(2)
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        videos, dataset = os.path.join(tmp, "videos"), os.path.join(tmp, "dataset")
        run(a.maclr, "synth", videos, "--classes", "2", "--per-class", "2", "--frames", "24", "--test-fraction", "0.5")
        run(a.maclr, "prepare", os.path.join(videos, "labels.csv"), dataset, "--no-flow")
        clips = clips_from_shards(dataset)
        for arch in ("r2plus1d_18", "r3d_18"):
            path, features = os.path.join(tmp, f"{arch}.safetensors"), os.path.join(tmp, f"{arch}.h5")
            run(a.maclr, "export", "--arch", arch, "--seed", "3", "--output", path)
            run(a.maclr, "extract", "--encoder", path, "--dataset", dataset, "--split", "test",
                "--set", "data.crop=64", "--set", "eval.clips_per_video=1", "--output", features)
            state = load_file(path)
            model = getattr(tvv, arch)(weights=None)
            state["fc.weight"] = model.fc.weight.detach().clone()
            state["fc.bias"] = model.fc.bias.detach().clone()
            model.load_state_dict(state, strict=True)
            model.fc = torch.nn.Identity()
            model.eval()
            with h5py.File(features, "r") as f:
                names = [n.decode() if isinstance(n, bytes) else n for n in f["names"][...]]
                ours = torch.from_numpy(f["features"][...])
            with torch.no_grad():
                theirs = torch.cat([model(clips[n]) for n in names])
            rel = ((ours - theirs).abs().max() / theirs.abs().max()).item()
            worst = max(worst, rel)
            print(f"{arch}: {len(state)} tensors loaded with strict=True; features of {len(names)} clips "
                  f"({tuple(theirs.shape)}), max |maclr - torchvision| / max |torchvision| = {rel:.2e}")
    if worst > 1e-4:
        print(f"FAIL: features differ by {worst:.2e} (relative)")
        sys.exit(1)
    print("OK: torchvision loads maclr's exported encoders and computes the same features")


if __name__ == "__main__":
    main()
