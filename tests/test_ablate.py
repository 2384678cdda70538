"""`cpnas ablate`: the plan of settings and seeds, the results table against numbers worked by
hand, the picture, bad input, a tiny ablation end to end that is interrupted after its first
unit and resumed without redoing it, and one stopped by kill -9 at a random moment, by SIGTERM or
by a NaN, each resumed to the uninterrupted ablation's results."""

import csv
import io
import json
import signal
import time

import pytest
from PIL import Image
from typer.testing import CliRunner

from cpnas_cli.cli.app import app
from cpnas_cli.engine.ablation import Plan, Setting, UnitResult, make_plan, rows, summary
from cpnas_cli.engine.ablation.plot import MEAN, chart_png
from cpnas_cli.engine.ablation.results import COLUMNS, read_results, write_tables
from cpnas_cli.engine.run.checkpoint import load_checkpoint
from cpnas_cli.engine.search.strategies.cp import CPStrategy
from cpnas_cli.errors import UserError
from cpnas_cli.events import read_all
from tests.cli import (
    assert_one_line_error,
    kill_at_a_random_moment,
    press_ctrl_c,
    run_cli,
    set_flags,
    start_cli,
    wait_for,
)
from tests.tiny_runs import TINY_SEARCH, run_states, samples

runner = CliRunner()


# --- the plan ---------------------------------------------------------------------------------


def test_strategies_are_the_axis_with_one_shared_beta():
    plan = make_plan(["random", "bnas", "cp", "abandit"], [1.0], seeds=2, first_seed=4)
    assert plan.axis == "strategy" and plan.seeds == (4, 5)
    assert [(s.label, s.strategy, s.beta_p) for s in plan.settings] == [
        ("random", "random", 1.0),
        ("bnas", "bnas", 1.0),
        ("cp", "cp", 1.0),
        ("abandit", "abandit", 1.0),
    ]
    assert plan.settings[0].overrides() == {"search.strategy": "random", "search.beta_p": 1.0}
    assert make_plan(["cp", "random"], None, 1).settings[0].overrides() == {"search.strategy": "cp"}


def test_beta_p_values_are_the_axis():
    plan = make_plan(None, [0, 0.5, 2], seeds=3)
    assert plan.axis == "beta_p"
    assert [s.label for s in plan.settings] == ["beta_p=0", "beta_p=0.5", "beta_p=2"]
    assert [s.slug for s in plan.settings] == ["beta_p-0", "beta_p-0.5", "beta_p-2"]
    assert {s.strategy for s in plan.settings} == {"cp"}
    assert [s.label for s in make_plan(["abandit"], [0, 1], 1).settings] == ["abandit beta_p=0", "abandit beta_p=1"]


def test_units_go_seed_by_seed():
    plan = make_plan(["cp", "random"], None, seeds=2)
    assert [(s.label, seed) for s, seed in plan.units()] == [("cp", 0), ("random", 0), ("cp", 1), ("random", 1)]
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_more_seeds_keep_the_settings_and_the_first_seed():
    plan = make_plan(["cp", "random"], None, seeds=1, first_seed=3)
    grown = plan.with_seeds(3)
    assert grown.settings == plan.settings and grown.seeds == (3, 4, 5)
    assert grown.units()[:2] == plan.units()  # the units already run come first, unchanged
    with pytest.raises(UserError, match="fewer than the ablation's 3"):
        grown.with_seeds(2)


def test_resume_with_more_seeds_grows_the_saved_plan_and_keeps_its_results(tmp_path):
    from cpnas_cli.config import load_config
    from cpnas_cli.engine.ablation.runner import Ablation

    one_seed = Plan(PLAN.axis, PLAN.settings, (0,))
    Ablation.create(tmp_path, load_config("quick"), one_seed)
    write_tables(tmp_path, one_seed, RESULTS[:2], {})
    ablation = Ablation.open(tmp_path, seeds=2)
    assert ablation.plan == PLAN and not ablation.finished
    assert ablation.results == RESULTS[:2]
    assert Ablation.open(tmp_path).plan == PLAN  # written back: a later plain --resume keeps the seeds
    with pytest.raises(UserError, match="fewer"):
        Ablation.open(tmp_path, seeds=1)
    assert Ablation.open(tmp_path).plan == PLAN  # a refused call wrote nothing


