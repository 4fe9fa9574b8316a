#!/usr/bin/env python3
"""Checks that `maclr export --layout` writes what each library loads: for r2plus1d_18 and
r3d_18 at full width (torchvision's networks), a random init exported in every layout loads with
load_state_dict(strict=True) into
  torchvision   torchvision.models.video.<arch>() (its fc left out: strict=False, fc the only missing key)
  pytorchvideo  the Net that scripts/make_layout_fixtures.py builds from pytorchvideo's modules
  mmaction2     mmaction2's ResNet3d(depth=18, with_pool1=False, temporal_strides=(1, 2, 2, 2)) (r3d_18 only)
and gives torchvision's features on the same random clip (eval mode, 1e-5 relative); and that a
torchvision state dict saved with safetensors.torch.save_file (no metadata) is what
`maclr inspect` recognises.

Usage (pytorchvideo and mmaction2 importable as for make_layout_fixtures.py):
  PYTHONPATH=pytorchvideo-0.1.5:mmaction2-1.2.0 /opt/torchref/bin/python scripts/check_layout_exports.py [--maclr .build/release/maclr]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import torch
import torchvision.models.video as tvv
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_layout_fixtures import mmaction2_net, pytorchvideo_net  # noqa: E402


def torchvision_features(net, x):
    x = net.stem(x)
    for i in range(4):
        x = getattr(net, f"layer{i + 1}")(x)
    return x.mean((2, 3, 4))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--maclr", default=".build/release/maclr")
    args = ap.parse_args()
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 64, 64)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ("r2plus1d_18", "r3d_18"):
            reference = None
            for layout in ("torchvision", "pytorchvideo", "mmaction2"):
                if layout == "mmaction2" and arch == "r2plus1d_18":
                    continue
                path = os.path.join(tmp, f"{arch}-{layout}.safetensors")
                subprocess.run([args.maclr, "export", "--arch", arch, "--seed", "3", "--layout", layout, "--output", path],
                               check=True, stdout=subprocess.DEVNULL)
                state = load_file(path)
                if layout == "torchvision":
                    net = getattr(tvv, arch)().eval()
                    missing, unexpected = net.load_state_dict(state, strict=False)
                    assert sorted(missing) == ["fc.bias", "fc.weight"] and not unexpected, (missing, unexpected)
                    with torch.no_grad():
                        reference = torchvision_features(net, x)
                    f = reference
                elif layout == "pytorchvideo":
                    net, features = pytorchvideo_net(arch, 1.0, (2, 2, 2, 2))
                    head = {k: v for k, v in net.state_dict().items() if k.startswith("blocks.5.")}
                    net.load_state_dict({**state, **head}, strict=True)
                    net.eval()
                    with torch.no_grad():
                        f = features(x)
                else:
                    net, features = mmaction2_net(1.0, (2, 2, 2, 2))
                    net.backbone.load_state_dict(state, strict=True)
                    net.eval()
                    with torch.no_grad():
                        f = features(x)
                error = ((f - reference).abs().max() / reference.abs().max()).item()
                ok = error < 1e-5
                failures += not ok
                print(f"{arch} {layout}: {len(state)} tensors loaded strictly, features against torchvision's: {error:.1e} {'ok' if ok else 'FAIL'}")
            # a torchvision state dict as a user saves it, no metadata
            path = os.path.join(tmp, f"{arch}-user.safetensors")
            save_file({k: v.contiguous() for k, v in getattr(tvv, arch)().state_dict().items()}, path)
            out = subprocess.run([args.maclr, "inspect", path], capture_output=True, text=True)
            found = [line for line in out.stdout.splitlines() if "names," in line]
            print(f"{arch} saved by torchvision, maclr inspect: {found[0] if found else out.stdout.strip()}")
            failures += not found
            failures += out.returncode != 0
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
