#!/usr/bin/env python3
"""PyTorch mirror of one maclr pretraining step, for `maclr bench step` (which calls this script
with the recipe's sizes and prints both figures side by side).

The step is the MaCLR one of Sources/Pathways/MaCLR.swift on random clips (no data loading):
Visual pathway = video ResNet (torchvision's structure, scripts/make_parity_fixture.py) + head
Linear-ReLU-Linear, L2-normalised; Motion pathway = 2-D ResNet-18 on every flow frame, features
averaged over frames, + head; momentum copies of both, keys in shuffled sub-batches of 2; one
queue per modality; loss L_v + L_v->m + L_m->v (InfoNCE, temperature 0.1); backward; the
optimiser; EMA of the keys; enqueue. --temperature, --cross-weight and --motion-intra-weight
(L_v + w (L_v->m + L_m->v) + w_m L_m) follow the recipe's loss.* keys.

  --no-motion: the visual pathway alone (L_v)
  --alignment: MCL's motion alignment loss on the visual query, as Sources/Losses/
               MotionAlignment.swift: G = d(q . k)/dA (create_graph) at a conv's output
               (--alignment-layer, torchvision's name; default the last block's conv2), P = ReLU(sum_C mean_HW(G) G), a random target pooled to P's size, the
               spatio-temporal, temporal and spatial 1 - cosine terms (--alignment-terms
               weights them), times --alignment-weight; double backward

  --supervised N: the fine-tuning step instead (Recipes/finetune.yaml): the visual encoder, dropout
               (--dropout), a linear classifier of N classes, cross-entropy, the optimiser

  --tuned: channels_last(_3d) memory format (run it with
           GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184, as
           `maclr bench step` does, so malloc keeps its buffers)

Usage: /opt/torchref/bin/python benchmarks/maclr_step_torch.py --width 0.25 --blocks 1 1 1 1 \\
           --motion-width 0.125 --motion-blocks 1 1 1 1 --json out.json
"""
import argparse
import copy
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
from make_parity_fixture import FrameResNet, VideoResNet  # noqa: E402


def pathway(net, hidden, embedding):
    features = net.fc.in_features
    net.fc = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, embedding))
    return net


