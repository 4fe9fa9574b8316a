#!/usr/bin/env python3
"""Checks that encoders exported by `maclr export` load into torchvision with strict=True.

For r2plus1d_18 and r3d_18 at full width: runs `maclr export`, loads the safetensors file into
torchvision.models.video.<arch>() with load_state_dict(strict=True) (fc taken from the fresh
torchvision model, since the encoder has none), and runs a forward pass.

Usage: /opt/torchref/bin/python scripts/check_torchvision_load.py [--maclr .build/release/maclr]
"""
import argparse
import os
import subprocess
import tempfile

import torch
import torchvision.models.video as tvv
from safetensors.torch import load_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--maclr", default=os.path.join(os.path.dirname(__file__), "..", ".build", "release", "maclr"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ("r2plus1d_18", "r3d_18"):
            path = os.path.join(tmp, f"{arch}.safetensors")
            subprocess.run([a.maclr, "export", "--arch", arch, "--seed", "3", "--output", path], check=True)
            state = load_file(path)
            model = getattr(tvv, arch)(weights=None)
            state["fc.weight"] = model.fc.weight.detach().clone()
            state["fc.bias"] = model.fc.bias.detach().clone()
            model.load_state_dict(state, strict=True)
            model.eval()
            with torch.no_grad():
                out = model(torch.randn(1, 3, 8, 64, 64))
            assert torch.isfinite(out).all()
            print(f"{arch}: {len(state)} tensors loaded with strict=True, forward output {tuple(out.shape)}")


if __name__ == "__main__":
    main()
