#!/usr/bin/env python3
"""PyTorch reference for the synthetic benchmark's diagnosis (docs/results.md, "The synthetic
motion benchmark"): is what maclr learns (or fails to learn) on a dataset the same in PyTorch?

  train DATASET --steps 400 --lr 0.001 --optimizer adamw [--seed 0]
      trains the mirror of R(2+1)D-18 (scripts/make_parity_fixture.py's classes: torchvision's
      structure, width 1/4, two blocks per stage) with labels on the shards' training split:
      batch 8, 8-frame clips at stride 2 from a random start, a random 56x56 crop of the 64x64
      frames, Kinetics normalisation, 30 warm-up steps then cosine. Prints the loss every 40
      steps and the test / train accuracy of its own classifier (one central clip per video).
  moco DATASET --steps 200 --lr 0.001 [--queue 0] [--blocks 1] [--augment-crop] [--seed 0]
      visual-only MoCo as maclr's visual-only recipe runs it: two clips of a video at independent
      random starts, the same crop (or independent random crops with --augment-crop), head
      Linear-ReLU-Linear (512, 128), L2-normalised, key encoder EMA 0.99 with keys' BN over two
      shuffled sub-batches, a queue of 128, temperature 0.1, AdamW at a constant LR. Prints the
      InfoNCE loss (mean of the last 20 steps) every 20 steps: the check that the instance task
      is learnable at this size, independent of maclr's engine; then the linear probe of the
      trained encoder beside that of its random init.
  maclr DATASET --steps 400 --lr 0.001 [--queue 0] [--init torchvision] [--whole-frame] [--min-gap 8]
      MaCLR as base.yaml runs it: visual query on clip A, visual key on clip B; a frame-wise
      ResNet-18 (half the visual width) on the clips' flow (units of the bound), its key on B's;
      L = L_v + w (L_v->m + L_m->v) [+ w_m L_m] with in-batch (--queue 0) or queue negatives, EMA
      keys with BN over two shuffled sub-batches, AdamW, 40 warm-up steps then constant (or
      --cosine). Independent random 56x56 crops and starts by default; --whole-frame, --min-gap 8
      and --init torchvision reproduce maclr's sampling and init. Prints the loss terms every 20
      steps, the linear probe every --probe-every steps and at the end.
  probe DATASET ENCODER [--width 0.25] [--blocks 1]
      loads a maclr encoder (maclr export or a run's encoder.safetensors, --blocks per stage)
      into the mirror with strict=True and runs the linear probe as maclr eval does (4 evenly
      spaced central clips per video averaged, standardised features, Adam 0.05, L2 1e-3, 500
      full-batch steps); prints test top-1.

Usage: /opt/torchref/bin/python benchmarks/torch_mirror.py train runs/results/plain/dataset
       (needs torch, safetensors, h5py: see docs/performance.md, "Steps, the loader and pretraining")
"""
import argparse
import copy
import json
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
from make_parity_fixture import FrameResNet, VideoResNet  # noqa: E402

MEAN = np.array([0.43216, 0.394666, 0.37645], np.float32)
STD = np.array([0.22803, 0.22145, 0.216989], np.float32)
FRAMES, STRIDE, CROP = 8, 2, 56
SPAN = (FRAMES - 1) * STRIDE + 1


def load_videos(dataset, with_flow=False):
    """[(is_test, frames (F, H, W, 3) uint8, label[, flow (F, H, W, 2) float in units of the
    bound])] for every video of the dataset."""
    manifest = json.load(open(os.path.join(dataset, "manifest.json")))
    test = set(manifest["splits"].get("test", []))
    videos = []
    for shard in manifest["shards"]:
        with h5py.File(os.path.join(dataset, shard["file"]), "r") as f:
            v, rgb = f["videos"], f["rgb"][...]
            flow = f["flow"][...] if with_flow else None
            for name, start, length, label in zip(v["name"][...], v["start"][...], v["length"][...], v["label"][...]):
                name = name.decode() if isinstance(name, bytes) else name
                entry = (name in test, rgb[start:start + length], int(label))
                if with_flow:  # stored as round((f + b) * 255 / 2b): back to f / b
                    entry += (flow[start:start + length].astype(np.float32) * (2 / 255) - 1,)
                videos.append(entry)
    return videos


