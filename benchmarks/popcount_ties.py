"""Why the Child's 1-bit convs are exact: prints, as JSON, how far an integer XNOR-popcount
runtime (beta x conv(sign x, sign W)) is from the float formula of version-1 model files
(conv(sign x, beta x sign W) in float), and that the exact Child (version 2) is not.

    python benchmarks/popcount_ties.py

1. Single 1-bit convs on random inputs: the share of outputs whose exact sum is 0, the share of
   those the float formula returns as non-zero, and the share of output signs that differ.
2. A 5-cell Child trained for 8 steps on the embedded sample (as in tests/test_export.py), once
   with the float formula (as before exact semantics) and once exact (today's): test labels of
   the Child against the same network run as popcount x beta.
"""

import dataclasses
import json

import torch
import torch.nn.functional as F

from cpnas_cli.data import load_dataset, normalize
from cpnas_cli.engine.nn.binary import BinaryConv2d, channel_scale, hard_sign
from cpnas_cli.engine.nn.network import NetworkSpec
from cpnas_cli.space import genotype as genotypes

GENOTYPE = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('dil_conv_5x5', 1), ('avg_pool_3x3', 0), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('sep_conv_5x5', 3), ('dil_conv_3x3', 2), ('skip_connect', 4)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('skip_connect', 0), ('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('dil_conv_3x3', 2), "
    "('avg_pool_3x3', 1), ('sep_conv_3x3', 3), ('dil_conv_5x5', 0), ('skip_connect', 4)], reduce_concat=[2, 3, 4, 5])"
)


def single_conv(channels: int, kernel: int, groups: int) -> dict:
    x, w = torch.randn(8, channels, 16, 16), torch.randn(64, channels // groups, kernel, kernel)
    beta = channel_scale(w)
    simulated = F.conv2d(hard_sign(x), beta * hard_sign(w), padding=kernel // 2, groups=groups)
    popcount = F.conv2d(hard_sign(x), hard_sign(w), padding=kernel // 2, groups=groups)  # exact integers
    zero = popcount == 0
    return {
        "conv": f"{channels}->64 {kernel}x{kernel} groups {groups}",
        "exact_zero_share": zero.float().mean().item(),
        "nonzero_residue_share_of_those": (simulated[zero] != 0).float().mean().item(),
        "sign_differs_share": (hard_sign(simulated) != hard_sign(popcount)).float().mean().item(),
    }


def popcount_forward(self, x):
    """BinaryConv2d.forward as an XNOR device computes it: integer sums, then beta."""
    signs = hard_sign(self.weight)
    out = F.conv2d(hard_sign(x), signs, None, self.stride, self.padding, self.dilation, self.groups)
    return out * channel_scale(self.weight).view(1, -1, 1, 1)


@torch.no_grad()
def labels(net, images):
    return torch.cat([net(images[i : i + 500])[0].argmax(1) for i in range(0, len(images), 500)])


def trained_child(exact: bool) -> dict:
    torch.manual_seed(0)
    data = load_dataset("embedded")
    spec = NetworkSpec(in_channels=1, classes=10, channels=6, cells=5, image_size=28)
    spec = dataclasses.replace(spec, exact=exact)
    child = spec.build(genotypes.from_darts(GENOTYPE), binary=True)
    optimizer = torch.optim.Adam(child.parameters(), lr=0.01)
    for step in range(8):
        x, y = normalize(data.train_images[step * 64 : (step + 1) * 64]), data.train_labels[step * 64 : (step + 1) * 64]
        loss = F.cross_entropy(child(x)[0], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    child.eval()
    images = normalize(data.test_images)
    simulated = labels(child, images)
    original = BinaryConv2d.forward
    BinaryConv2d.forward = popcount_forward
    try:
        popcount = labels(child, images)
    finally:
        BinaryConv2d.forward = original
    return {
        "child": "exact (version 2)" if exact else "float formula (version 1)",
        "test_images": len(images),
        "labels_that_differ": int((simulated != popcount).sum()),
        "accuracy_simulated": (simulated == data.test_labels).float().mean().item(),
        "accuracy_popcount": (popcount == data.test_labels).float().mean().item(),
    }


def main() -> None:
    torch.manual_seed(0)
    convs = [single_conv(64, 1, 1), single_conv(64, 3, 64), single_conv(48, 3, 1)]
    children = [trained_child(exact=False), trained_child(exact=True)]
    print(json.dumps({"single_convs": convs, "trained_children": children}, indent=2))


if __name__ == "__main__":
    main()
