#!/usr/bin/env python3
"""The PyTorch mirror of a maclr recipe, key for key: the same networks (torchvision's
structure, scripts/make_parity_fixture.py), init, clip and pair sampling, augmentation (random
resized crop, flip, colour jitter, grayscale, blur, as maclr's Augmenter draws them), flow
rescaling, heads, momentum keys with shuffled key BN, queue or in-batch negatives, loss terms,
optimiser (BN and bias exempt from decay), warm-up and cosine schedule, batch size and steps;
then maclr eval's linear probe, retrieval and kNN on the frozen visual encoder. The random
streams differ from maclr's: the same recipe gives the same distribution of batches, not the
same batches. Keys it cannot mirror are refused by name.

Usage: .build/release/maclr recipe Recipes/quickstart.yaml --set seed=1 > recipe.json
       /opt/torchref/bin/python benchmarks/torch_recipe.py recipe.json [--dataset D] [--json out.json]
"""
import argparse
import json
import math
import os
import sys
import time

import h5py
import numpy as np
import safetensors.torch
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
from make_parity_fixture import FrameResNet, VideoResNet  # noqa: E402
from torch_mirror import frozen_copy, info_nce, load_videos, momentum_update, shuffled_keys, torchvision_init  # noqa: E402

MEAN = np.array([0.43216, 0.394666, 0.37645], np.float32)
STD = np.array([0.22803, 0.22145, 0.216989], np.float32)


def refuse_unmirrored(r):
    fixed = {"data.motion_input": "flow", "data.motion_temporal_sampling": False, "data.motion_spatial_cropping": False,
             "optim.accumulate": 1, "model.key_bn": "shuffle"}
    for key, value in fixed.items():
        if r[key] != value:
            sys.exit(f"torch_recipe.py: key '{key}' = {r[key]!r} is not mirrored (only {value!r})")
    if r["model.motion_pathway"] == "video":
        sys.exit("torch_recipe.py: key 'model.motion_pathway' = 'video' is not mirrored (frames or none)")


