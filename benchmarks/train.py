"""Training throughput of a preset's evaluation network, printed as JSON (images per second).

    python benchmarks/train.py                                   # quick preset, DARTS V2 cells
    python benchmarks/train.py --preset fashion-mnist --genotype runs/<id>/genotype.json
    python benchmarks/train.py --preset fashion-mnist --set train.size=medium   # a candidate recipe

Measured on synthetic batches of the preset's image shape, after warm-up steps, in one process,
so the ratios between the readings are what to compare (the machine class is shared and noisy):
  child_only      a 1-bit Child step alone (train.parent=none, CP loss off)
  child_parent    a joint Parent step + a Child step on Eq. 4 (the default training)
  cp_loss_cost    child_parent with the CP terms switched off, over child_parent with them on
  evaluation      forward passes of Child and Parent in eval mode (the per-epoch test)
With --exact-vs-float R it measures instead the Child's 1-bit convs in their two formulas on the
same networks, step by step interleaved, R repeats of --steps steps: exact (beta * (sign x ⊛
sign W), today's) against float (sign x ⊛ beta·sign W, the formula of version-1 model files),
child_only and child_parent steps; ratio = exact / float images per second (of the medians, and
the median of the repeats' ratios).
Run it under `flock /tmp/cpnas-cpu.lock` on a shared machine.
"""

import argparse
import dataclasses
import json
import statistics
import time

import torch

from cpnas_cli.config import load_config
from cpnas_cli.data import load_configured
from cpnas_cli.engine.nn.binary import BinaryConv2d
from cpnas_cli.engine.train.pair import TrainingPair
from cpnas_cli.engine.train.trainer import network_spec
from cpnas_cli.space import genotype as genotypes

DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
    "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


def images_per_second(step, batch_size: int, steps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return round(batch_size * steps / (time.perf_counter() - start), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--genotype", help="genotype.json or DARTS string file (default: DARTS V2 cells)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as cpnas train --set")
    parser.add_argument("--exact-vs-float", type=int, default=0, metavar="R", help="compare 1-bit formulas, R times")
    args = parser.parse_args()
    config = load_config(args.preset, sets=[*args.set, "device=cpu"])
    genotype = genotypes.load(args.genotype) if args.genotype else genotypes.from_darts(DARTS_V2)
    data = load_configured(config.data)
    cfg = config.train
    spec = network_spec(cfg, data)
    b = cfg.batch_size
    x = torch.randn(b, data.in_channels, data.image_size, data.image_size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, data.num_classes, (b,))
    joint = TrainingPair(cfg, spec, genotype, torch.device("cpu"), seed=0)
    if args.exact_vs_float:
        print(json.dumps(exact_vs_float(cfg, spec, genotype, joint, x, y, args), indent=2))
        return
    off = TrainingPair(
        dataclasses.replace(cfg, kernel_weight=0.0, center_weight=0.0), spec, genotype, torch.device("cpu"), 0
    )
    alone = TrainingPair(
        dataclasses.replace(cfg, parent="none", kernel_weight=0.0, center_weight=0.0),
        spec,
        genotype,
        torch.device("cpu"),
        0,
    )
    result = {
        "preset": args.preset,
        "sets": args.set,
        "threads": torch.get_num_threads(),
        "batch_size": b,
        "network": dataclasses.asdict(spec),
        "child_only": images_per_second(lambda: alone.train_batch(x, y, cfg.lr), b, args.steps),
        "child_parent": images_per_second(lambda: joint.train_batch(x, y, cfg.lr), b, args.steps),
        "child_parent_cp_off": images_per_second(lambda: off.train_batch(x, y, cfg.lr), b, args.steps),
        "evaluation": images_per_second(lambda: joint.evaluate([(x, y)]), b, args.steps),
    }
    result["cp_loss_cost"] = round(result["child_parent_cp_off"] / result["child_parent"], 3)
    print(json.dumps(result, indent=2))


def exact_vs_float(cfg, spec, genotype, joint, x, y, args) -> dict:
    """Images per second of Child-alone and joint steps with the exact and the float 1-bit formula
    on the same networks, interleaved step by step (which formula goes first alternates), so load
    on a shared machine hits both alike: `args.exact_vs_float` repeats of `args.steps` steps each;
    medians over the repeats, and the median of each repeat's exact/float ratio."""
    alone = TrainingPair(dataclasses.replace(cfg, parent="none"), spec, genotype, torch.device("cpu"), 0)
    b, runs = cfg.batch_size, {}

    def use(pair, exact):
        for m in pair.child.modules():
            if isinstance(m, BinaryConv2d):
                m.exact = exact

    for name, pair in (("child_only", alone), ("child_parent", joint)):
        for exact in (True, False, True, False):  # warm-up
            use(pair, exact)
            pair.train_batch(x, y, cfg.lr)
        for _ in range(args.exact_vs_float):
            seconds = {True: 0.0, False: 0.0}
            for step in range(args.steps):
                for exact in (True, False) if step % 2 == 0 else (False, True):
                    use(pair, exact)
                    start = time.perf_counter()
                    pair.train_batch(x, y, cfg.lr)
                    seconds[exact] += time.perf_counter() - start
            for exact in (True, False):
                key = f"{name}_{'exact' if exact else 'float'}"
                runs.setdefault(key, []).append(round(b * args.steps / seconds[exact], 1))
    result = {
        "preset": args.preset,
        "sets": args.set,
        "threads": torch.get_num_threads(),
        "batch_size": b,
        "steps": args.steps,
        "repeats": args.exact_vs_float,
        "runs": runs,
    }
    for name in ("child_only", "child_parent"):
        exact, float_ = runs[f"{name}_exact"], runs[f"{name}_float"]
        result[name] = {
            "exact": statistics.median(exact),
            "float": statistics.median(float_),
            "ratio": round(statistics.median(exact) / statistics.median(float_), 3),
            "median_paired_ratio": round(statistics.median(e / f for e, f in zip(exact, float_, strict=True)), 3),
        }
    return result


if __name__ == "__main__":
    main()
