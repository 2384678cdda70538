"""pc-darts and dcp end to end at toy size: the alpha events, and resume after SIGKILL at a random
moment (CLI) or Ctrl-C in the middle of a phase (library), both ending in the run an uninterrupted
search gives."""

import contextlib
import json
import threading
import time

import pytest

from cpnas_cli.config import load_run_config
from cpnas_cli.engine.run.interrupt import Interrupted
from cpnas_cli.engine.search.runner import Search
from cpnas_cli.events import read_all
from cpnas_cli.runs import RunDir
from tests.cli import kill_at_a_random_moment, run_cli, set_flags, start_cli
from tests.tiny_runs import run_in_library, run_states, structure

TINY = [
    "data.train_fraction=0.03",
    "data.val_fraction=0.015",
    "search.ops=[zero, skip, max_pool_3x3, sep_conv_3x3]",
    "search.channels=4",
    "search.cells=3",
    "search.reductions=[1, 2]",
    "search.eval_batch_size=120",
    "search.diff_batch_size=60",
    "search.diff_epochs=1",
    "search.diff_phase_epochs=0.5",
    "search.diff_warmup_epochs=0.25",
    "device=cpu",
    "seed=5",
]
STRATEGIES = ["pc-darts", "dcp"]

pytestmark = pytest.mark.e2e


def args(run_dir, strategy):
    return ["search", "--run-dir", str(run_dir), *set_flags([*TINY, f"search.strategy={strategy}"])]


def alphas(run_dir) -> list[str]:
    """Every alpha event without its timings, in order: equal lists mean an identical search."""
    volatile = {"t", "seconds", "images_per_s", "elapsed"}
    return [
        json.dumps({k: v for k, v in e.items() if k not in volatile}, sort_keys=True)
        for e in read_all(run_dir / "events.jsonl")
        if e["kind"] == "alpha"
    ]


@pytest.fixture(scope="module", params=STRATEGIES)
def reference(request, tmp_path_factory):
    """One uninterrupted tiny search in a subprocess (same threads as the resumed ones), timed."""
    run_dir = tmp_path_factory.mktemp(request.param) / "run"
    started = time.perf_counter()
    result = run_cli(args(run_dir, request.param), timeout=600)
    assert result.returncode == 0, result.stderr
    return request.param, run_dir, time.perf_counter() - started


def test_alpha_events_describe_every_phase(reference):
    strategy, run_dir, _ = reference
    events = read_all(run_dir / "events.jsonl")
    alpha = [e for e in events if e["kind"] == "alpha"]
    roles = ["search"] * 2 if strategy == "pc-darts" else ["parent", "child"] * 2
    assert [e["role"] for e in alpha] == roles and [e["step"] for e in alpha] == list(range(1, len(roles) + 1))
    for e in alpha:
        for cell in ("normal", "reduce"):
            assert len(e["weights"][cell]) == 14
            assert all(sum(edge.values()) == pytest.approx(1.0, abs=1e-5) for edge in e["weights"][cell])
        assert e["genotype"]["format"] == "cpnas-genotype"
    # warm-up 0.25 of 1 epoch: the first half-epoch phase has architecture steps in its second half only
    assert 0 < alpha[0]["arch_steps"] < alpha[-1]["arch_steps"] + 1
    if strategy == "pc-darts":
        assert all(sum(e["edge_weights"]["normal"][:2]) == pytest.approx(1.0, abs=1e-5) for e in alpha)
    else:
        assert {"acc_parent", "gap", "weights_parent", "tangent_distance", "penalty_share"} <= set(alpha[-1])
    final = json.loads((run_dir / "genotype.json").read_text())
    assert {k: final[k] for k in ("normal", "reduce")} == {k: alpha[-1]["genotype"][k] for k in ("normal", "reduce")}
    assert events[-1]["kind"] == "status" and events[-1]["state"] == "finished"


def test_sigkill_at_a_random_moment_then_resume_gives_the_same_search(reference, tmp_path):
    strategy, ref_dir, ref_seconds = reference
    run_dir = tmp_path / "killed"
    proc = start_cli(args(run_dir, strategy))
    kill_at_a_random_moment(proc, run_dir, within=ref_seconds)
    result = run_cli(["search", "--resume", str(run_dir)], timeout=600)
    assert result.returncode == 0, result.stderr
    assert structure(run_dir) == structure(ref_dir)
    assert alphas(run_dir) == alphas(ref_dir)


def search_in_process(run_dir, strategy, stop_at=None):
    """A tiny search through the library; `stop_at` = (step, batch): Ctrl-C's flag is raised
    when that batch of that step is done, as a user's Ctrl-C would be."""
    stop = threading.Event()

    def report(event):
        if event["kind"] == "progress" and (event["n"], event["batch"]) == stop_at:
            stop.set()

    with contextlib.suppress(Interrupted):
        run_in_library(lambda config: Search(config, report, stop), run_dir, [*TINY, f"search.strategy={strategy}"])
    return RunDir(run_dir)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_ctrl_c_inside_a_phase_resumes_from_that_batch_to_the_same_search(strategy, tmp_path):
    whole = search_in_process(tmp_path / "whole", strategy)
    cut = search_in_process(tmp_path / "cut", strategy, stop_at=(2, 1))  # step 2 of 2 batches, after one
    saved = json.loads((cut.checkpoint / "state.json").read_text())
    assert saved["n"] == 1 and saved["strategy"]["partial"]["batch"] == 1
    resumed = Search(load_run_config(cut.config))
    resumed.restore(cut)
    resumed.run()
    assert structure(cut.path) == structure(whole.path)
    assert alphas(cut.path) == alphas(whole.path)
    states = run_states(cut.events)
    assert states == ["started", "interrupted", "resumed", "finished"]