def clip(frames, start, oy, ox):
    """(3, T, CROP, CROP) float clip from `start`, cropped at (oy, ox)."""
    c = frames[start:start + SPAN:STRIDE, oy:oy + CROP, ox:ox + CROP].astype(np.float32) / 255
    return ((c - MEAN) / STD).transpose(3, 0, 1, 2)


def central(frames, start):
    h, w = frames.shape[1:3]
    return clip(frames, start, (h - CROP) // 2, (w - CROP) // 2)


def train(a):
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    videos = load_videos(a.dataset)
    train_set, test_set = [v for v in videos if not v[0]], [v for v in videos if v[0]]
    classes = 1 + max(v[2] for v in videos)
    net = VideoResNet("r2plus1d_18", a.width, 3, classes)
    if a.optimizer == "adamw":
        opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=1e-4)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=0.9, weight_decay=1e-4)
    for step in range(a.steps):
        for g in opt.param_groups:
            g["lr"] = a.lr * min(1, (step + 1) / 30) * 0.5 * (1 + math.cos(math.pi * step / a.steps))
        picks = rng.choice(len(train_set), 8, replace=False)
        batch = []
        for i in picks:
            frames = train_set[i][1]
            h, w = frames.shape[1:3]
            batch.append(clip(frames, rng.integers(0, len(frames) - SPAN + 1), rng.integers(0, h - CROP + 1), rng.integers(0, w - CROP + 1)))
        net.train()
        loss = nn.functional.cross_entropy(net(torch.from_numpy(np.stack(batch))), torch.tensor([train_set[i][2] for i in picks]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 40 == 0:
            print(f"step {step + 1} loss {loss.item():.3f}", flush=True)
    net.eval()

    def accuracy(vs):
        with torch.no_grad():
            return np.mean([net(torch.from_numpy(central(f, (len(f) - SPAN) // 2))[None]).argmax().item() == y for _, f, y in vs])
    print(f"test accuracy {accuracy(test_set):.3f}, train accuracy {accuracy(train_set):.3f}")


def moco(a):
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    train_set = [v for v in load_videos(a.dataset) if not v[0]]

    query = with_head(VideoResNet("r2plus1d_18", a.width, 3, 1, blocks=(a.blocks,) * 4))
    key = frozen_copy(query)
    queue = nn.functional.normalize(torch.randn(a.queue, 128), dim=1) if a.queue else None
    opt = torch.optim.AdamW(query.parameters(), lr=a.lr, weight_decay=1e-4)
    recent = []
    for step in range(a.steps):
        picks = rng.choice(len(train_set), 8, replace=False)
        xa, xb = [], []
        for i in picks:
            frames = train_set[i][1]
            h, w = frames.shape[1:3]
            oy, ox = rng.integers(0, h - CROP + 1), rng.integers(0, w - CROP + 1)
            xa.append(clip(frames, rng.integers(0, len(frames) - SPAN + 1), oy, ox))
            if a.augment_crop:
                oy, ox = rng.integers(0, h - CROP + 1), rng.integers(0, w - CROP + 1)
            xb.append(clip(frames, rng.integers(0, len(frames) - SPAN + 1), oy, ox))
        xa, xb = torch.from_numpy(np.stack(xa)), torch.from_numpy(np.stack(xb))
        q = nn.functional.normalize(query(xa), dim=1)
        k = shuffled_keys(key, xb, rng)
        loss = info_nce(q, k, queue, 0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        momentum_update(key, query, 0.99)
        if a.queue:
            queue = torch.cat([k, queue[:-8]])
        recent = (recent + [loss.item()])[-20:]
        if (step + 1) % 20 == 0:
            print(f"step {step + 1} loss {np.mean(recent):.3f}", flush=True)
    query.fc = nn.Identity()
    print(f"linear probe top-1 {linear_probe(query, a.dataset):.1f}% (random init: {linear_probe(pathway_backbone(a), a.dataset):.1f}%)")


def with_head(net):
    """`net` with its fc replaced by the projection head Linear-ReLU-Linear (512, 128)."""
    net.fc = nn.Sequential(nn.Linear(net.fc.in_features, 512), nn.ReLU(), nn.Linear(512, 128))
    return net


def frozen_copy(net):
    """The momentum (key) copy of `net`: no gradients."""
    key = copy.deepcopy(net)
    for p in key.parameters():
        p.requires_grad = False
    return key


def shuffled_keys(net, x, rng):
    """L2-normalised keys of batch x from `net` in training mode, its BN run over two shuffled
    halves (single-process shuffle-BN, as maclr's key_bn: shuffle), in x's order."""
    with torch.no_grad():
        order = torch.from_numpy(rng.permutation(len(x)))
        shuffled = x[order]
        k = torch.cat([net(shuffled[:len(x) // 2]), net(shuffled[len(x) // 2:])])
        return nn.functional.normalize(k[torch.argsort(order)], dim=1)


def momentum_update(key, query, momentum):
    """EMA of the query's parameters into the key's."""
    with torch.no_grad():
        for pk, pq in zip(key.parameters(), query.parameters()):
            pk.mul_(momentum).add_(pq, alpha=1 - momentum)


def pathway_backbone(a):
    torch.manual_seed(a.seed)
    net = VideoResNet("r2plus1d_18", a.width, 3, 1, blocks=(a.blocks,) * 4)
    net.fc = nn.Identity()
    return net


def flow_clip(flow, start, oy, ox):
    """(2, T, CROP, CROP) flow clip (units of the bound) from `start`, cropped at (oy, ox)."""
    return flow[start:start + SPAN:STRIDE, oy:oy + CROP, ox:ox + CROP].transpose(3, 0, 1, 2).copy()


def resized(frames, start, normalise=False):
    """(C, T, CROP, CROP): the whole frame (C channels) bilinearly resized to the crop, as maclr
    does without augmentation."""
    c = frames[start:start + SPAN:STRIDE].astype(np.float32)
    if normalise:
        c = (c / 255 - MEAN) / STD
    x = torch.from_numpy(c).permute(0, 3, 1, 2)
    return nn.functional.interpolate(x, size=(CROP, CROP), mode="bilinear", align_corners=False).permute(1, 0, 2, 3).numpy()


def info_nce(q, k, queue, temperature):
    """InfoNCE of queries q against their keys k, negatives from `queue` (or, if None, the
    batch's other keys)."""
    if queue is None:
        return nn.functional.cross_entropy(q @ k.t() / temperature, torch.arange(len(q)))
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.t()], 1) / temperature
    return nn.functional.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))


def maclr(a):
    """MaCLR as quickstart.yaml runs it (no augmentation but the crop): visual query on clip A,
    visual key on clip B; motion (frame-wise ResNet on flow) query on A's flow, key on B's;
    L = L_v + w (L_v->m + L_m->v) [+ w_m L_m]."""
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    train_set = [v for v in load_videos(a.dataset, with_flow=True) if not v[0]]

    visual = with_head(VideoResNet("r2plus1d_18", a.width, 3, 1, blocks=(a.blocks,) * 4))
    motion = with_head(FrameResNet(a.width / 2, 2, 1, blocks=(a.blocks,) * 4))
    if a.init == "torchvision":
        for net in (visual, motion):
            torchvision_init(net)
    visual_key, motion_key = frozen_copy(visual), frozen_copy(motion)
    queues = [nn.functional.normalize(torch.randn(a.queue, 128), dim=1) for _ in range(2)] if a.queue else [None, None]
    params = list(visual.parameters()) + list(motion.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=1e-4)

    recent = []
    for step in range(a.steps):
        for g in opt.param_groups:
            g["lr"] = a.lr * min(1, (step + 1) / 40) * (0.5 * (1 + math.cos(math.pi * step / a.steps)) if a.cosine else 1)
        picks = rng.choice(len(train_set), 8, replace=False)
        ra, rb, fa, fb = [], [], [], []
        for i in picks:
            _, frames, _, flow = train_set[i]
            h, w = frames.shape[1:3]
            starts = [None, None]
            if a.min_gap:  # maclr's pair sampling: a gap of at least min_gap frames
                last = len(frames) - SPAN
                gap = rng.integers(min(a.min_gap, last), last + 1)
                first = rng.integers(0, last - gap + 1)
                starts = [first, first + gap] if rng.random() < 0.5 else [first + gap, first]
            for (rgbs, flows), start in zip(((ra, fa), (rb, fb)), starts):
                oy, ox = rng.integers(0, h - CROP + 1), rng.integers(0, w - CROP + 1)
                if start is None:  # an independent start (the flow of a video's last frame is zeros)
                    start = rng.integers(0, len(frames) - SPAN)
                if a.whole_frame:
                    rgbs.append(resized(frames, start, normalise=True))
                    flows.append(resized(flow, start) * (CROP / h))
                else:
                    rgbs.append(clip(frames, start, oy, ox))
                    flows.append(flow_clip(flow, start, oy, ox))
        ra, rb, fa, fb = (torch.from_numpy(np.stack(x)) for x in (ra, rb, fa, fb))
        vq = nn.functional.normalize(visual(ra), dim=1)
        mq = nn.functional.normalize(motion(fa), dim=1)
        vk, mk = shuffled_keys(visual_key, rb, rng), shuffled_keys(motion_key, fb, rng)
        terms = [info_nce(vq, vk, queues[0], a.temperature),
                 a.cross * info_nce(vq, mk, queues[1], a.temperature),
                 a.cross * info_nce(mq, vk, queues[0], a.temperature),
                 a.motion_intra * info_nce(mq, mk, queues[1], a.temperature)]
        loss = sum(terms)
        opt.zero_grad()
        loss.backward()
        opt.step()
        momentum_update(visual_key, visual, a.momentum)
        momentum_update(motion_key, motion, a.momentum)
        with torch.no_grad():
            if a.queue:
                queues = [torch.cat([vk, queues[0][:-8]]), torch.cat([mk, queues[1][:-8]])]
        recent = (recent + [[t.item() for t in terms]])[-20:]
        if (step + 1) % 20 == 0:
            print(f"step {step + 1} v {np.mean([r[0] for r in recent]):.3f} v->m {np.mean([r[1] for r in recent]):.3f} "
                  f"m->v {np.mean([r[2] for r in recent]):.3f} m {np.mean([r[3] for r in recent]):.3f}", flush=True)
        if a.probe_every and (step + 1) % a.probe_every == 0 and step + 1 < a.steps:
            backbone = copy.deepcopy(visual)
            backbone.fc = nn.Identity()
            print(f"step {step + 1} linear probe top-1 {linear_probe(backbone, a.dataset):.1f}%", flush=True)
            visual.train()
    visual.fc = nn.Identity()
    print(f"linear probe top-1 {linear_probe(visual, a.dataset):.1f}%")


def torchvision_init(net):
    """torchvision's init of its video ResNets (maclr's): Kaiming normal fan_out for convs, BN
    (1, 0), linear layers N(0, 0.01) with zero bias."""
    for m in net.modules():
        if isinstance(m, (nn.Conv3d, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def linear_probe(net, dataset):
    """Test top-1 (%) of maclr eval's linear probe on `net`'s frozen features: 4 evenly spaced
    central clips per video averaged, standardised features, Adam 0.05, L2 1e-3, 500 full-batch
    steps."""
    net.eval()
    features = {False: [], True: []}
    labels = {False: [], True: []}
    with torch.no_grad():
        for is_test, frames, label in load_videos(dataset):
            starts = np.linspace(0, len(frames) - SPAN, 4).round().astype(int)
            x = torch.from_numpy(np.stack([central(frames, s) for s in starts]))
            features[is_test].append(net(x).mean(0).numpy())
            labels[is_test].append(label)
    xtr, xte = np.array(features[False]), np.array(features[True])
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = torch.from_numpy((xtr - mu) / sd), torch.from_numpy((xte - mu) / sd)
    ytr = torch.tensor(labels[False])
    linear = nn.Linear(xtr.shape[1], 1 + max(labels[False] + labels[True]))
    opt = torch.optim.Adam(linear.parameters(), 0.05)
    for _ in range(500):
        opt.zero_grad()
        (nn.functional.cross_entropy(linear(xtr), ytr) + 1e-3 * (linear.weight ** 2).sum()).backward()
        opt.step()
    return 100 * (linear(xte).argmax(1).numpy() == np.array(labels[True])).mean()


def probe(a):
    from safetensors.torch import load_file
    net = VideoResNet("r2plus1d_18", a.width, 3, 1, blocks=(a.blocks,) * 4)
    state = load_file(a.encoder)
    state["fc.weight"], state["fc.bias"] = net.fc.weight.detach().clone(), net.fc.bias.detach().clone()
    net.load_state_dict(state, strict=True)
    net.fc = nn.Identity()
    print(f"linear probe top-1 {linear_probe(net, a.dataset):.1f}%")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("dataset")
    t.add_argument("--steps", type=int, default=400)
    t.add_argument("--lr", type=float, default=0.001)
    t.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw")
    t.add_argument("--width", type=float, default=0.25)
    t.add_argument("--seed", type=int, default=0)

    def contrastive(name, steps, blocks):
        """A subcommand with the options moco and maclr share."""
        c = sub.add_parser(name)
        c.add_argument("dataset")
        c.add_argument("--steps", type=int, default=steps)
        c.add_argument("--lr", type=float, default=0.001)
        c.add_argument("--width", type=float, default=0.25)
        c.add_argument("--blocks", type=int, default=blocks, help="residual blocks per stage")
        c.add_argument("--queue", type=int, default=128, help="0: in-batch negatives (MoCo v3)")
        c.add_argument("--seed", type=int, default=0)
        return c
    m = contrastive("moco", steps=200, blocks=2)
    m.add_argument("--augment-crop", action="store_true")
    c = contrastive("maclr", steps=400, blocks=1)
    c.add_argument("--temperature", type=float, default=0.1)
    c.add_argument("--momentum", type=float, default=0.99)
    c.add_argument("--cross", type=float, default=1.0, help="cross-modal weight (0: visual-only)")
    c.add_argument("--motion-intra", type=float, default=0.0)
    c.add_argument("--cosine", action="store_true", help="cosine LR decay after warm-up")
    c.add_argument("--probe-every", type=int, default=0)
    c.add_argument("--min-gap", type=int, default=0, help="frames between a pair's starts, at least (maclr: 0.5 s = 8)")
    c.add_argument("--whole-frame", action="store_true", help="whole frames resized to the crop (maclr without augmentation)")
    c.add_argument("--init", choices=["pytorch", "torchvision"], default="pytorch",
                   help="PyTorch's default layer init, or torchvision's (maclr's)")
    p = sub.add_parser("probe")
    p.add_argument("dataset")
    p.add_argument("encoder")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--blocks", type=int, default=1, help="residual blocks per stage")
    a = ap.parse_args()
    torch.set_num_threads(2)
    {"train": train, "moco": moco, "maclr": maclr, "probe": probe}[a.command](a)


if __name__ == "__main__":
    main()
