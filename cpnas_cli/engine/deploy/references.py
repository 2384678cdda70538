"""Built-in reference networks for `cpnas profile`, and the figures of the paper's Table 3.

WRN-22 is the hand-made baseline of Tables 1 and 3: a pre-activation wide ResNet of depth 22
(three stages of three basic blocks) on 32x32 CIFAR-10 images. The variant that reproduces
Table 3 (4.33 M parameters, 647.70 M FLOPs) is the one of the 1-bit WRN literature (PCNN, BONN):
a 3x3 stem straight to 64 channels and stage widths 64-128-256 (16k-32k-64k for k = 4), so the
first stage needs no shortcut conv; stages 2 and 3 start with a 1x1 stride-2 shortcut conv.
(The original WRN-22-4 stem outputs 16 channels: 4.30 M parameters, 619 M FLOPs.)

The 1-bit twin binarizes every conv except the first (the stem) and the last layer (the
classifier), with the pre-activation's ReLU replaced by sign(), as the Child's ops do.
"""

import torch.nn as nn

from cpnas_cli.engine.nn.binary import BinaryConv2d
from cpnas_cli.errors import UserError

from .profile import Profile, profile_module

# Table 3 of the paper (CIFAR-10): memory in Mbit and "FLOPs" (= OPs for 1-bit nets) in millions.
TABLE3 = {
    "WRN-22": {"memory_mbit": 138.27, "flops_m": 647.70, "memory_saving": 1.0, "speedup": 1.0},
    "WRN-22 (BONN)": {"memory_mbit": 5.71, "flops_m": 17.03, "memory_saving": 24.19, "speedup": 28.03},
    "CP-NAS (Small)": {"memory_mbit": 3.32, "flops_m": 12.89, "memory_saving": 41.56, "speedup": 50.24},
    "CP-NAS (Medium)": {"memory_mbit": 4.85, "flops_m": 18.30, "memory_saving": 27.93, "speedup": 35.39},
    "CP-NAS (Large)": {"memory_mbit": 11.51, "flops_m": 38.67, "memory_saving": 12.01, "speedup": 16.75},
}
WRN22_PARAMS_M = 4.33  # Table 1

WRN22_WIDTHS = (64, 128, 256)
WRN22_BLOCKS = 3  # per stage: (22 - 4) / 6


class PreActBlock(nn.Module):
    """BN, activation, 3x3 conv, BN, activation, 3x3 conv, plus the input (or a 1x1 conv of it)."""

    def __init__(self, c_in: int, c_out: int, stride: int, binary: bool, binary_shortcut: bool):
        super().__init__()
        conv = BinaryConv2d if binary else nn.Conv2d
        self.bn1, self.bn2 = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
        # A 1-bit conv binarizes its own input; the full-precision block uses ReLU instead.
        self.act = nn.Identity() if binary else nn.ReLU()
        self.conv1 = conv(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.conv2 = conv(c_out, c_out, 3, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            shortcut_conv = BinaryConv2d if binary and binary_shortcut else nn.Conv2d
            self.shortcut = shortcut_conv(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x):
        pre = self.act(self.bn1(x))
        y = self.conv2(self.act(self.bn2(self.conv1(pre))))
        return y + (self.shortcut(pre) if self.shortcut is not None else x)


class WideResNet22(nn.Module):
    def __init__(self, binary: bool = False, classes: int = 10, binary_shortcuts: bool = True):
        super().__init__()
        self.stem = nn.Conv2d(3, WRN22_WIDTHS[0], 3, padding=1, bias=False)
        blocks, c_in = [], WRN22_WIDTHS[0]
        for stage, width in enumerate(WRN22_WIDTHS):
            for b in range(WRN22_BLOCKS):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(PreActBlock(c_in, width, stride, binary, binary_shortcuts))
                c_in = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(c_in, classes)

    def forward(self, x):
        return self.classifier(self.head(self.blocks(self.stem(x))))


REFERENCES = ("wrn22",)


def profile_reference(name: str, binary: bool = False, binary_shortcuts: bool = True) -> Profile:
    """Profile a built-in reference on CIFAR-10 input (3x32x32, 10 classes)."""
    if name not in REFERENCES:
        raise UserError(f"unknown reference {name!r}", f"use one of: {', '.join(REFERENCES)}")
    net = WideResNet22(binary, binary_shortcuts=binary_shortcuts).to("meta")
    blocks = {
        f"blocks.{i}": f"stage {i // WRN22_BLOCKS + 1} block {i % WRN22_BLOCKS + 1}"
        for i in range(len(WRN22_WIDTHS) * WRN22_BLOCKS)
    }
    blocks.update(stem="stem", head="head", classifier="classifier")
    label = "WRN-22 (1-bit)" if binary else "WRN-22"
    if binary and not binary_shortcuts:
        label = "WRN-22 (1-bit, full-precision shortcuts)"
    return profile_module(net, (3, 32, 32), label, blocks)
