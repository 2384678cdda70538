"""Searches and trainings at toy size: the tiny search's overrides, a run through the library as the
CLI would start it, and what a finished search's run directory holds."""

import json
import time
from pathlib import Path

from cpnas_cli.config import dump_yaml, load_config
from cpnas_cli.events import read_all
from cpnas_cli.runs import new_run_dir
from tests.cli import set_flags

TINY_SEARCH = [
    "data.train_fraction=0.06",
    "data.val_fraction=0.03",
    "search.ops=[zero, skip, max_pool_3x3, sep_conv_3x3]",
    "search.rounds=1",
    "search.channels=4",
    "search.cells=3",
    "search.reductions=[1, 2]",
    "search.batch_size=60",
    "search.eval_batch_size=120",
    "search.epochs_per_sample=0.5",
    "device=cpu",
    "seed=5",
]


def tiny_args(run_dir):
    return ["search", "--run-dir", str(run_dir), *set_flags(TINY_SEARCH)]


def run_in_library(make_engine, run_dir: Path, overrides: list[str]):
    """Create `run_dir`, write its config.yaml, then begin and run `make_engine(config)` (a Search or a
    Trainer) in this process: (the RunDir, what run() returned, seconds from building the engine to the end)."""
    run = new_run_dir("test", run_dir)
    config = load_config("quick", sets=overrides)
    run.config.write_text(dump_yaml(config))
    started = time.perf_counter()
    engine = make_engine(config)
    engine.begin(run)
    summary = engine.run()
    return run, summary, time.perf_counter() - started


def structure(run_dir: Path) -> dict:
    data = json.loads((run_dir / "genotype.json").read_text())
    return {k: data[k] for k in ("normal", "reduce")}


def samples(run_dir: Path) -> list[tuple]:
    return [
        (e["n"], json.dumps(e["arch"]), e["acc_child"], e["acc_parent"], e["z"], e["loss_child"])
        for e in read_all(run_dir / "events.jsonl")
        if e["kind"] == "sample"
    ]


def run_states(events: Path) -> list:
    """The state of every status event in a run's log, in order: started, interrupted, resumed, ..."""
    return [e.get("state") for e in read_all(events) if e["kind"] == "status"]
