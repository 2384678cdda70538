"""End-to-end searches on the embedded data at toy size: the run directory, the event log,
and resume after Ctrl-C or SIGKILL ending in the same genotype as an uninterrupted run."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cpnas_cli.config import dump_yaml, load_config
from cpnas_cli.engine.search.runner import Search
from cpnas_cli.events import read_all
from cpnas_cli.runs import new_run_dir

TINY = [
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
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "160"}


def run_cli(args, **kwargs):
    return subprocess.run([sys.executable, "-m", "cpnas_cli", *args], env=ENV, capture_output=True, text=True, **kwargs)


def start_cli(args):
    return subprocess.Popen(
        [sys.executable, "-m", "cpnas_cli", *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(condition, seconds=120):
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def tiny_args(run_dir):
    return ["search", "--run-dir", str(run_dir), *[x for s in TINY for x in ("--set", s)]]


def structure(run_dir: Path) -> dict:
    data = json.loads((run_dir / "genotype.json").read_text())
    return {k: data[k] for k in ("normal", "reduce")}


def samples(run_dir: Path) -> list[tuple]:
    return [
        (e["n"], json.dumps(e["arch"]), e["acc_child"], e["acc_parent"], e["z"], e["loss_child"])
        for e in read_all(run_dir / "events.jsonl")
        if e["kind"] == "sample"
    ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted tiny search through the library, timed."""
    run = new_run_dir("ref", tmp_path_factory.mktemp("ref") / "run")
    config = load_config("quick", sets=TINY)
    run.config.write_text(dump_yaml(config))
    started = time.perf_counter()
    search = Search(config)
    search.begin(run)
    search.run()
    return run.path, time.perf_counter() - started


def test_search_writes_the_run_directory(reference):
    run_dir, _ = reference
    events = read_all(run_dir / "events.jsonl")
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "header" and events[0]["ops"] == ["zero", "skip", "max_pool_3x3", "sep_conv_3x3"]
    assert kinds.count("sample") == 4 + 3 + 2  # T = 1, K = 4 -> 2
    assert kinds.count("ranking") == kinds.count("prune") == 3
    assert kinds[-2:] == ["genotype", "status"] and events[-1]["state"] == "finished"
    # every prune removes one op per edge and leaves K - 1
    for e in events:
        if e["kind"] == "prune":
            assert all(len(ops) == 14 for ops in e["removed"].values())
    first = next(e for e in events if e["kind"] == "sample")
    assert set(first) >= {"K", "round", "index", "arch", "acc_child", "acc_parent", "z", "seconds", "images_per_s"}
    assert first["z"] == pytest.approx(first["acc_child"] + 2.0 * (first["acc_parent"] - first["acc_child"]), abs=1e-3)
    assert (run_dir / "genotype.json").is_file() and (run_dir / "checkpoint" / "state.json").is_file()


def test_sigkill_at_a_random_moment_then_resume_gives_the_same_genotype(reference, tmp_path):
    ref_dir, ref_seconds = reference
    run_dir = tmp_path / "killed"
    proc = start_cli(tiny_args(run_dir))
    wait_for(lambda: (run_dir / "config.yaml").exists())
    time.sleep(random.uniform(0.0, ref_seconds))  # a random moment of the run
    proc.kill()
    proc.wait()
    result = run_cli(["search", "--resume", str(run_dir)], timeout=600)
    assert result.returncode == 0, result.stderr
    assert structure(run_dir) == structure(ref_dir)
    assert samples(run_dir) == samples(ref_dir)  # every sample's numbers, once each, in order


def test_ctrl_c_checkpoints_and_prints_the_resume_command(reference, tmp_path):
    ref_dir, _ = reference
    run_dir = tmp_path / "interrupted"
    proc = start_cli(tiny_args(run_dir))
    events = run_dir / "events.jsonl"
    wait_for(lambda: events.exists() and '"kind":"sample"' in events.read_text())
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"cpnas search --resume {run_dir}" in out.replace("\n", "")
    states = [e.get("state") for e in read_all(events) if e["kind"] == "status"]
    assert states[-1] == "interrupted"
    result = run_cli(["search", "--resume", str(run_dir)], timeout=600)
    assert result.returncode == 0, result.stderr
    assert structure(run_dir) == structure(ref_dir)
    assert samples(run_dir) == samples(ref_dir)
    states = [e.get("state") for e in read_all(events) if e["kind"] == "status"]
    assert states == ["started", "interrupted", "resumed", "finished"]