@pytest.mark.parametrize(
    "strategies, betas, seeds, problem",
    [
        (None, None, 1, "nothing to compare"),
        (["cp", "bnas"], [0, 1], 1, "both list several values"),
        (["cp", "gradient"], None, 1, "unknown strategies gradient"),
        (None, [-1.0], 1, "not negative"),
        (["cp"], None, 0, "--seeds"),
        (["cp", "cp"], None, 1, "listed twice"),
    ],
)
def test_bad_plans_are_user_errors(strategies, betas, seeds, problem):
    with pytest.raises(UserError, match=problem):
        make_plan(strategies, betas, seeds)


# --- results ----------------------------------------------------------------------------------


def result(setting, seed, acc, seconds, parent=None) -> UnitResult:
    return UnitResult(
        setting,
        seed,
        setting,
        None,
        "Genotype(...)",
        6,
        seconds,
        30.0,
        acc,
        parent,
        1000,
        800,
        200,
        0.0072,
        1.5,
        f"units/{setting}-seed{seed}/search",
        f"units/{setting}-seed{seed}/train",
    )


PLAN = Plan("strategy", (Setting("cp", "cp"), Setting("random", "random")), (0, 1))
RESULTS = [
    result("cp", 0, 80.0, 100.0, 85.0),
    result("random", 0, 78.0, 90.0),
    result("cp", 1, 82.0, 120.0, 87.0),
    result("random", 1, 81.0, 132.0),
]


def test_rows_follow_the_plan_and_compare_search_time_with_cp_of_the_same_seed():
    table = rows(PLAN, list(reversed(RESULTS)))
    assert [(r["setting"], r["seed"]) for r in table] == [("cp", 0), ("random", 0), ("cp", 1), ("random", 1)]
    # random: 90 s against cp's 100 s for seed 0, 132 s against 120 s for seed 1
    assert [r["search_vs_cp"] for r in table] == pytest.approx([1.0, 0.9, 1.0, 1.1])


def test_summary_is_mean_and_sample_sd_over_seeds():
    cp, rand = summary(PLAN, RESULTS)
    assert cp["seeds"] == rand["seeds"] == 2
    # cp: 80 and 82 -> mean 81, sd sqrt(((80-81)^2 + (82-81)^2) / 1) = sqrt(2)
    assert cp["test_acc_child"] == 81.0 and cp["test_acc_child_std"] == pytest.approx(1.4142136)
    assert cp["test_acc_parent"] == 86.0
    # random: 78 and 81 -> 79.5 +- 2.1213203; relative search time 0.9 and 1.1 -> 1.0 +- 0.1414214
    assert rand["test_acc_child"] == 79.5 and rand["test_acc_child_std"] == pytest.approx(2.1213203)
    assert rand["search_vs_cp"] == pytest.approx(1.0) and rand["search_vs_cp_std"] == pytest.approx(0.1414214)
    assert rand["test_acc_parent"] is None  # no Parent trained


def test_a_setting_without_finished_seeds_has_no_numbers():
    (cp, rand) = summary(PLAN, RESULTS[:1])
    assert cp["seeds"] == 1 and cp["test_acc_child"] == 80.0 and cp["test_acc_child_std"] is None
    assert rand["seeds"] == 0 and rand["test_acc_child"] is None


def test_tables_are_written_and_read_back(tmp_path):
    write_tables(tmp_path, PLAN, RESULTS, {"base": {}})
    assert read_results(tmp_path) == [RESULTS[0], RESULTS[1], RESULTS[2], RESULTS[3]]
    table = list(csv.DictReader(io.StringIO((tmp_path / "results.csv").read_text())))
    assert list(table[0]) == COLUMNS and len(table) == 4
    assert table[1]["setting"] == "random" and float(table[1]["search_vs_cp"]) == pytest.approx(0.9)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["plan"] == PLAN.to_dict() and len(data["summary"]) == 2


