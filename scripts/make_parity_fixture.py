#!/usr/bin/env python3
"""Makes the PyTorch parity fixtures under Tests/BackbonesTests/Fixtures.

For torchvision's r2plus1d_18, r3d_18 and a frame-wise resnet18 (the Motion pathway), at a
narrow width so the files stay small, it writes one safetensors file holding:
  model.<name>        weights in torchvision names and layouts (random, BN stats random too)
  input               (N, C, T, H, W) clip
  eval_output         model.eval() output (fc logits)
  train_output        model.train() output (batch statistics)
  loss_weights        r, the training-mode loss is sum(train_output * r)
  grad.<name>         d loss / d parameter for every parameter
The narrow networks are a mirror of torchvision's classes with a width multiplier; at width 1
the mirror is checked against torchvision itself (strict load of the mirror's state dict, same
output), so the narrow variants have torchvision's exact structure and names.

Usage: /opt/torchref/bin/python scripts/make_parity_fixture.py [--out Tests/BackbonesTests/Fixtures]
"""
import argparse
import math
import os

import torch
import torch.nn as nn
from safetensors.torch import save_file


def scaled(c, w):
    return max(1, int(math.floor(c * w + 0.5)))


class Conv2Plus1D(nn.Sequential):
    def __init__(self, cin, cout, mid, stride=1):
        super().__init__(
            nn.Conv3d(cin, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
            nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
            nn.Conv3d(mid, cout, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False))


class VideoBlock(nn.Module):
    def __init__(self, kind, cin, planes, stride):
        super().__init__()
        if kind == "r2plus1d_18":
            mid = (cin * planes * 27) // (cin * 9 + 3 * planes)
            c1, c2 = Conv2Plus1D(cin, planes, mid, stride), Conv2Plus1D(planes, planes, mid)
        else:
            c1 = nn.Conv3d(cin, planes, 3, stride, 1, bias=False)
            c2 = nn.Conv3d(planes, planes, 3, 1, 1, bias=False)
        self.conv1 = nn.Sequential(c1, nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(c2, nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv3d(cin, planes, 1, stride, bias=False), nn.BatchNorm3d(planes))

    def forward(self, x):
        r = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + r)


class VideoResNet(nn.Module):
    def __init__(self, kind, width=1.0, in_ch=3, classes=400, blocks=(2, 2, 2, 2)):
        super().__init__()
        planes = [scaled(p, width) for p in (64, 128, 256, 512)]
        if kind == "r2plus1d_18":
            mid = scaled(45, width)
            self.stem = nn.Sequential(
                nn.Conv3d(in_ch, mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False), nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
                nn.Conv3d(mid, planes[0], (3, 1, 1), 1, (1, 0, 0), bias=False), nn.BatchNorm3d(planes[0]), nn.ReLU(inplace=True))
        else:
            self.stem = nn.Sequential(nn.Conv3d(in_ch, planes[0], (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
                                      nn.BatchNorm3d(planes[0]), nn.ReLU(inplace=True))
        cin = planes[0]
        for i, p in enumerate(planes):
            stage = []
            for j in range(blocks[i]):
                stage.append(VideoBlock(kind, cin, p, 2 if (i > 0 and j == 0) else 1))
                cin = p
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.stem(x)
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(self.avgpool(x).flatten(1))


class FrameBlock(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        r = x if self.downsample is None else self.downsample(x)
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + r)


class FrameResNet(nn.Module):
    """torchvision resnet18 applied to every frame; features averaged over frames."""

    def __init__(self, width=1.0, in_ch=2, classes=1000, blocks=(2, 2, 2, 2)):
        super().__init__()
        planes = [scaled(p, width) for p in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_ch, planes[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = planes[0]
        for i, p in enumerate(planes):
            stage = []
            for j in range(blocks[i]):
                stage.append(FrameBlock(cin, p, 2 if (i > 0 and j == 0) else 1))
                cin = p
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):  # x (N, C, T, H, W)
        n, c, t, h, w = x.shape
        f = x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
        f = self.maxpool(self.relu(self.bn1(self.conv1(f))))
        for i in range(4):
            f = getattr(self, f"layer{i + 1}")(f)
        f = self.avgpool(f).flatten(1).reshape(n, t, -1).mean(1)
        return self.fc(f)


def randomize(model, gen):
    """Random weights with sensible scale, random BN statistics (so eval mode is not identity)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv3d, nn.Conv2d)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * math.sqrt(2.0 / fan_in))
            elif isinstance(m, (nn.BatchNorm3d, nn.BatchNorm2d)):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
                m.num_batches_tracked.fill_(3)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / math.sqrt(m.in_features))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))


def check_mirror_against_torchvision():
    import torchvision.models as tvm
    import torchvision.models.video as tvv
    gen = torch.Generator().manual_seed(0)
    for kind in ("r2plus1d_18", "r3d_18"):
        ours = VideoResNet(kind).eval()
        randomize(ours, gen)
        ref = getattr(tvv, kind)(weights=None).eval()
        ref.load_state_dict(ours.state_dict(), strict=True)
        x = torch.randn(1, 3, 4, 32, 32, generator=gen)
        with torch.no_grad():
            d = (ours(x) - ref(x)).abs().max().item()
        assert d < 1e-5, f"{kind} mirror differs from torchvision by {d}"
        print(f"mirror of torchvision {kind}: strict load ok, max |diff| {d:.2e}")
    ours = FrameResNet(in_ch=3).eval()
    randomize(ours, gen)
    ref = tvm.resnet18(weights=None).eval()
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(1, 3, 1, 64, 64, generator=gen)
    with torch.no_grad():
        d = (ours(x) - ref(x[:, :, 0])).abs().max().item()
    assert d < 1e-5, f"resnet18 mirror differs by {d}"
    print(f"mirror of torchvision resnet18: strict load ok, max |diff| {d:.2e}")


def make(name, model, x, out_dir, gen):
    randomize(model, gen)
    state = {f"model.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    model.eval()
    with torch.no_grad():
        eval_out = model(x)
    model.train()
    train_out = model(x)
    r = torch.randn(train_out.shape, generator=gen)
    (train_out * r).sum().backward()
    tensors = dict(state)
    tensors["input"] = x.contiguous()
    tensors["eval_output"] = eval_out.contiguous()
    tensors["train_output"] = train_out.detach().contiguous()
    tensors["loss_weights"] = r
    for k, p in model.named_parameters():
        tensors[f"grad.{k}"] = p.grad.detach().clone().contiguous()
    path = os.path.join(out_dir, f"{name}.safetensors")
    save_file(tensors, path, metadata={"torch": torch.__version__})
    print(f"wrote {path}: {sum(p.numel() for p in model.parameters())} parameters, output {tuple(eval_out.shape)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Tests", "BackbonesTests", "Fixtures"))
    a = ap.parse_args()
    torch.manual_seed(0)
    check_mirror_against_torchvision()
    gen = torch.Generator().manual_seed(1)
    width = 0.0625
    # Inputs large enough that the last stage's BN sees >= 16 values per channel: with 2 values a
    # train-mode BN's true input gradient is exactly zero and both frameworks return rounding noise.
    x = torch.randn(4, 3, 8, 32, 32, generator=gen)
    make("r2plus1d_18_w0625", VideoResNet("r2plus1d_18", width, classes=10), x, a.out, gen)
    make("r3d_18_w0625", VideoResNet("r3d_18", width, classes=10), x, a.out, gen)
    flow = torch.randn(2, 2, 4, 64, 64, generator=gen)
    make("resnet18_frames_w0625", FrameResNet(width, in_ch=2, classes=10), flow, a.out, gen)


if __name__ == "__main__":
    main()
