"""Packed-model size against the profile: prints, as JSON, for a genotype at the paper's three
CIFAR-10 sizes, the size of model.cpnas (header and data) beside `cpnas profile`'s memory figure,
the size of the training checkpoint, and whether the packed network reproduces the Child.

    python benchmarks/packed_size.py --genotype runs/<id>/genotype.json

The Child is freshly initialised with random BatchNorm statistics (sizes do not depend on
training); it is compared with its packed form on 64 random CIFAR-sized images.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from cpnas_cli.engine.deploy.packing import load_packed, pack_checkpoint
from cpnas_cli.engine.nn.network import NetworkSpec
from cpnas_cli.engine.train.model_file import ModelInfo, save_model
from cpnas_cli.space import genotype as genotypes


def random_statistics(net: torch.nn.Module) -> None:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2)


@torch.no_grad()
def measure(genotype, channels: int, folder: Path) -> dict:
    spec = NetworkSpec(in_channels=3, classes=10, channels=channels, cells=10, image_size=32, auxiliary=True)
    child = spec.build(genotype, binary=True)
    random_statistics(child)
    checkpoint, packed = folder / f"c{channels}.safetensors", folder / f"c{channels}.cpnas"
    save_model(checkpoint, ModelInfo(genotype, spec, [str(i) for i in range(10)], "cifar10"), child.eval())
    start = time.perf_counter()
    figures = pack_checkpoint(checkpoint, packed)
    pack_seconds = time.perf_counter() - start
    start = time.perf_counter()
    _, network = load_packed(packed)
    load_seconds = time.perf_counter() - start
    x = torch.randn(64, 3, 32, 32)
    expected, got = child(x)[0], network(x)[0]
    return {
        "channels": channels,
        **figures,
        "checkpoint_bytes": checkpoint.stat().st_size,
        "pack_seconds": round(pack_seconds, 3),
        "load_seconds": round(load_seconds, 3),
        "logits_bitwise_equal": bool(torch.equal(expected, got)),
        "max_abs_logit_difference": float((expected - got).abs().max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genotype", required=True, help="a genotype.json or DARTS string file")
    args = parser.parse_args()
    torch.manual_seed(0)
    genotype = genotypes.load(args.genotype)
    with tempfile.TemporaryDirectory() as folder:
        print(json.dumps([measure(genotype, c, Path(folder)) for c in (56, 72, 112)], indent=2))


if __name__ == "__main__":
    main()