def test_picture_is_a_png_with_the_means_drawn():
    png = chart_png(
        "t",
        "Child test accuracy (%)",
        ["cp", "random", "bnas"],
        [[80.0, 82.0], [79.0], []],
        ["a", "b", "not run yet"],
        connect=True,
    )
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (960, 600)
    assert MEAN in {color for _, color in image.getcolors(960 * 600)}


# --- the command ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, pattern",
    [
        ([], "nothing to compare"),
        (["--strategies", "cp,foo"], "unknown strategies foo"),
        (["--beta-p", "0,x"], "not a comma-separated list of numbers"),
        (["--resume", "/nonexistent/ablation"], "not an ablation directory"),
        (["--resume", "/tmp", "--strategies", "cp,bnas"], "--strategies cannot change it"),
    ],
)
def test_bad_input_is_one_line(args, pattern):
    assert_one_line_error(runner.invoke(app, ["ablate", *args]), pattern)


TINY = [
    *TINY_SEARCH,
    "train.channels=4",
    "train.cells=3",
    "train.epochs=2",
    "train.batch_size=50",
    "train.train_images=200",
    "train.optimizer=adam",
    "train.lr=0.01",
]


def unit_files(folder, unit: str) -> dict:
    """The bytes of a finished unit's logs and genotype: a rerun would rewrite them."""
    paths = [
        f"units/{unit}/search/events.jsonl",
        f"units/{unit}/search/genotype.json",
        f"units/{unit}/train/events.jsonl",
    ]
    return {p: (folder / p).read_bytes() for p in paths}


@pytest.mark.e2e
def test_interrupted_ablation_resumes_without_redoing_finished_units(tmp_path):
    folder = tmp_path / "ablation"
    proc = start_cli(
        [
            "ablate",
            "--strategies",
            "cp,random",
            "--seeds",
            "1",
            "--device",
            "cpu",
            "--run-dir",
            str(folder),
            *set_flags(TINY),
        ]
    )
    results = folder / "results.json"
    wait_for(lambda: results.exists() and len(json.loads(results.read_text())["units"]) == 1, seconds=300)
    out, err = press_ctrl_c(proc, timeout=300)
    assert proc.returncode == 130, err
    assert f"cpnas ablate --resume {folder}" in out.replace("\n", "")
    first = json.loads(results.read_text())["units"][0]
    before = unit_files(folder, "cp-seed0")

    result = run_cli(["ablate", "--resume", str(folder)], timeout=600)
    assert result.returncode == 0, result.stderr
    assert unit_files(folder, "cp-seed0") == before  # the finished unit was not run again
    data = json.loads(results.read_text())
    assert [(u["setting"], u["seed"]) for u in data["units"]] == [("cp", 0), ("random", 0)]
    assert data["units"][0] == first
    random_unit = data["units"][1]
    genotype = json.loads((folder / random_unit["search_run"] / "genotype.json").read_text())
    assert genotype["meta"]["strategy"] == "random"
    train_log = read_all(folder / random_unit["train_run"] / "events.jsonl")
    last_epoch = [e for e in train_log if e["kind"] == "epoch"][-1]
    assert random_unit["test_acc_child"] == last_epoch["test_acc_child"]
    assert random_unit["search_vs_cp"] == pytest.approx(random_unit["search_seconds"] / first["search_seconds"])
    assert (
        random_unit["memory_mbit"] > 0
        and random_unit["params"] == random_unit["params_1bit"] + random_unit["params_32bit"]
    )
    summary_rows = {s["setting"]: s for s in data["summary"]}
    assert summary_rows["cp"]["test_acc_child"] == first["test_acc_child"] and summary_rows["random"]["seeds"] == 1
    assert Image.open(folder / "results.png").size == (960, 600)
    assert len((folder / "results.csv").read_text().splitlines()) == 3


# --- kill -9, SIGTERM and a NaN: one setting, one seed, resumed to the uninterrupted results --------

ONE_UNIT = [
    *TINY,
    "search.ops=[zero, skip, sep_conv_3x3]",
    "train.train_images=100",
]  # 5 samples, 2 epochs of 2 batches
TIMINGS = {"search_seconds", "train_seconds", "search_vs_cp", "t", "seconds", "eval_seconds", "elapsed", "images_per_s"}


