"""The CPU fast paths of engine/nn/layers.py and FactorizedReduce against torch's own kernels, as JSON.

    python benchmarks/layers.py [--batch 128] [--repeats 20]

Each row: one forward + backward at a cell's shape (channels-last, as the networks run), the
median milliseconds of torch's kernel and of ours, their ratio, and the largest difference of
the outputs. Ratios measured in one process are what to compare; run it alone on the machine.
"""

import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from cpnas_cli.engine.nn.binary import hard_sign, reconstructed_kernel
from cpnas_cli.engine.nn.layers import BatchNorm2d, Conv2d
from cpnas_cli.engine.nn.ops import FactorizedReduce, Style

CHANNELS_LAST = torch.channels_last


def median_ms(step, repeats: int) -> float:
    for _ in range(3):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1000


def compare(name, shape, torch_layer, our_layer, repeats) -> dict:
    x = torch.randn(*shape).contiguous(memory_format=CHANNELS_LAST).requires_grad_()
    theirs = median_ms(lambda: torch_layer(x).sum().backward(), repeats)
    ours = median_ms(lambda: our_layer(x).sum().backward(), repeats)
    with torch.no_grad():
        diff = (torch_layer(x) - our_layer(x)).abs().max().item()
    return {
        "layer": name,
        "input": list(shape),
        "torch_ms": round(theirs, 2),
        "ours_ms": round(ours, 2),
        "speedup": round(theirs / ours, 2),
        "max_abs_diff": diff,
    }


def dilated(c, kernel, stride, groups):
    ours = Conv2d(c, c, kernel, stride, kernel - 1, dilation=2, groups=groups, bias=False)
    theirs = nn.Conv2d(c, c, kernel, stride, kernel - 1, dilation=2, groups=groups, bias=False)
    theirs.load_state_dict(ours.state_dict())
    return theirs.to(memory_format=CHANNELS_LAST), ours.to(memory_format=CHANNELS_LAST)


def batchnorm(c):
    return nn.BatchNorm2d(c), BatchNorm2d(c)


def factorized_reduce(c):
    """DARTS' formulation (stride-2 convs on the map and on its one-pixel offset) against ours."""
    ours = FactorizedReduce(c, c, Style(binary=True)).to(memory_format=CHANNELS_LAST)

    def theirs(x):
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        halves = [
            F.conv2d(hard_sign(t), reconstructed_kernel(conv.weight), stride=2)
            for conv, t in ((ours.conv_a, x), (ours.conv_b, shifted))
        ]
        return ours.bn(torch.cat(halves, dim=1))

    return theirs, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    n, r = args.batch, args.repeats
    # depth-wise (the paper's ops) and 16 channels per group (group_width: 16, docs/ops.md)
    rows = [
        compare(
            f"dil_conv {k}x{k} {'dw' if g == c else f'{c // g} groups'} stride {s}",
            (n, c, h, h),
            *dilated(c, k, s, g),
            r,
        )
        for c, h, k, s in [(32, 14, 5, 2), (32, 14, 3, 2), (32, 7, 5, 1), (32, 7, 3, 1), (64, 4, 3, 1), (64, 4, 5, 1)]
        for g in (c, c // 16)
    ]
    rows += [
        compare("batchnorm (batch statistics)", (n, c, h, h), *batchnorm(c), r) for c, h in [(48, 14), (32, 7), (64, 4)]
    ]
    rows += [
        compare("factorized reduce (1-bit)", (n, c, h, h), *factorized_reduce(c), r) for c, h in [(32, 14), (64, 7)]
    ]
    print(json.dumps({"threads": torch.get_num_threads(), "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
