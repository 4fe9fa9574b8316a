#!/usr/bin/env python3
"""Makes Tests/PathwaysTests/Fixtures/maclr_step_*.safetensors: two training steps of the PyTorch
mirror of maclr (benchmarks/torch_recipe.py's MirrorModel, the code that trains the mirror's
rows in docs/results.md) on a tiny MaCLR model, for the Swift test that runs maclr's MaCLRModel, AdamW and
momentum keys on the same weights and batches and compares every number.

The key encoders' batch shuffles are drawn as maclr draws them (xoshiro256** seeded through
splitmix64, a Fisher-Yates shuffle per key batch, visual keys before motion keys), so both sides
see the same sub-batches. Each file holds (names are maclr's: visual.encoder.*, visual.head.*):
  init.<pathway>.<name>       initial weights and BN buffers, torchvision layouts
  init.queue.<modality>       initial queues (queue variant)
  step<s>.rgbA/rgbB/flowA/flowB   (N, C, T, H, W) inputs of step s (1, 2)
  step<s>.lr, step<s>.<term>  the learning rate, and each loss term (loss, loss_v, loss_v2m, ...)
  step1.grad.<pathway>.<name> gradients at step 1
  after.<pathway>.<name>      weights after step 2, key pathways included (visual_key, motion_key)
  after.queue.<modality>      queues after step 2

It also makes Tests/DataHDF5Tests/Fixtures/augment.safetensors: one video's frames and quantised
flow, and for several seeds the clip the mirror's sampler (torch_recipe.py's Clips: random resized
crop, flip, colour jitter, grayscale, blur, flow rescaling) makes of it, drawing from maclr's
generator in maclr's order, so the Swift test can compare maclr's ClipSampler pixel for pixel:
  video.rgb (T, H, W, 3) uint8 as float, video.flow (T, H, W, 2) quantised uint8 as float
  case<s>.rgb (T, crop, crop, 3) normalised, case<s>.flow (T, crop, crop, 2) in units of the bound

Usage: /opt/torchref/bin/python scripts/make_maclr_step_fixture.py [--out Tests/PathwaysTests/Fixtures]
"""
import argparse
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
from torch_recipe import Clips, MirrorModel  # noqa: E402

MASK = (1 << 64) - 1
ORDER_SEED = 11


class MaclrShuffles:
    """maclr's RandomGenerator and its key-batch shuffle (MaCLRModel.keys)."""

    def __init__(self, seed):
        z, self.s = seed, []
        for _ in range(4):
            z = (z + 0x9E3779B97F4A7C15) & MASK
            x = z
            x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
            x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
            self.s.append(x ^ (x >> 31))

    @staticmethod
    def rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & MASK

    def next(self):
        s = self.s
        result = (self.rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]
        s[2] ^= t
        s[3] = self.rotl(s[3], 45)
        return result

    def random(self):
        """maclr's RandomGenerator.uniform(): the top 24 bits."""
        return (self.next() >> 40) / float(1 << 24)

    def permutation(self, n):
        order = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.next() % (i + 1)
            order[i], order[j] = order[j], order[i]
        return np.array(order)


def recipe(queue_size):
    return {"loss.objective": "maclr", "model.arch": "r2plus1d_18", "model.width": 0.0625, "model.blocks": [1, 1, 1, 1],
            "model.motion_pathway": "frames", "model.motion_width": 0.0625, "model.motion_blocks": [1, 1, 1, 1],
            "model.head_hidden": 32, "model.embedding": 16, "model.init": "pytorch", "model.queue_size": queue_size,
            "model.momentum": 0.9, "loss.temperature": 0.1, "loss.cross_modal_weight": 0.7, "loss.motion_intra_weight": 0.5,
            "optim.optimizer": "adamw", "optim.lr": 1e-3, "optim.weight_decay": 0.1, "optim.momentum": 0.9, "optim.nesterov": False}


def maclr_names(net, prefix):
    """The pathway's state in maclr's names: encoder.<torchvision name>, head.<index>."""
    return {f"{prefix}.{'head.' + k[3:] if k.startswith('fc.') else 'encoder.' + k}": v.detach().clone().contiguous()
            for k, v in net.state_dict().items()}