def one_unit_args(folder) -> list[str]:
    return [
        "ablate",
        "--strategies",
        "cp",
        "--seeds",
        "1",
        "--device",
        "cpu",
        "--run-dir",
        str(folder),
        *set_flags(ONE_UNIT),
    ]


def outcome(folder) -> dict:
    """What an exact resume reproduces: the results rows, the unit's search samples and training
    epochs, all without their timings."""
    unit = folder / "units" / "cp-seed0"
    untimed = lambda d: {k: v for k, v in d.items() if k not in TIMINGS}  # noqa: E731
    return {
        "results": [untimed(u) for u in json.loads((folder / "results.json").read_text())["units"]],
        "samples": samples(unit / "search"),
        "epochs": [untimed(e) for e in read_all(unit / "train" / "events.jsonl") if e["kind"] == "epoch"],
    }


@pytest.fixture(scope="module")
def one_unit(tmp_path_factory):
    """An uninterrupted one-unit ablation in a subprocess (as the stopped ones run), timed."""
    folder = tmp_path_factory.mktemp("ablation") / "whole"
    started = time.perf_counter()
    result = run_cli(one_unit_args(folder), timeout=1200)
    assert result.returncode == 0, result.stderr
    return folder, time.perf_counter() - started


@pytest.mark.e2e
def test_sigkill_at_a_random_moment_then_resume_gives_the_same_ablation(one_unit, tmp_path):
    whole, seconds = one_unit
    folder = tmp_path / "killed"
    proc = start_cli(one_unit_args(folder))
    kill_at_a_random_moment(proc, folder, within=0.9 * seconds, started="base.yaml")  # search, training or tables
    result = run_cli(["ablate", "--resume", str(folder)], timeout=1200)
    assert result.returncode == 0, result.stderr
    assert outcome(folder) == outcome(whole)


@pytest.mark.e2e
def test_sigterm_checkpoints_prints_the_resume_command_exits_143_and_resumes_to_the_same_ablation(one_unit, tmp_path):
    whole, _ = one_unit
    folder = tmp_path / "terminated"
    search = folder / "units" / "cp-seed0" / "search"
    proc = start_cli(one_unit_args(folder))
    wait_for(
        lambda: (search / "events.jsonl").exists() and '"kind":"sample"' in (search / "events.jsonl").read_text(), 1200
    )
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 143, err
    assert f"cpnas ablate --resume {folder}" in out.replace("\n", "") and not err.strip()
    assert (
        load_checkpoint(search / "checkpoint")[1]["n"] >= 1 and run_states(search / "events.jsonl")[-1] == "interrupted"
    )
    result = run_cli(["ablate", "--resume", str(folder)], timeout=1200)
    assert result.returncode == 0, result.stderr
    assert outcome(folder) == outcome(whole)


@pytest.mark.e2e
def test_a_nan_stops_the_ablation_with_one_line_and_it_resumes_to_the_same_ablation(one_unit, tmp_path, monkeypatch):
    whole, _ = one_unit
    folder = tmp_path / "diverged"
    search = folder / "units" / "cp-seed0" / "search"
    step = CPStrategy.step

    def diverging(self, n, ctx):
        events = step(self, n, ctx)
        if n == 2:
            events[0]["loss_child"] = float("nan")
        return events

    monkeypatch.setattr(CPStrategy, "step", diverging)
    result = runner.invoke(app, one_unit_args(folder))
    assert_one_line_error(result, "the run diverged: loss_child is nan at sample n 3: its last good checkpoint is kept")
    fix = f"lower the learning rate (search.lr) in {search / 'config.yaml'} and resume with: cpnas ablate --resume"
    assert f"{fix} {folder}" in result.stderr
    assert load_checkpoint(search / "checkpoint")[1]["n"] == 2 and run_states(search / "events.jsonl")[-1] == "failed"
    assert not (folder / "results.json").exists()
    monkeypatch.undo()
    resumed = runner.invoke(app, ["ablate", "--resume", str(folder)])
    assert resumed.exit_code == 0, resumed.output
    assert outcome(folder) == outcome(whole)
