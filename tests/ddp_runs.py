"""Runs under torchrun as the tests drive them: tiny settings, the launcher in a subprocess (its own
session, so kill -9 reaches the whole job), each rank's process id, and, run as a module under
torchrun, a recorder of every rank's decisions in tiny searches through the library.

    python -m torch.distributed.run --standalone --nproc-per-node 2 -m tests.ddp_runs OUT

writes OUT/<strategy>-rank<r>.json for each strategy in DECISIONS: the events that rank's search
reported (timings left out) and, for the differentiable strategies, whether the architecture logits
were bit-identical on every rank after each iteration. With `--collectives OUT` it writes instead
what World's sums and gradient average gave each rank (OUT/collectives-rank<r>.json).
"""

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.cli import ENV, set_flags

# Smaller than tiny_runs.TINY_SEARCH: 3 ops (5 samples), 240 search-train and 120 validation images.
DDP_SEARCH = [
    "data.train_fraction=0.03",
    "data.val_fraction=0.015",
    "search.ops=[skip, max_pool_3x3, sep_conv_3x3]",
    "search.rounds=1",
    "search.channels=4",
    "search.cells=3",
    "search.reductions=[1, 2]",
    "search.batch_size=40",
    "search.eval_batch_size=60",
    "search.epochs_per_sample=0.5",
    "device=cpu",
    "seed=5",
]
DDP_TRAIN = [
    "train.channels=4",
    "train.cells=3",
    "train.stem_stride=2",
    "train.epochs=2",
    "train.batch_size=40",
    "train.train_images=160",
    "train.eval_batch_size=500",
    "train.optimizer=adam",
    "train.lr=0.01",
    "device=cpu",
    "seed=3",
]
DIFFERENTIABLE = [
    "search.diff_batch_size=40",
    "search.diff_epochs=0.5",
    "search.diff_phase_epochs=0.25",
    "search.diff_warmup_epochs=0.1",
]
DECISIONS = {
    "abandit": [*DDP_SEARCH, "search.strategy=abandit", "search.epochs_per_sample=0.25"],
    "pc-darts": [*DDP_SEARCH, *DIFFERENTIABLE, "search.strategy=pc-darts"],
    "dcp": [*DDP_SEARCH, *DIFFERENTIABLE, "search.strategy=dcp"],
}
TIMING = {"t", "seconds", "eval_seconds", "child_seconds", "parent_seconds", "images_per_s", "elapsed"}


def torchrun(n: int, args: list[str]) -> list[str]:
    """The command line of `torchrun --nproc-per-node n -m cpnas_cli ARGS` (a free port of its own)."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}"]
    return [*launcher, "-m", "cpnas_cli", *args]


def start_torchrun(n: int, args: list[str], env: dict | None = None) -> subprocess.Popen:
    """The job in its own session: os.killpg(proc.pid, SIGKILL) kills the launcher and every rank."""
    return subprocess.Popen(
        torchrun(n, args),
        env={**ENV, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def run_torchrun(n: int, args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(torchrun(n, args), env=ENV, capture_output=True, text=True, timeout=timeout)


def search_args(run_dir, *overrides: str) -> list[str]:
    return ["search", "--run-dir", str(run_dir), *set_flags([*DDP_SEARCH, *overrides])]


def rank_pid(launcher_pid: int, rank: int, seconds: float = 120) -> int:
    """The process id of `rank`: the launcher's child whose environment says RANK=rank."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        for pid in _children(launcher_pid):
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"RANK={rank}".encode() in environ:
                return pid
        time.sleep(0.1)
    raise AssertionError(f"no rank {rank} under process {launcher_pid}")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def error_lines(stderr: str) -> list[str]:
    """The `error:` lines cpnas printed (the launcher's own report is not one of them)."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def record_decisions(out: Path) -> None:
    """Under torchrun: each strategy of DECISIONS searched by every rank through the library; what
    each rank saw goes to OUT/<strategy>-rank<r>.json."""
    import torch

    from cpnas_cli.config import dump_yaml, load_config
    from cpnas_cli.engine.run.distributed import joined
    from cpnas_cli.engine.search.runner import Search
    from cpnas_cli.runs import RunDir, new_run_dir

    torch.set_num_threads(1)
    with joined() as world:
        for name, overrides in DECISIONS.items():
            config = load_config("quick", sets=overrides)
            batch = "diff_batch_size" if name in ("pc-darts", "dcp") else "batch_size"
            world.on_device(config, (batch, getattr(config.search, batch)))
            events: list[dict] = []
            search = Search(config, report=events.append, world=world)
            checks = _check_logits_every_iteration(search, world)

            def create(name=name, config=config):
                run = new_run_dir(name, out / name)
                run.config.write_text(dump_yaml(config))
                return str(run.path)

            search.begin(RunDir(Path(world.on_main(create))))
            search.run()
            seen = [{k: v for k, v in e.items() if k not in TIMING} for e in events if e["kind"] != "progress"]
            record = {"events": seen, "logits_equal": checks}
            (out / f"{name}-rank{world.rank}.json").write_text(json.dumps(record))


def _check_logits_every_iteration(search, world) -> list[bool]:
    """After each iteration of a differentiable strategy, are its architecture logits (and DCP's
    back-tracking state) bit-identical on every rank? The nni#5013 failure would make them differ."""
    strategy, checks = search.strategy, []
    if not hasattr(strategy, "iteration"):
        return checks
    parts = [m for name, m in strategy.parts.items() if "arch" in name or "psi" in name]
    original = strategy.iteration

    def iteration(*args):
        result = original(*args)
        state = b"".join(t.detach().numpy().tobytes() for part in parts for t in part.state_dict().values())
        checks.append(len(set(world.gather(state))) == 1)
        return result

    strategy.iteration = iteration
    return checks


def record_collectives(out: Path) -> None:
    """Under torchrun with 2 ranks: what World.sum and World.average_gradients give on each rank
    from unequal shares (3 images on rank 0, 1 on rank 1) and gradients present on some ranks only,
    written to OUT/collectives-rank<r>.json."""
    import torch

    from cpnas_cli.engine.run.distributed import joined

    with joined() as world:
        assert world.size == 2
        summed = world.sum({"n": world.rank + 1, "losses": {"child": 0.25}, "seconds": 7.0 + world.rank})
        params = [torch.nn.Parameter(torch.zeros(2, 1)) for _ in range(4)]
        mine = {0: {0: [1.0, 2.0], 2: [4.0, 4.0]}, 1: {0: [5.0, 6.0], 1: [8.0, 0.0]}}[world.rank]
        for i, grad in mine.items():  # p3 has a gradient on no rank
            params[i].grad = torch.tensor(grad).view(2, 1)
        world.average_gradients(params, images=3 if world.rank == 0 else 1)
        grads = [None if p.grad is None else p.grad.view(-1).tolist() for p in params]
        (out / f"collectives-rank{world.rank}.json").write_text(json.dumps({"sum": summed, "grads": grads}))


if __name__ == "__main__":
    if sys.argv[1] == "--collectives":
        record_collectives(Path(sys.argv[2]))
    else:
        record_decisions(Path(sys.argv[1]))