def info_nce(q, k, queue, tau):
    if queue.shape[0] == 0:  # queue_size 0: the batch's other keys are the negatives
        return F.cross_entropy(q @ k.t() / tau, torch.arange(q.shape[0]))
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.t()], 1) / tau
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="r2plus1d_18")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--blocks", type=int, nargs=4, default=[1, 1, 1, 1])
    ap.add_argument("--motion-width", type=float, default=0.125)
    ap.add_argument("--motion-blocks", type=int, nargs=4, default=[1, 1, 1, 1])
    ap.add_argument("--motion-channels", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--embedding", type=int, default=128)
    ap.add_argument("--queue", type=int, default=128)
    ap.add_argument("--momentum", type=float, default=0.99)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--crop", type=int, default=56)
    ap.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--tuned", action="store_true")
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-motion", action="store_true")
    ap.add_argument("--alignment", action="store_true")
    ap.add_argument("--alignment-layer", default="layer4.0.conv2")
    ap.add_argument("--alignment-weight", type=float, default=1.0)
    ap.add_argument("--alignment-terms", type=float, nargs=3, default=[1.0, 1.0, 1.0])
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--cross-weight", type=float, default=1.0)
    ap.add_argument("--motion-intra-weight", type=float, default=0.0)
    ap.add_argument("--supervised", type=int, default=0)
    ap.add_argument("--dropout", type=float, default=0.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    visual = pathway(VideoResNet(a.arch, a.width, 3, 1, a.blocks), a.hidden, a.embedding)
    if a.supervised:
        features = visual.fc[0].in_features
        visual.fc = nn.Sequential(nn.Dropout(a.dropout), nn.Linear(features, a.supervised))
    motion = pathway(FrameResNet(a.motion_width, a.motion_channels, 1, a.motion_blocks), a.hidden, a.embedding)
    fmt3d = torch.channels_last_3d if a.tuned else torch.contiguous_format
    visual = visual.to(memory_format=fmt3d)
    if a.tuned:
        motion = motion.to(memory_format=torch.channels_last)
    visual_key, motion_key = copy.deepcopy(visual), copy.deepcopy(motion)
    for p in list(visual_key.parameters()) + list(motion_key.parameters()):
        p.requires_grad = False
    queues = [F.normalize(torch.randn(a.queue, a.embedding), dim=1) for _ in range(2)]
    params = list(visual.parameters()) + ([] if a.no_motion or a.supervised else list(motion.parameters()))
    opt = (torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4) if a.optimizer == "adamw"
           else torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4))
    B, T, S = a.batch, a.frames, a.crop
    rgb = [torch.randn(B, 3, T, S, S).contiguous(memory_format=fmt3d) for _ in range(2)]
    flow = [torch.randn(B, a.motion_channels, T, S, S).contiguous(memory_format=fmt3d) for _ in range(2)]
    boundaries = torch.rand(B, T, S, S)
    captured = []
    if a.alignment:  # the conv's output, before its BN: layerL.B.convC is the conv inside Sequential(conv, BN[, ReLU])
        stage, block, conv = a.alignment_layer.split(".")
        getattr(getattr(visual, stage)[int(block)], conv)[0].register_forward_hook(lambda module, inputs, output: captured.append(output))

    def keys(net, x):
        with torch.no_grad():
            order = torch.randperm(B)
            half = B // 2
            shuffled = x[order]
            k = torch.cat([net(shuffled[:half]), net(shuffled[half:])])
            return F.normalize(k[torch.argsort(order)], dim=1)

    labels = torch.arange(B) % max(a.supervised, 1)

    def step():
        if a.supervised:
            loss = F.cross_entropy(visual(rgb[0]), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.item()
        captured.clear()
        qv = F.normalize(visual(rgb[0]), dim=1)
        kv = keys(visual_key, rgb[1])
        tau = a.temperature
        loss = info_nce(qv, kv, queues[0], tau)
        if not a.no_motion:
            qm = F.normalize(motion(flow[0]), dim=1)
            km = keys(motion_key, flow[1])
            loss = loss + a.cross_weight * (info_nce(qv, km, queues[1], tau) + info_nce(qm, kv, queues[0], tau))
            if a.motion_intra_weight > 0:
                loss = loss + a.motion_intra_weight * info_nce(qm, km, queues[1], tau)
        if a.alignment:
            act = captured[0]                                               # (B, C, T', H', W')
            g = torch.autograd.grad((qv * kv).sum(), act, create_graph=True)[0]
            p = F.relu((g.mean((3, 4), keepdim=True) * g).sum(1))             # (B, T', H', W')
            m = F.adaptive_avg_pool3d(boundaries[:, None], p.shape[1:])[:, 0]
            def cosine(x, y):
                return (F.normalize(x.flatten(1), dim=1) * F.normalize(y.flatten(1), dim=1)).sum(1)
            n, t = p.shape[:2]
            per_step = cosine(p.reshape(n * t, -1), m.reshape(n * t, -1)).reshape(n, t)
            st = ((1 - per_step) * torch.softmax(m.sum((2, 3)), 1)).sum(1).mean()
            temporal = (1 - cosine(p.sum((2, 3)), m.sum((2, 3)))).mean()
            spatial = (1 - cosine(p.mean(1), m.mean(1))).mean()
            w_st, w_t, w_s = a.alignment_terms
            loss = loss + a.alignment_weight * (w_st * st + w_t * temporal + w_s * spatial)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for key, query in ((visual_key, visual), (motion_key, motion)):
                for pk, pq in zip(key.parameters(), query.parameters()):
                    pk.mul_(a.momentum).add_(pq, alpha=1 - a.momentum)
            if a.queue:
                queues[0] = torch.cat([kv, queues[0][:-B]])
                if not a.no_motion:
                    queues[1] = torch.cat([km, queues[1][:-B]])
        return loss.item()

    visual.train(); motion.train(); visual_key.train(); motion_key.train()
    times = []
    for i in range(a.warmup + a.iters):
        start = time.perf_counter()
        step()
        if i >= a.warmup:
            times.append(time.perf_counter() - start)
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    kind = "fine-tuning" if a.supervised else "MCL" if a.alignment else "MaCLR"
    print(f"  PyTorch {kind} step ({'tuned' if a.tuned else 'default'}): median {med * 1e3:.1f} ms, "
          f"{B / med:.2f} {'clips' if a.supervised else 'clip pairs'}/s, peak RSS {rss:.2f} GiB", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"train_step": {"median_s": med, "all_s": times}, "peak_rss_GiB": rss, "torch": torch.__version__}, f)


if __name__ == "__main__":
    main()