def make(name, queue_size, out_dir):
    torch.manual_seed(0)
    model = MirrorModel(recipe(queue_size), classes=1)
    pathways = {"visual": model.visual, "motion": model.motion}
    tensors = {}
    for p, net in pathways.items():
        tensors.update({"init." + k: v for k, v in maclr_names(net, p).items()})
    if model.queues:
        tensors["init.queue.visual"], tensors["init.queue.motion"] = (q.clone() for q in model.queues)
    shuffles = MaclrShuffles(ORDER_SEED)
    gen = torch.Generator().manual_seed(1)
    for s, lr in ((1, 5e-4), (2, 1e-3)):
        # 32x32: the last stage's BN sees 4 x 1 x 2 x 2 values per channel in the query batch
        batch = {"rgbA": torch.randn(4, 3, 4, 32, 32, generator=gen), "rgbB": torch.randn(4, 3, 4, 32, 32, generator=gen),
                 "flowA": torch.randn(4, 2, 4, 32, 32, generator=gen), "flowB": torch.randn(4, 2, 4, 32, 32, generator=gen)}
        tensors.update({f"step{s}.{k}": v for k, v in batch.items()})
        tensors[f"step{s}.lr"] = torch.tensor([lr])

        def keep_gradients(terms):
            if s == 1:
                for p, net in pathways.items():
                    for k, param in net.named_parameters():
                        n = "head." + k[3:] if k.startswith("fc.") else "encoder." + k
                        tensors[f"step1.grad.{p}.{n}"] = param.grad.detach().clone().contiguous()

        terms = model.step(batch["rgbA"], batch["rgbB"], batch["flowA"], batch["flowB"], None, lr, shuffles, keep_gradients)
        tensors.update({f"step{s}.{k}": torch.tensor([v]) for k, v in terms.items()})
        print(f"{name} step {s}: " + ", ".join(f"{k} {v:.5f}" for k, v in sorted(terms.items())))
    for p, net in {**pathways, "visual_key": model.keys[0], "motion_key": model.keys[1]}.items():
        tensors.update({"after." + k: v for k, v in maclr_names(net, p).items()})
    if model.queues:
        tensors["after.queue.visual"], tensors["after.queue.motion"] = (q.clone() for q in model.queues)
    path = os.path.join(out_dir, f"maclr_step_{name}.safetensors")
    save_file(tensors, path, metadata={"torch": torch.__version__, "order_seed": str(ORDER_SEED)})
    print(f"wrote {path}")


AUGMENT_RECIPE = {"data.clip_frames": 3, "data.clip_stride": 1, "data.crop": 12, "data.augment": True, "data.flip": True,
                  "data.crop_scale": [0.3, 1.0], "data.color_jitter": 0.8, "data.grayscale": 0.3, "data.blur": 0.5,
                  "data.blur_sigma": [0.5, 1.5], "data.positive_gap": [0, 1]}
AUGMENT_SEEDS = 12


def make_augment(out_dir):
    gen = np.random.default_rng(3)
    t, h, w, bound = 3, 20, 24, 4.0
    rgb = gen.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    quantised = gen.integers(0, 256, (t, h, w, 2), dtype=np.uint8)
    flow = quantised.astype(np.float32) * (2 / 255) - 1  # what the mirror's load_videos gives: units of the bound
    clips = Clips(AUGMENT_RECIPE, fps=10)
    tensors = {"video.rgb": torch.from_numpy(rgb.astype(np.float32)), "video.flow": torch.from_numpy(quantised.astype(np.float32))}
    for seed in range(AUGMENT_SEEDS):
        x, f = clips.clip(rgb, flow, 0, MaclrShuffles(seed))
        tensors[f"case{seed}.rgb"] = torch.from_numpy(np.ascontiguousarray(x.transpose(1, 2, 3, 0)))
        tensors[f"case{seed}.flow"] = torch.from_numpy(np.ascontiguousarray(f.transpose(1, 2, 3, 0)))
    path = os.path.join(out_dir, "augment.safetensors")
    save_file(tensors, path, metadata={"flow_bound": str(bound), "seeds": str(AUGMENT_SEEDS)})
    print(f"wrote {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Tests", "PathwaysTests", "Fixtures"))
    ap.add_argument("--augment-out", default=os.path.join(os.path.dirname(__file__), "..", "Tests", "DataHDF5Tests", "Fixtures"))
    a = ap.parse_args()
    for folder in (a.out, a.augment_out):
        os.makedirs(folder, exist_ok=True)
    make("inbatch", 0, a.out)
    make("queue", 8, a.out)
    make_augment(a.augment_out)


if __name__ == "__main__":
    main()
