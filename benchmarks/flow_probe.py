"""How much of a dataset's class is in its flow, before any network: a linear probe on raw flow.

For every video of a prepared dataset (maclr prepare), the stored flow (u, v) is dequantised,
averaged over the video's frames and pooled to a G x G grid (2 G^2 features: rotation and zoom
need the spatial pattern, translation only the mean); a logistic regression trained on the
training split is scored on the test split. Also printed: the mean flow magnitude, and the share
of flow components at the bound (clipped) -- what the Motion pathway is given to teach the
visual one. The same again on the flow minus its per-frame median, a crude removal of global
(camera) motion.

    python benchmarks/flow_probe.py DATASET [DATASET ...] [--grid 4]

Needs numpy, h5py and scikit-learn (pip install numpy h5py scikit-learn).
"""
import argparse
import json
import os

import h5py
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler


def videos(dataset):
    manifest = json.load(open(os.path.join(dataset, "manifest.json")))
    for shard in manifest["shards"]:
        with h5py.File(os.path.join(dataset, shard["file"]), "r") as f:
            bound = float(f.attrs["flow_bound"])
            starts, lengths, labels = f["videos/start"][:], f["videos/length"][:], f["videos/label"][:]
            names = [n.decode() if isinstance(n, bytes) else n for n in f["videos/name"][:]]
            for s, n, label, vid in zip(starts, lengths, labels, names):
                q = f["flow"][s:s + n - 1].astype(np.float32)          # (T-1, H, W, 2), last frame holds zeros
                yield vid, int(label), q * (2 * bound / 255) - bound, (q == 0) | (q == 255)


def pooled(flow, grid):
    t, h, w, _ = flow.shape
    mean = flow.mean(axis=0)                                          # (H, W, 2)
    return mean[: h // grid * grid, : w // grid * grid].reshape(grid, h // grid, grid, w // grid, 2).mean(axis=(1, 3)).ravel()


def probe(features, labels, train):
    x, y = np.array(features), np.array(labels)
    scaler = StandardScaler().fit(x[train])
    model = LogisticRegression(max_iter=5000, C=1.0).fit(scaler.transform(x[train]), y[train])
    return float((model.predict(scaler.transform(x[~train])) == y[~train]).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--grid", type=int, default=4)
    args = parser.parse_args()
    for dataset in args.datasets:
        manifest = json.load(open(os.path.join(dataset, "manifest.json")))
        test_names = set(manifest.get("splits", {}).get("test", []))
        raw, centred, labels, train, magnitude, clipped = [], [], [], [], [], []
        for vid, label, flow, at_bound in videos(dataset):
            raw.append(pooled(flow, args.grid))
            centred.append(pooled(flow - np.median(flow, axis=(1, 2), keepdims=True), args.grid))
            labels.append(label)
            train.append(vid not in test_names)
            magnitude.append(float(np.linalg.norm(flow, axis=-1).mean()))
            clipped.append(float(at_bound.mean()))
        train = np.array(train)
        print(f"{dataset}: {len(labels)} videos ({train.sum()} train), flow |f| {np.mean(magnitude):.2f} px/frame, "
              f"{100 * np.mean(clipped):.1f} % of components at the bound; raw-flow probe top-1 "
              f"{100 * probe(raw, labels, train):.1f} %, minus the per-frame median {100 * probe(centred, labels, train):.1f} %")


if __name__ == "__main__":
    main()
