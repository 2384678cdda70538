"""Table 3 against `cpnas profile`: prints, as JSON, each reading of WRN-22 and CP-NAS networks
beside the paper's figures, with the relative difference.

    python benchmarks/table3.py                               # WRN-22 rows
    python benchmarks/table3.py --genotype runs/<id>/genotype.json   # + CP-NAS small/medium/large

Two memory readings per network: `memory_mbit` is what `cpnas profile` reports (everything
model.cpnas stores: 1-bit kernels, full-precision stem and classifier, BatchNorm as scale + shift,
one beta per 1-bit output channel); `weights_only_mbit` counts conv and linear weights and biases
alone (1 or 32 bits), the reading that matches Table 3's WRN-22 rows best. WRN-22 (1-bit) is
shown twice: every conv but the stem binarized (`cpnas profile --reference wrn22 --binary`), and
with the two 1x1 downsampling shortcuts kept in full precision, as many 1-bit ResNets do.
"""

import argparse
import json

from cpnas_cli.engine.deploy.profile import Profile, profile_eval_network
from cpnas_cli.engine.deploy.references import TABLE3, WRN22_PARAMS_M, profile_reference
from cpnas_cli.engine.nn.network import NetworkSpec
from cpnas_cli.space import genotype as genotypes


def weights_only_bits(profile: Profile) -> int:
    """Conv and linear weights (+ biases) only: no BatchNorm, no 1-bit scales."""
    bits = 0
    for layer in profile.layers:
        if layer.kind == "batchnorm":
            continue
        bits += layer.params_1bit if layer.binary else 32 * layer.params_32bit
    return bits


def row(profile: Profile, paper: dict, wrn22: Profile) -> dict:
    ours = {
        "params_m": profile.params / 1e6,
        "memory_mbit": profile.memory_mbit,
        "weights_only_mbit": weights_only_bits(profile) / 1e6,
        "ops_m": profile.ops / 1e6,
        "memory_saving": wrn22.memory_bits / profile.memory_bits,
        "speedup": wrn22.ops / profile.ops,
    }
    difference = {
        "memory_mbit": ours["memory_mbit"] / paper["memory_mbit"] - 1,
        "weights_only_mbit": ours["weights_only_mbit"] / paper["memory_mbit"] - 1,
        "ops_m": ours["ops_m"] / paper["flops_m"] - 1,
    }
    return {"network": profile.network, "ours": ours, "paper": paper, "relative_difference": difference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genotype", help="a genotype.json or DARTS string file to profile at the three sizes")
    args = parser.parse_args()
    wrn22 = profile_reference("wrn22")
    rows = [
        {**row(wrn22, TABLE3["WRN-22"], wrn22), "params_paper_m": WRN22_PARAMS_M},
        row(profile_reference("wrn22", binary=True), TABLE3["WRN-22 (BONN)"], wrn22),
        row(profile_reference("wrn22", binary=True, binary_shortcuts=False), TABLE3["WRN-22 (BONN)"], wrn22),
    ]
    if args.genotype:
        genotype = genotypes.load(args.genotype)
        for size, channels in (("Small", 56), ("Medium", 72), ("Large", 112)):
            spec = NetworkSpec(in_channels=3, classes=10, channels=channels, cells=10, image_size=32)
            rows.append(row(profile_eval_network(genotype, spec), TABLE3[f"CP-NAS ({size})"], wrn22))
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