class Clips:
    """maclr's ClipSampler: pair starts, crop box, flip, resampling, photometric augmentation."""

    def __init__(self, r, fps):
        self.r, self.fps = r, fps
        self.frames, self.stride, self.crop = r["data.clip_frames"], r["data.clip_stride"], r["data.crop"]
        self.span = (self.frames - 1) * self.stride + 1
        self.augment = r["data.augment"]

    def pair_starts(self, length, rng):
        last = max(0, length - self.span)
        lo_s, hi_s = self.r["data.positive_gap"]
        hi = min(last, int(hi_s * self.fps))
        lo = min(hi, int(lo_s * self.fps))
        gap = int(rng.integers(lo, hi + 1))
        first = int(rng.integers(0, last - gap + 1))
        return (first, first + gap) if rng.random() < 0.5 else (first + gap, first)

    def box(self, h, w, rng):
        """torchvision's RandomResizedCrop box (10 tries, then the central square), or the whole frame."""
        if not self.augment:
            return 0.0, 0.0, float(w), float(h)
        lo, hi = self.r["data.crop_scale"]
        for _ in range(10):
            target = h * w * (lo + (hi - lo) * rng.random())
            ratio = math.exp(math.log(0.75) + (math.log(1.3333) - math.log(0.75)) * rng.random())
            cw, ch = math.sqrt(target * ratio), math.sqrt(target / ratio)
            if cw <= w and ch <= h:
                return rng.random() * (w - cw), rng.random() * (h - ch), cw, ch
        s = min(w, h)
        return (w - s) / 2, (h - s) / 2, float(s), float(s)

    def resample(self, x, box, flip):
        """Bilinear resample of (T, H, W, C) float frames inside box to (T, crop, crop, C), as maclr."""
        t, h, w, c = x.shape
        bx, by, bw, bh = box
        n = self.crop
        xs = np.arange(n)
        if flip:
            xs = n - 1 - xs
        fx = np.clip(bx + (xs + 0.5) * bw / n - 0.5, 0, w - 1)
        fy = np.clip(by + (np.arange(n) + 0.5) * bh / n - 0.5, 0, h - 1)
        x0, y0 = fx.astype(int), fy.astype(int)
        x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
        wx, wy = (fx - x0).astype(np.float32)[None, None, :, None], (fy - y0).astype(np.float32)[None, :, None, None]
        top = x[:, y0][:, :, x0] * (1 - wx) + x[:, y0][:, :, x1] * wx
        bottom = x[:, y1][:, :, x0] * (1 - wx) + x[:, y1][:, :, x1] * wx
        return top * (1 - wy) + bottom * wy

    def photometric(self, x, rng):
        """Colour jitter (brightness, contrast, saturation 0.4, hue 0.1 as a YIQ rotation), grayscale
        and Gaussian blur, one draw per clip, as maclr's Augmenter."""
        r = self.r
        if rng.random() < r["data.color_jitter"]:
            b, c, s = (1 + 0.4 * (2 * rng.random() - 1) for _ in range(3))
            angle = 0.1 * (2 * rng.random() - 1) * 2 * math.pi
            mean = (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]).mean()  # before brightness, as maclr
            x = (x * b - mean) * c + mean
            y = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
            x = y[..., None] + (x - y[..., None]) * s
            i = 0.596 * x[..., 0] - 0.274 * x[..., 1] - 0.322 * x[..., 2]
            q = 0.211 * x[..., 0] - 0.523 * x[..., 1] + 0.312 * x[..., 2]
            i2, q2 = i * math.cos(angle) - q * math.sin(angle), i * math.sin(angle) + q * math.cos(angle)
            x = np.clip(np.stack([y + 0.956 * i2 + 0.621 * q2, y - 0.272 * i2 - 0.647 * q2, y - 1.106 * i2 + 1.703 * q2], -1), 0, 1)
        if rng.random() < r["data.grayscale"]:
            y = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
            x = np.repeat(y[..., None], 3, -1)
        if rng.random() < r["data.blur"]:
            lo, hi = r["data.blur_sigma"]
            sigma = lo + (hi - lo) * rng.random()
            if sigma > 0:
                radius = max(1, math.ceil(3 * sigma))
                k = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma * sigma))
                k /= k.sum()
                for axis in (2, 1):  # rows then columns, edges clamped
                    n = x.shape[axis]
                    out = np.zeros_like(x)
                    for i, weight in enumerate(k):
                        out += weight * np.take(x, np.clip(np.arange(n) + i - radius, 0, n - 1), axis=axis)
                    x = out
        return x.astype(np.float32)

    def clip(self, frames, flow, start, rng, augment=True):
        """(3, T, crop, crop) normalised RGB and (2, T, crop, crop) flow (units of the bound) of one clip."""
        rgb = frames[start:start + self.span:self.stride].astype(np.float32) / 255
        h, w = rgb.shape[1:3]
        box = self.box(h, w, rng) if augment else (0.0, 0.0, float(w), float(h))
        flip = augment and self.augment and self.r["data.flip"] and rng.random() < 0.5
        x = self.resample(rgb, box, flip)
        if augment and self.augment:
            x = self.photometric(x, rng)
        x = ((x - MEAN) / STD).transpose(3, 0, 1, 2)
        if flow is None:
            return np.ascontiguousarray(x), None
        f = self.resample(flow[start:start + self.span:self.stride], box, flip)
        f = f * np.array([(-1 if flip else 1) * self.crop / box[2], self.crop / box[3]], np.float32)
        return np.ascontiguousarray(x), np.ascontiguousarray(f.transpose(3, 0, 1, 2))


def head(net, r):
    net.fc = nn.Sequential(nn.Linear(net.fc.in_features, r["model.head_hidden"]), nn.ReLU(),
                           nn.Linear(r["model.head_hidden"], r["model.embedding"]))
    return net


def optimiser(params, r):
    decay = [p for n, p in params if p.ndim > 1]
    exempt = [p for n, p in params if p.ndim <= 1]  # BN weights and biases, as maclr
    groups = [{"params": decay, "weight_decay": r["optim.weight_decay"]}, {"params": exempt, "weight_decay": 0}]
    if r["optim.optimizer"] == "adamw":
        return torch.optim.AdamW(groups, lr=r["optim.lr"])
    return torch.optim.SGD(groups, lr=r["optim.lr"], momentum=r["optim.momentum"], nesterov=r["optim.nesterov"])


def learning_rate(r, step):
    base, low, warm, total = r["optim.lr"], r["optim.min_lr"], r["optim.warmup_steps"], r["optim.steps"]
    if step < warm:
        return base * (step + 1) / warm
    progress = min((step - warm) / max(total - warm, 1), 1)
    return low + 0.5 * (base - low) * (1 + math.cos(math.pi * progress))


