"""End-to-end searches on the embedded data at toy size: the run directory, the event log,
and resume after Ctrl-C or SIGKILL ending in the same genotype as an uninterrupted run."""

import pytest

from cpnas_cli.events import read_all
from tests.cli import kill_at_a_random_moment, press_ctrl_c, run_cli, start_cli, wait_for
from tests.tiny_runs import run_states, samples, structure, tiny_args

pytestmark = pytest.mark.e2e


def test_search_writes_the_run_directory(tiny_search):
    run_dir, _ = tiny_search()
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


def test_sigkill_at_a_random_moment_then_resume_gives_the_same_genotype(tiny_search, tmp_path):
    ref_dir, ref_seconds = tiny_search()
    run_dir = tmp_path / "killed"
    proc = start_cli(tiny_args(run_dir))
    kill_at_a_random_moment(proc, run_dir, within=ref_seconds)  # a random moment of the run
    result = run_cli(["search", "--resume", str(run_dir)], timeout=600)
    assert result.returncode == 0, result.stderr
    assert structure(run_dir) == structure(ref_dir)
    assert samples(run_dir) == samples(ref_dir)  # every sample's numbers, once each, in order


def test_ctrl_c_checkpoints_and_prints_the_resume_command(tiny_search, tmp_path):
    ref_dir, _ = tiny_search()
    run_dir = tmp_path / "interrupted"
    proc = start_cli(tiny_args(run_dir))
    events = run_dir / "events.jsonl"
    wait_for(lambda: events.exists() and '"kind":"sample"' in events.read_text())
    out, err = press_ctrl_c(proc, timeout=120)
    assert proc.returncode == 130, err
    assert f"cpnas search --resume {run_dir}" in out.replace("\n", "")
    states = run_states(events)
    assert states[-1] == "interrupted"
    result = run_cli(["search", "--resume", str(run_dir)], timeout=600)
    assert result.returncode == 0, result.stderr
    assert structure(run_dir) == structure(ref_dir)
    assert samples(run_dir) == samples(ref_dir)
    states = run_states(events)
    assert states == ["started", "interrupted", "resumed", "finished"]
