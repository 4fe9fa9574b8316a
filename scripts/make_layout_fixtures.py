#!/usr/bin/env python3
"""Makes the weight-layout fixtures under Tests/BackbonesTests/Fixtures/layouts: video ResNets
written as their libraries write them, so the tests can read them without Python.

Each case is a narrow network built from the library's own modules, its weights and BN
statistics random, saved with safetensors.torch.save_file and no metadata (what a user has):
  torchvision_r2plus1d_18.safetensors   the torchvision mirror of make_parity_fixture.py
  torchvision_r3d_18.safetensors        (names checked there against torchvision itself)
  pytorchvideo_r2plus1d_18.safetensors  pytorchvideo's Net / ResNetBasicStem / ResStage / ResBlock
  pytorchvideo_r3d_18.safetensors       and Conv2plus1d(conv_xy_first=True); branch2 has two convs
  mmaction2_r3d_18.safetensors          mmaction2's ResNet3d(depth=18, with_pool1=False,
                                        temporal_strides=(1, 2, 2, 2)) inside a recognizer's
                                        state dict (backbone.*, cls_head.fc_cls.*)
Beside each, <name>.expected.safetensors holds `input` (N, C, T, H, W) and `features` (N, d):
the library's network in eval mode, globally average-pooled before its head.

Every case is also checked here to be torchvision's network: its weights copied into the
torchvision mirror give the same features (1e-5 relative), so a layout's names are all that differ.

Usage (pytorchvideo 0.1.5 and mmaction2 1.2.0 importable, e.g. from their unpacked sdists with
fvcore, iopath, mmengine, mmcv-lite and einops installed):
  PYTHONPATH=pytorchvideo-0.1.5:mmaction2-1.2.0 /opt/torchref/bin/python scripts/make_layout_fixtures.py
"""
import argparse
import os
import sys

import torch
import torch.nn as nn
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_parity_fixture import VideoResNet as TorchvisionMirror, randomize, scaled  # noqa: E402

WIDTH = {"torchvision_r2plus1d_18": 0.0625, "torchvision_r3d_18": 6 / 64, "pytorchvideo_r2plus1d_18": 0.0625,
         "pytorchvideo_r3d_18": 0.0625, "mmaction2_r3d_18": 0.0625}
BLOCKS = (1, 2, 1, 1)
CLASSES = 5


def mid_planes(cin, planes):
    return (cin * planes * 27) // (cin * 9 + 3 * planes)