def evaluate(net, videos, clips, r):
    """maclr eval: clips_per_video evenly spaced whole-frame clips averaged, then the linear probe
    (standardised, Adam 0.05, L2, to convergence), retrieval R@1 and the weighted kNN."""
    net.eval()
    n = r["eval.clips_per_video"]
    feats, labels = {False: [], True: []}, {False: [], True: []}
    with torch.no_grad():
        for is_test, frames, label, *_ in videos:
            last = max(0, len(frames) - clips.span)
            starts = [round(last * k / (n - 1)) for k in range(n)] if n > 1 else [last // 2]
            x = torch.from_numpy(np.stack([clips.clip(frames, None, s, None, augment=False)[0] for s in starts]))
            feats[is_test].append(net(x).mean(0).numpy())
            labels[is_test].append(label)
    xtr, xte = np.array(feats[False]), np.array(feats[True])
    ytr, yte = np.array(labels[False]), np.array(labels[True])
    mu, sd = xtr.mean(0), np.maximum(xtr.std(0), 1e-6)
    ttr, tte = torch.from_numpy((xtr - mu) / sd), torch.from_numpy((xte - mu) / sd)
    classes = 1 + int(max(ytr.max(), yte.max()))
    linear = nn.Linear(xtr.shape[1], classes)
    nn.init.zeros_(linear.weight); nn.init.zeros_(linear.bias)
    opt = torch.optim.AdamW(linear.parameters(), 0.05, weight_decay=0)
    previous = float("inf")
    for _ in range(r["eval.probe_iterations"]):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(linear(ttr), torch.from_numpy(ytr)) + r["eval.probe_l2"] * (linear.weight ** 2).sum()
        loss.backward()
        opt.step()
        if abs(previous - loss.item()) < 1e-7 * max(1, abs(loss.item())):
            break
        previous = loss.item()
    top1 = float((linear(tte).argmax(1).numpy() == yte).mean())
    gtr = xtr / np.linalg.norm(xtr, axis=1, keepdims=True).clip(1e-12)
    gte = xte / np.linalg.norm(xte, axis=1, keepdims=True).clip(1e-12)
    sims = gte @ gtr.T
    r1 = float((ytr[sims.argmax(1)] == yte).mean())
    correct = 0
    for i in range(len(yte)):
        nearest = np.argsort(-sims[i], kind="stable")[:r["eval.knn_k"]]
        votes = np.zeros(classes)
        np.add.at(votes, ytr[nearest], np.exp(sims[i, nearest] / r["eval.knn_temperature"]))
        correct += int(votes.argmax() == yte[i])
    return {"top1": top1, "recallAt1": r1, "knnTop1": correct / len(yte)}


class MirrorModel:
    """maclr's MaCLRModel and trainer step: query pathways with heads, momentum keys with
    shuffled key BN, ring-buffer queues (or in-batch negatives), the loss terms, the optimiser."""

    def __init__(self, r, classes):
        self.r = r
        self.supervised = r["loss.objective"] == "supervised"
        arch, blocks = r["model.arch"], tuple(r["model.blocks"])
        self.visual = VideoResNet(arch, r["model.width"], 3, classes if self.supervised else 1, blocks=blocks)
        if not self.supervised:
            head(self.visual, r)
        self.nets = [self.visual]
        self.motion = None
        if not self.supervised and r["model.motion_pathway"] == "frames":
            self.motion = head(FrameResNet(r["model.motion_width"], 2, 1, blocks=tuple(r["model.motion_blocks"])), r)
            self.nets.append(self.motion)
        if r["model.init"] == "torchvision":
            for net in self.nets:
                torchvision_init(net)
        self.keys = [frozen_copy(n) for n in self.nets] if not self.supervised else []
        size = r["model.queue_size"]
        self.queues = [nn.functional.normalize(torch.randn(size, r["model.embedding"]), dim=1) for _ in self.nets] if size and not self.supervised else None
        self.pointer = 0
        self.opt = optimiser([(n, p) for net in self.nets for n, p in net.named_parameters()], r)

    def terms(self, ra, rb, fa, fb, ys, rng):
        """The loss terms of a batch of pairs, by maclr's metric names; keys drawn in maclr's
        order (visual, then motion), each shuffle from rng.permutation."""
        r, t = self.r, self.r["loss.temperature"]
        for net in self.nets:
            net.train()
        if self.supervised:
            return {"loss": nn.functional.cross_entropy(self.visual(ra), ys)}
        vq = nn.functional.normalize(self.visual(ra), dim=1)
        vk = shuffled_keys(self.keys[0], rb, rng)
        q0 = self.queues[0] if self.queues else None
        out = {"loss_v": info_nce(vq, vk, q0, t)}
        self.new_keys = [vk]
        if self.motion is not None:
            mq = nn.functional.normalize(self.motion(fa), dim=1)
            mk = shuffled_keys(self.keys[1], fb, rng)
            q1 = self.queues[1] if self.queues else None
            self.new_keys.append(mk)
            out["loss_v2m"], out["loss_m2v"] = info_nce(vq, mk, q1, t), info_nce(mq, vk, q0, t)
            w, wm = r["loss.cross_modal_weight"], r["loss.motion_intra_weight"]
            total = out["loss_v"] + w * (out["loss_v2m"] + out["loss_m2v"])
            if wm > 0:
                out["loss_m"] = info_nce(mq, mk, q1, t)
                total = total + wm * out["loss_m"]
            out["loss"] = total
        else:
            out["loss"] = out["loss_v"]
        return out

    def step(self, ra, rb, fa, fb, ys, lr, rng, before_update=None):
        """One optimiser step; returns the terms as floats. before_update(terms) sees the
        gradients before the optimiser moves the weights."""
        for g in self.opt.param_groups:
            g["lr"] = lr
        terms = self.terms(ra, rb, fa, fb, ys, rng)
        self.opt.zero_grad()
        terms["loss"].backward()
        if before_update:
            before_update(terms)
        self.opt.step()
        if not self.supervised:
            for key, net in zip(self.keys, self.nets):
                momentum_update(key, net, self.r["model.momentum"])
            if self.queues:  # a ring buffer, oldest rows overwritten first, as maclr's
                size, n = len(self.queues[0]), len(self.new_keys[0])
                rows = (self.pointer + torch.arange(n)) % size
                for queue, k in zip(self.queues, self.new_keys):
                    queue[rows] = k.detach()
                self.pointer = (self.pointer + n) % size
        return {k: v.item() for k, v in terms.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("recipe", help="a resolved recipe: maclr recipe FILE [--set ...] > recipe.json")
    ap.add_argument("--dataset", help="default: the recipe's data.dataset")
    ap.add_argument("--json", help="write the evaluation here")
    ap.add_argument("--save-encoder", help="write the trained visual encoder here (safetensors, maclr export's layout)")
    ap.add_argument("--evaluate-encoder", help="skip training: evaluate this encoder (maclr export's safetensors)")
    a = ap.parse_args()
    r = json.load(open(a.recipe))
    refuse_unmirrored(r)
    dataset = a.dataset or r["data.dataset"]
    seed = r["seed"]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    manifest = json.load(open(os.path.join(dataset, "manifest.json")))
    with h5py.File(os.path.join(dataset, manifest["shards"][0]["file"]), "r") as f:
        fps = float(f.attrs["fps"])  # maclr reads each shard's; prepare writes one rate for all
    supervised = r["loss.objective"] == "supervised"
    videos = load_videos(dataset, with_flow=not supervised and r["model.motion_pathway"] == "frames")
    train_set = [v for v in videos if not v[0]]
    clips = Clips(r, fps)
    classes = 1 + max(v[2] for v in videos)
    model = MirrorModel(r, classes)
    visual = model.visual
    batch = r["optim.batch_size"]
    order, cursor = rng.permutation(len(train_set)), 0
    start_time = time.time()
    steps = 0 if a.evaluate_encoder else r["optim.steps"]
    for step in range(steps):
        if cursor + batch > len(order):
            order, cursor = rng.permutation(len(train_set)), 0
        picks, cursor = order[cursor:cursor + batch], cursor + batch
        ra, rb, fa, fb, ys = [], [], [], [], []
        for i in picks:
            _, frames, label, *flow = train_set[i]
            flow = flow[0] if flow else None
            sa, sb = clips.pair_starts(len(frames), rng)
            x, f = clips.clip(frames, flow, sa, rng)
            ra.append(x); fa.append(f); ys.append(label)
            x, f = clips.clip(frames, flow, sb, rng)
            rb.append(x); fb.append(f)
        stacked = [torch.from_numpy(np.stack(v)) if v[0] is not None else None for v in (ra, rb, fa, fb)]
        terms = model.step(*stacked, torch.tensor(ys), learning_rate(r, step), rng)
        if (step + 1) % r["train.log_every"] == 0:
            print(f"step {step + 1}/{r['optim.steps']} loss {terms['loss']:.4f} ({time.time() - start_time:.0f}s)", flush=True)
    visual.fc = nn.Identity()
    if a.evaluate_encoder:
        missing, unexpected = visual.load_state_dict(safetensors.torch.load_file(a.evaluate_encoder), strict=False)
        if missing or unexpected:
            sys.exit(f"torch_recipe.py: {a.evaluate_encoder} does not fit the recipe's encoder: missing {missing}, unexpected {unexpected}")
    if a.save_encoder:
        meta = {"arch": r["model.arch"], "blocks": ",".join(map(str, r["model.blocks"])), "input_channels": "3", "width": str(r["model.width"]), "format": "pt"}
        safetensors.torch.save_file({k: v.contiguous() for k, v in visual.state_dict().items()}, a.save_encoder, metadata=meta)
    report = evaluate(visual, videos, clips, r)
    print(f"linear probe: top-1 {100 * report['top1']:.1f}% | retrieval: R@1 {100 * report['recallAt1']:.1f}% | kNN: top-1 {100 * report['knnTop1']:.1f}%")
    if a.json:
        json.dump(report, open(a.json, "w"))


if __name__ == "__main__":
    main()
