"""Data-parallel speed on this machine: images/s of one process with 2 threads against 2 processes
with 1 thread each (torchrun, gloo), for a search and a training; how the search's explicit
gradient all-reduce compares with DistributedDataParallel(find_unused_parameters=True); and what
per-rank BatchNorm statistics change against statistics over the whole batch. Prints JSON.

    python benchmarks/ddp.py                          # all three parts
    python benchmarks/ddp.py --part scaling           # or sync, or batchnorm
    python benchmarks/ddp.py --part scaling --gpus 4  # on a CUDA machine: 1 GPU against 4 (untested here)

scaling: `cpnas search` (quick preset, 4 ops: 9 samples of 400 images) and `cpnas train` (the
quick preset's network on DARTS_V2 cells, 2 epochs of 2000 images) run as the CLI runs, each once
per layout; images/s is the training throughput the runs log (images through Child and Parent per
second of their steps, the median over samples or epochs), wall is the whole command.
sync: two copies of the quick search Child supernet under 2 ranks, stepped in turn on the same 30
random architectures, gradients averaged by World.average_gradients or by DDP (the Child wrapped
so its forward runs features and classifier); ms per step (median) and how far their gradients
and unused parameters differ; and the latency of a small gloo all-reduce.
batchnorm: one process; the quick search Child's and the quick training Child's gradient on a
batch of 128 with BatchNorm statistics over all 128 images, over each half (what 2 ranks do:
per-rank statistics), and on another batch of 128 (the noise any step has); plus how many
BatchNorm layers a synchronised BatchNorm would all-reduce per step.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the cpnas of this checkout, here and in the ranks it starts
SEARCH = ["--preset", "quick", "--device", "cpu", "--ops", "4"]
TRAIN = ["--preset", "quick", "--device", "cpu", "--epochs", "2", "--set", "train.train_images=2000"]
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "scaling", "sync", "batchnorm"], default="all")
    parser.add_argument("--gpus", type=int, default=0, help="scaling on CUDA: 1 GPU against this many")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # a rank of the sync part, under torchrun
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "sync":
        return sync_worker(args.out)
    report: dict = {"machine": machine(), "load_before": load()}
    if args.part in ("all", "scaling"):
        report["scaling"] = scaling(args.gpus)
    if args.part in ("all", "sync"):
        report["sync"] = sync()
    if args.part in ("all", "batchnorm"):
        report["batchnorm"] = batchnorm()
    report["load_after"] = load()
    print(json.dumps(report, indent=2))


def machine() -> str:
    lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name")), "?")
    return f"{model}, {os.cpu_count()} CPUs"


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- scaling -----------------------------------------------------------------------------------


def scaling(gpus: int) -> dict:
    """Each command once per layout: 1 process x 2 threads, 2 processes x 1 thread (or 1 GPU, N GPUs)."""
    layouts = [(1, 2), (2, 1)] if not gpus else [(1, 1), (gpus, 1)]
    device = ["--device", "cuda"] if gpus else []
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        genotype = Path(tmp) / "darts_v2.txt"
        genotype.write_text(DARTS_V2 + "\n")
        for command, args in (("search", SEARCH), ("train", [str(genotype), *TRAIN])):
            for processes, threads in layouts:
                run_dir = Path(tmp) / f"{command}-{processes}x{threads}"
                argv = [command, *args, *device, "--run-dir", str(run_dir)]
                results[f"{command} {processes}x{threads}"] = timed_run(argv, processes, threads, run_dir)
    for command in ("search", "train"):
        one, many = (results[f"{command} {p}x{t}"] for p, t in layouts)
        results[f"{command} speed-up"] = {
            "images_per_s": round(many["images_per_s"] / one["images_per_s"], 2),
            "wall": round(one["wall_seconds"] / many["wall_seconds"], 2),
        }
    return results


def timed_run(argv: list[str], processes: int, threads: int, run_dir: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    command = [*launcher, "-m", "cpnas_cli"] if processes > 1 else [sys.executable, "-m", "cpnas_cli"]
    started = time.perf_counter()
    result = subprocess.run([*command, *argv], env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stderr[-3000:]}")
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["kind"] in ("sample", "epoch")]
    return {
        "processes": processes,
        "threads": threads,
        "images_per_s": round(statistics.median(e["images_per_s"] for e in steps), 1),
        "seconds_per_step": round(statistics.median(e["seconds"] for e in steps), 2),
        "steps": len(steps),
        "wall_seconds": round(wall, 1),
        "load_after": load(),
    }


# --- sync: explicit all-reduce against DDP ---------------------------------------------------------


def sync() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sync.json"
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        result = subprocess.run(
            [*launcher, __file__, "--worker", "sync", "--out", str(out)], env=env, capture_output=True, text=True
        )
        if result.returncode:
            raise SystemExit(f"the sync part failed:\n{result.stderr[-3000:]}")
        return json.loads(out.read_text())


def sync_worker(out: Path) -> None:
    import random

    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel

    from cpnas_cli.config import load_config
    from cpnas_cli.engine.run.distributed import joined
    from cpnas_cli.engine.search.child_parent import ChildParent

    torch.set_num_threads(1)
    with joined() as world:
        cfg = load_config("quick").search
        images = torch.randn(cfg.batch_size, 1, 28, 28).contiguous(memory_format=torch.channels_last)
        labels = torch.randint(0, 10, (cfg.batch_size,))
        x, y = next(iter(world.share([(images, labels)])))
        rng = random.Random(0)
        archs = [{c: [rng.choice(cfg.ops) for _ in range(14)] for c in ("normal", "reduce")} for _ in range(30)]

        class Sampled(torch.nn.Module):  # what DDP must wrap: one forward from image to logits
            def __init__(self, net):
                super().__init__()
                self.net = net

            def forward(self, x, arch):
                return self.net.classifier(self.net.features(x, arch))

        def step(forward, net, optimizer, arch, sync_grads) -> float:
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(forward(x, arch), y).backward()
            sync_grads()
            optimizer.step()
            return time.perf_counter() - start

        # two copies of the same Child, stepped in turn on the same architectures (the load of a
        # shared machine then weighs on both alike)
        mine = ChildParent(cfg, 1, 10, torch.device("cpu"), seed=0, image_size=28, world=world)
        theirs = ChildParent(cfg, 1, 10, torch.device("cpu"), seed=0, image_size=28, world=world)
        net, optimizer = mine.nets["child"], mine.optimizers["child"]
        ddp = DistributedDataParallel(Sampled(theirs.nets["child"]), find_unused_parameters=True)
        explicit, with_ddp, differ, unused_differ = [], [], 0.0, 0
        for arch in archs:
            explicit.append(step(net, net, optimizer, arch, lambda: world.average_gradients(net.parameters(), len(y))))
            with_ddp.append(step(ddp, ddp, theirs.optimizers["child"], arch, lambda: None))
            for a, b in zip(net.parameters(), theirs.nets["child"].parameters(), strict=True):
                if (a.grad is None) != (b.grad is None):
                    unused_differ += 1
                elif a.grad is not None:
                    differ = max(differ, (a.grad - b.grad).abs().max().item())
        latency = []
        small = torch.zeros(2 * cfg.channels * 4)
        for _ in range(200):
            start = time.perf_counter()
            dist.all_reduce(small)
            latency.append(time.perf_counter() - start)
        if world.main:
            params = sum(p.numel() for p in net.parameters())
            out.write_text(
                json.dumps(
                    {
                        "network": f"quick search Child supernet, {len(cfg.ops)} ops, {params} parameters",
                        "batch": f"{cfg.batch_size} ({len(y)} per rank)",
                        "steps": f"{len(archs)} each, in turn (medians of the last {len(archs) - 3})",
                        "explicit_all_reduce_ms_per_step": round(1000 * statistics.median(explicit[3:]), 1),
                        "ddp_find_unused_ms_per_step": round(1000 * statistics.median(with_ddp[3:]), 1),
                        "largest_gradient_difference": differ,
                        "parameters_unused_by_one_and_not_the_other": unused_differ,
                        "gloo_small_all_reduce_us": round(1e6 * statistics.median(latency), 1),
                    }
                )
            )


# --- batchnorm: per-rank statistics against the whole batch's ---------------------------------------


def batchnorm() -> dict:
    import random

    import torch
    import torch.nn.functional as F

    from cpnas_cli.config import load_config
    from cpnas_cli.data import load_dataset, normalize
    from cpnas_cli.engine.search.child_parent import ChildParent
    from cpnas_cli.engine.train.pair import TrainingPair
    from cpnas_cli.engine.train.trainer import network_spec
    from cpnas_cli.space.genotype import from_darts

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    config = load_config("quick")
    data = load_dataset("embedded", None, None)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(data.train_labels), generator=g)

    def batch(k: int):
        chosen = order[k * 128 : (k + 1) * 128]
        return normalize(data.train_images[chosen]).contiguous(memory_format=torch.channels_last), data.train_labels[
            chosen
        ]

    rng = random.Random(1)
    arch = {c: [rng.choice(config.search.ops) for _ in range(14)] for c in ("normal", "reduce")}
    search_net = ChildParent(config.search, 1, 10, torch.device("cpu"), seed=0).nets["child"]
    train_net = TrainingPair(
        config.train, network_spec(config.train, data), from_darts(DARTS_V2), torch.device("cpu"), 0
    ).child

    def gradient(net, forward, x, y, parts: int) -> torch.Tensor:
        """The gradient of the mean loss over (x, y), BatchNorm statistics over each of `parts` slices."""
        net.train()
        total = None
        for xs, ys in zip(x.tensor_split(parts), y.tensor_split(parts), strict=True):
            net.zero_grad(set_to_none=True)
            F.cross_entropy(forward(xs), ys).backward()
            flat = torch.cat([p.grad.reshape(-1) for p in net.parameters() if p.grad is not None]) * (len(ys) / len(y))
            total = flat if total is None else total + flat
        return total

    def compare(name, net, forward) -> dict:
        x, y = batch(0)
        whole = gradient(net, forward, x, y, 1)
        per_rank = gradient(net, forward, x, y, 2)
        other = gradient(net, forward, *batch(1), 1)
        cos = torch.nn.functional.cosine_similarity
        layers = []
        hooks = [
            m.register_forward_hook(lambda m, i, o: layers.append(m))
            for m in net.modules()
            if isinstance(m, torch.nn.BatchNorm2d)
        ]
        forward(x[:2])
        for h in hooks:
            h.remove()
        return {
            "network": name,
            "per_rank_vs_whole_relative_difference": round(((per_rank - whole).norm() / whole.norm()).item(), 4),
            "per_rank_vs_whole_cosine": round(cos(per_rank, whole, dim=0).item(), 4),
            "another_batch_vs_whole_relative_difference": round(((other - whole).norm() / whole.norm()).item(), 4),
            "another_batch_vs_whole_cosine": round(cos(other, whole, dim=0).item(), 4),
            "batchnorm_layers_per_forward": len(layers),
        }

    return {
        "batch": "128 images, 2 ranks of 64",
        "search": compare(
            "quick search Child supernet, one random architecture", search_net, lambda x: search_net(x, arch)
        ),
        "train": compare("quick training Child (DARTS_V2 cells)", train_net, lambda x: train_net(x)[0]),
    }


if __name__ == "__main__":
    main()