def pytorchvideo_net(kind, width, blocks_per_stage=BLOCKS):
    from pytorchvideo.layers.convolutions import Conv2plus1d
    from pytorchvideo.models.head import ResNetBasicHead
    from pytorchvideo.models.net import Net
    from pytorchvideo.models.resnet import ResBlock, ResStage
    from pytorchvideo.models.stem import ResNetBasicStem

    def conv(cin, cout, mid, kernel, stride):
        """A (2+1)D conv, spatial first, or a full 3-D conv."""
        kt, kh = kernel
        if kind == "r3d_18":
            return nn.Conv3d(cin, cout, (kt, kh, kh), (stride[0], stride[1], stride[1]), (kt // 2, kh // 2, kh // 2), bias=False)
        return Conv2plus1d(
            conv_xy=nn.Conv3d(cin, mid, (1, kh, kh), (1, stride[1], stride[1]), (0, kh // 2, kh // 2), bias=False),
            norm=nn.BatchNorm3d(mid), activation=nn.ReLU(),
            conv_t=nn.Conv3d(mid, cout, (kt, 1, 1), (stride[0], 1, 1), (kt // 2, 0, 0), bias=False),
            conv_xy_first=True)

    class BasicBranch(nn.Module):
        """pytorchvideo has bottleneck branches only; a basic one in its naming (conv_a, norm_a, ...)."""

        def __init__(self, cin, planes, stride):
            super().__init__()
            # torchvision sizes both (2+1)D convs of a block by its input and output planes
            mid = mid_planes(cin, planes)
            self.conv_a = conv(cin, planes, mid, (3, 3), (stride, stride))
            self.norm_a = nn.BatchNorm3d(planes)
            self.act_a = nn.ReLU()
            self.conv_b = conv(planes, planes, mid, (3, 3), (1, 1))
            self.norm_b = nn.BatchNorm3d(planes)

        def forward(self, x):
            return self.norm_b(self.conv_b(self.act_a(self.norm_a(self.conv_a(x)))))

    planes = [scaled(p, width) for p in (64, 128, 256, 512)]
    stem_conv = (nn.Conv3d(3, planes[0], (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False) if kind == "r3d_18"
                 else conv(3, planes[0], scaled(45, width), (3, 7), (1, 2)))
    blocks = [ResNetBasicStem(conv=stem_conv, norm=nn.BatchNorm3d(planes[0]), activation=nn.ReLU(), pool=None)]
    cin = planes[0]
    for i, p in enumerate(planes):
        res = []
        for j in range(blocks_per_stage[i]):
            stride = 2 if (i > 0 and j == 0) else 1
            shortcut = stride != 1 or cin != p
            res.append(ResBlock(
                branch1_conv=nn.Conv3d(cin, p, 1, stride, bias=False) if shortcut else None,
                branch1_norm=nn.BatchNorm3d(p) if shortcut else None,
                branch2=BasicBranch(cin, p, stride), activation=nn.ReLU(), branch_fusion=lambda a, b: a + b))
            cin = p
        blocks.append(ResStage(res_blocks=nn.ModuleList(res)))
    blocks.append(ResNetBasicHead(pool=nn.AdaptiveAvgPool3d(1), proj=nn.Linear(cin, CLASSES)))
    net = Net(blocks=nn.ModuleList(blocks))

    def features(x):
        for b in net.blocks[:-1]:
            x = b(x)
        return x.mean((2, 3, 4))
    return net, features


def mmaction2_net(width, blocks_per_stage=BLOCKS):
    from mmaction.models.backbones.resnet3d import ResNet3d
    backbone = ResNet3d(depth=18, pretrained=None, base_channels=scaled(64, width), with_pool1=False, with_pool2=False,
                        temporal_strides=(1, 2, 2, 2), stage_blocks=blocks_per_stage, conv_cfg=dict(type=nn.Conv3d),
                        norm_cfg=dict(type=nn.BatchNorm3d), act_cfg=dict(type=nn.ReLU))
    recognizer = nn.Module()
    recognizer.backbone = backbone
    recognizer.cls_head = nn.Module()
    recognizer.cls_head.fc_cls = nn.Linear(scaled(512, width), CLASSES)
    return recognizer, lambda x: backbone(x).mean((2, 3, 4))


def to_torchvision_names(layout, kind, state):
    """The case's state dict under torchvision's names (the mapping maclr's WeightLayout holds)."""
    if layout == "torchvision":
        return state
    out = {}
    for key, value in state.items():
        k = key
        if layout == "mmaction2":
            if k.startswith("cls_head."):
                k = k.replace("cls_head.fc_cls.", "fc.")
            else:
                k = k[len("backbone."):]
                k = k.replace("conv1.conv.", "stem.0.", 1) if k.startswith("conv1.") else k
                k = k.replace("conv1.bn.", "stem.1.", 1) if k.startswith("conv1.") else k
                for conv in ("conv1", "conv2"):
                    k = k.replace(f".{conv}.conv.", f".{conv}.0.").replace(f".{conv}.bn.", f".{conv}.1.")
                k = k.replace(".downsample.conv.", ".downsample.0.").replace(".downsample.bn.", ".downsample.1.")
        else:
            parts = k.split(".")
            if parts[1] == "5":
                k = "fc." + parts[-1]
            elif parts[1] == "0":
                inner = ".".join(parts[2:-1])
                stem = ({"conv": "0", "norm": "1"} if kind == "r3d_18"
                        else {"conv.conv_xy": "0", "conv.norm": "1", "conv.conv_t": "3", "norm": "4"})
                k = f"stem.{stem[inner]}.{parts[-1]}"
            else:
                stage, block, inner = parts[1], parts[3], ".".join(parts[4:-1])
                table = {"branch1_conv": "downsample.0", "branch1_norm": "downsample.1"}
                for letter, conv in (("a", "conv1"), ("b", "conv2")):
                    table[f"branch2.conv_{letter}"] = f"{conv}.0"
                    table[f"branch2.conv_{letter}.conv_xy"] = f"{conv}.0.0"
                    table[f"branch2.conv_{letter}.norm"] = f"{conv}.0.1"
                    table[f"branch2.conv_{letter}.conv_t"] = f"{conv}.0.3"
                    table[f"branch2.norm_{letter}"] = f"{conv}.1"
                k = f"layer{stage}.{block}.{table[inner]}.{parts[-1]}"
        out[k] = value
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Tests", "BackbonesTests", "Fixtures", "layouts"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    gen = torch.Generator().manual_seed(7)
    for name, width in WIDTH.items():
        layout, kind = name.split("_", 1)
        if layout == "torchvision":
            net = TorchvisionMirror(kind, width, in_ch=3, classes=CLASSES, blocks=BLOCKS)

            def features(x, net=net):
                x = net.stem(x)
                for i in range(4):
                    x = getattr(net, f"layer{i + 1}")(x)
                return x.mean((2, 3, 4))
        elif layout == "pytorchvideo":
            net, features = pytorchvideo_net(kind, width)
        else:
            net, features = mmaction2_net(width)
        randomize(net, gen)
        net.eval()
        x = torch.randn(2, 3, 4, 32, 32, generator=gen)
        with torch.no_grad():
            f = features(x)
        state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}

        mirror = TorchvisionMirror(kind, width, in_ch=3, classes=CLASSES, blocks=BLOCKS).eval()
        mirror.load_state_dict(to_torchvision_names(layout, kind, state), strict=True)
        with torch.no_grad():
            g = mirror.stem(x)
            for i in range(4):
                g = getattr(mirror, f"layer{i + 1}")(g)
            g = g.mean((2, 3, 4))
        error = ((f - g).abs().max() / f.abs().max()).item()
        assert error < 1e-5, f"{name}: the torchvision mirror differs by {error}"

        save_file(state, os.path.join(args.out, f"{name}.safetensors"))
        save_file({"input": x.contiguous(), "features": f.contiguous()}, os.path.join(args.out, f"{name}.expected.safetensors"))
        print(f"{name}: {len(state)} tensors, features {tuple(f.shape)}, same as torchvision's network to {error:.1e}")


if __name__ == "__main__":
    main()
