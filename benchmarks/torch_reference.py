#!/usr/bin/env python3
"""torch_reference.py - the PyTorch CPU reference for R(2+1)D-18 / R3D-18 training steps.

Usage (set-up: docs/performance.md, "Steps, the loader and pretraining"):
  $VENV/bin/python torch_reference.py --model r2plus1d_18 --B 8 --T 8 --HW 64 --mode single
  $VENV/bin/python torch_reference.py --model r2plus1d_18 --B 8 --T 16 --HW 112 --mode single --iters 2 --warmup 1
  $VENV/bin/python torch_reference.py --model r3d_18 --B 8 --T 8 --HW 64 --mode single
  $VENV/bin/python torch_reference.py --model r2plus1d_18 --B 8 --T 8 --HW 64 --mode twopath
Options: --threads N (torch.set_num_threads, default 2), --channels-last (channels_last_3d memory format),
         --impl own|torchvision (default torchvision if importable), --json out.json

Measured per configuration (median over --iters timed iterations after --warmup untimed ones):
  fwd_nograd : model.eval(), torch.no_grad() forward  (inference-style forward)
  fwd_train  : model.train(), forward with autograd recording (the forward half of a training step)
  train_step : model.train(), zero_grad + forward + loss + backward + SGD(momentum 0.9) step
FLOPs: forward conv3d + linear MACs counted with forward hooks (BN/ReLU/pool/add not counted);
       1 MAC = 2 FLOP; training step FLOPs = 3 x fwd - (dX of the very first conv, which is not needed).
       "nominal" = out_elems * Cin * kT*kH*kW (the usual count, e.g. torchvision's 40.5 GMAC/clip for
       r2plus1d_18 @16x112x112); "excl. pad" = only kernel taps that fall inside the unpadded input
       (what a padding-skipping kernel such as oneDNN's actually has to compute).
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# ----------------------------------------------------------------------------------------------
# Own R(2+1)D-18 / R3D-18 (same structure as torchvision.models.video), used if --impl own
# ----------------------------------------------------------------------------------------------


class Conv2Plus1D(nn.Sequential):
    def __init__(self, cin, cout, mid, stride=1):
        super().__init__(
            nn.Conv3d(cin, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
            nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
            nn.Conv3d(mid, cout, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False))


class Conv3DSimple(nn.Conv3d):
    def __init__(self, cin, cout, mid=None, stride=1):
        super().__init__(cin, cout, (3, 3, 3), stride, 1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, conv, stride=1, two_plus_one=True):
        super().__init__()
        # torchvision: midplanes = (in*out*27) // (in*9 + 3*out), used for both convs of the block
        mid = (cin * cout * 27) // (cin * 9 + 3 * cout)
        self.conv1 = nn.Sequential(conv(cin, cout, mid, stride), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv(cout, cout, mid), nn.BatchNorm3d(cout))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv3d(cin, cout, 1, stride, bias=False), nn.BatchNorm3d(cout))

    def forward(self, x):
        r = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + r)


class VideoResNet18(nn.Module):
    def __init__(self, kind="r2plus1d_18", in_ch=3, num_classes=128):
        super().__init__()
        if kind == "r2plus1d_18":
            conv = Conv2Plus1D
            self.stem = nn.Sequential(
                nn.Conv3d(in_ch, 45, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False), nn.BatchNorm3d(45), nn.ReLU(inplace=True),
                nn.Conv3d(45, 64, (3, 1, 1), 1, (1, 0, 0), bias=False), nn.BatchNorm3d(64), nn.ReLU(inplace=True))
        else:
            conv = Conv3DSimple
            self.stem = nn.Sequential(
                nn.Conv3d(in_ch, 64, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False), nn.BatchNorm3d(64), nn.ReLU(inplace=True))
        layers, cin = [], 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers += [BasicBlock(cin, cout, conv, stride), BasicBlock(cout, cout, conv, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        return self.fc(self.avgpool(self.layers(self.stem(x))).flatten(1))


def build(kind, in_ch, impl, num_classes=128):
    if impl == "torchvision":
        import torchvision.models.video as tvm
        m = getattr(tvm, kind)(weights=None, num_classes=num_classes)
        if in_ch != 3:  # replace first stem conv for e.g. 2-channel optical flow input
            c0 = m.stem[0]
            m.stem[0] = nn.Conv3d(in_ch, c0.out_channels, c0.kernel_size, c0.stride, c0.padding, bias=False)
        return m
    return VideoResNet18(kind, in_ch, num_classes)


# ----------------------------------------------------------------------------------------------
# FLOP counting
# ----------------------------------------------------------------------------------------------


def _valid_taps(I, O, k, s, p, d=1):
    """Sum over output positions of the number of kernel taps that land inside the (unpadded) input."""
    return sum(sum(1 for j in range(k) if 0 <= o * s - p + j * d < I) for o in range(O))


def conv_macs(mod, inp, out):
    """(nominal MACs incl. zero-padding taps, MACs excluding taps that hit zero padding)."""
    k = mod.kernel_size[0] * mod.kernel_size[1] * mod.kernel_size[2]
    cin_g = mod.in_channels // mod.groups
    nominal = out.numel() * cin_g * k
    valid = out.shape[0] * out.shape[1] * cin_g
    for dim in range(3):
        valid *= _valid_taps(inp.shape[2 + dim], out.shape[2 + dim], mod.kernel_size[dim], mod.stride[dim],
                             mod.padding[dim], mod.dilation[dim])
    return nominal, valid


def count_macs(model, x):
    """Returns (total fwd MACs nominal, total fwd MACs excluding zero-padding taps,
    first conv MACs nominal, first conv MACs valid). Counts Conv3d + Linear only."""
    recs = []

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv3d):
            recs.append(conv_macs(mod, inp[0], out))
        else:  # Linear
            m = out.numel() * mod.in_features
            recs.append((m, m))

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv3d, nn.Linear))]
    with torch.no_grad():
        model.eval()
        model(x)
    for h in hs:
        h.remove()
    return sum(r[0] for r in recs), sum(r[1] for r in recs), recs[0][0], recs[0][1]


# ----------------------------------------------------------------------------------------------
# Timing helpers
# ----------------------------------------------------------------------------------------------


def timeit(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return ts


def summary(ts):
    return {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts), "n": len(ts),
            "all_s": [round(t, 4) for t in ts]}


def info_nce(z1, z2, tau):
    """Symmetric cross-modal InfoNCE on L2-normalized embeddings, in-batch negatives."""
    z1 = F.normalize(z1, dim=1)
    z2 = F.normalize(z2, dim=1)
    logits = z1 @ z2.t() / tau
    tgt = torch.arange(z1.shape[0])
    return 0.5 * (F.cross_entropy(logits, tgt) + F.cross_entropy(logits.t(), tgt))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="r2plus1d_18", choices=["r2plus1d_18", "r3d_18"])
    ap.add_argument("--B", type=int, default=8)
    ap.add_argument("--T", type=int, default=8)
    ap.add_argument("--HW", type=int, default=64)
    ap.add_argument("--mode", default="single", choices=["single", "twopath"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=7)
    ap.add_argument("--fwd-iters", type=int, default=None)
    ap.add_argument("--impl", default=None, choices=["own", "torchvision"])
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--skip-fwd", action="store_true")
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    impl = a.impl
    if impl is None:
        try:
            import torchvision  # noqa: F401
            impl = "torchvision"
        except Exception:
            impl = "own"
    fwd_iters = a.fwd_iters or a.iters
    mf = torch.channels_last_3d if a.channels_last else torch.contiguous_format

    B, T, HW = a.B, a.T, a.HW
    res = {"model": a.model, "impl": impl, "mode": a.mode, "B": B, "T": T, "H": HW, "W": HW,
           "threads": torch.get_num_threads(), "channels_last_3d": a.channels_last,
           "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}

    if a.mode == "single":
        nets = [build(a.model, 3, impl).to(memory_format=mf)]
        xs = [torch.randn(B, 3, T, HW, HW).contiguous(memory_format=mf)]
    else:
        nets = [build(a.model, 3, impl).to(memory_format=mf), build(a.model, 2, impl).to(memory_format=mf)]
        xs = [torch.randn(B, 3, T, HW, HW).contiguous(memory_format=mf),
              torch.randn(B, 2, T, HW, HW).contiguous(memory_format=mf)]

    fwd_macs = fwd_macs_v = first_macs = first_macs_v = 0
    for n, x in zip(nets, xs):
        m, mv, f0, f0v = count_macs(n, x)
        fwd_macs += m
        fwd_macs_v += mv
        first_macs += f0
        first_macs_v += f0v
    params = sum(p.numel() for n in nets for p in n.parameters())
    fwd_flops, fwd_flops_v = 2 * fwd_macs, 2 * fwd_macs_v
    train_flops = 3 * fwd_flops - 2 * first_macs
    train_flops_v = 3 * fwd_flops_v - 2 * first_macs_v
    res.update({"params_M": params / 1e6, "fwd_GMACs_per_batch": fwd_macs / 1e9,
                "fwd_GFLOPs_per_batch": fwd_flops / 1e9, "fwd_GFLOPs_per_clip": fwd_flops / 1e9 / B,
                "fwd_GFLOPs_per_batch_nopad": fwd_flops_v / 1e9,
                "train_GFLOPs_per_batch": train_flops / 1e9, "train_GFLOPs_per_batch_nopad": train_flops_v / 1e9})
    print(f"[{a.model} {a.mode} impl={impl} B={B} T={T} HW={HW} thr={torch.get_num_threads()} "
          f"cl3d={a.channels_last}] params={params/1e6:.2f}M fwd={fwd_flops/1e9:.2f} GFLOP/batch nominal "
          f"({fwd_flops/1e9/B:.2f}/clip), {fwd_flops_v/1e9:.2f} excl. zero-pad taps; "
          f"train~{train_flops/1e9:.2f} nominal / {train_flops_v/1e9:.2f} excl. pad GFLOP/batch", flush=True)

    params_all = [p for n in nets for p in n.parameters()]
    opt = torch.optim.SGD(params_all, lr=0.01, momentum=0.9, weight_decay=1e-4)
    tgt = torch.randint(0, 128, (B,))

    def fwd_nograd():
        with torch.no_grad():
            return [n(x) for n, x in zip(nets, xs)]

    def fwd_train():
        outs = [n(x) for n, x in zip(nets, xs)]
        return outs

    def loss_of(outs):
        if a.mode == "single":
            return F.cross_entropy(outs[0], tgt)
        return info_nce(outs[0], outs[1], a.tau)

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = loss_of([n(x) for n, x in zip(nets, xs)])
        loss.backward()
        opt.step()
        return loss.item()

    if not a.skip_fwd:
        for n in nets:
            n.eval()
        ts = timeit(fwd_nograd, a.warmup, fwd_iters)
        res["fwd_nograd"] = summary(ts)
        print(f"  fwd (eval, no_grad): median {statistics.median(ts)*1e3:9.1f} ms  min {min(ts)*1e3:9.1f} ms  "
              f"-> {B/statistics.median(ts):7.2f} clips/s, {fwd_flops/statistics.median(ts)/1e9:6.1f} GFLOP/s nominal, "
              f"{fwd_flops_v/statistics.median(ts)/1e9:6.1f} excl. pad", flush=True)
        for n in nets:
            n.train()
        ts = timeit(fwd_train, a.warmup, fwd_iters)
        res["fwd_train"] = summary(ts)
        print(f"  fwd (train, autograd): median {statistics.median(ts)*1e3:7.1f} ms  min {min(ts)*1e3:9.1f} ms  "
              f"-> {B/statistics.median(ts):7.2f} clips/s, {fwd_flops/statistics.median(ts)/1e9:6.1f} GFLOP/s nominal, "
              f"{fwd_flops_v/statistics.median(ts)/1e9:6.1f} excl. pad", flush=True)
    for n in nets:
        n.train()
    ts = timeit(train_step, a.warmup, a.iters)
    res["train_step"] = summary(ts)
    med = statistics.median(ts)
    print(f"  train step (fwd+bwd+SGD): median {med*1e3:9.1f} ms  min {min(ts)*1e3:9.1f} ms  "
          f"-> {B/med:7.2f} clips/s, {train_flops/med/1e9:6.1f} GFLOP/s nominal, {train_flops_v/med/1e9:6.1f} excl. pad", flush=True)
    print("  per-iter train times (s):", [round(t, 3) for t in ts])
    import resource
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"  peak RSS: {rss:.2f} GiB", flush=True)
    res["peak_rss_GiB"] = rss
    res["train_clips_per_s"] = B / med
    res["train_GFLOP_per_s"] = train_flops / med / 1e9
    res["train_GFLOP_per_s_nopad"] = train_flops_v / med / 1e9
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
