"""`cpnas correlate`: the drawn architectures and their genotypes, the scores and the summary
against numbers worked by hand, bad input, and a tiny study end to end, killed with SIGKILL at a
random moment and resumed to the same tables as an uninterrupted one."""

import json
import time

import pytest
from PIL import Image
from typer.testing import CliRunner

from cpnas_cli.cli.app import app
from cpnas_cli.config import dump_yaml, load_config
from cpnas_cli.engine.ablation.correlation_plan import (
    CorrelationPlan,
    draw_architectures,
    make_plan,
    score_columns,
    to_genotype,
)
from cpnas_cli.engine.ablation.correlation_results import summary
from cpnas_cli.engine.ablation.correlation_truth import reusable_trainings, training_key
from cpnas_cli.errors import UserError
from cpnas_cli.space import genotype as genotypes
from cpnas_cli.space.cells import OPS, cell_edges
from tests.cli import assert_one_line_error, kill_at_a_random_moment, run_cli, set_flags, start_cli
from tests.test_ablate import TINY

runner = CliRunner()


def test_draws_are_a_function_of_seed_and_index():
    first = draw_architectures(list(OPS), 4, 5, seed=3)
    assert first == draw_architectures(list(OPS), 4, 5, seed=3)
    assert draw_architectures(list(OPS), 4, 8, seed=3)[:5] == first  # more architectures keep the first ones
    assert first != draw_architectures(list(OPS), 4, 5, seed=4)
    edges = cell_edges(4)
    for arch in draw_architectures(["zero", "skip"], 4, 20, seed=0):  # zero half the time: redraws happen
        for ops in arch.values():
            assert len(ops) == len(edges)
            assert {dst for (_, dst), op in zip(edges, ops, strict=True) if op != "zero"} == {2, 3, 4, 5}


def test_genotype_keeps_every_non_zero_edge():
    # 2 nodes: edges 0->2, 1->2, 0->3, 1->3, 2->3.
    arch = {
        "normal": ["skip", "zero", "zero", "sep_conv_3x3", "max_pool_3x3"],
        "reduce": ["zero", "skip"] + ["skip"] * 3,
    }
    genotype = to_genotype(arch, 2)
    assert [[(e.op, e.source) for e in node] for node in genotype.normal.nodes] == [
        [("skip", 0)],
        [("sep_conv_3x3", 1), ("max_pool_3x3", 2)],
    ]
    assert [[(e.op, e.source) for e in node] for node in genotype.reduce.nodes] == [
        [("skip", 1)],
        [("skip", 0), ("skip", 1), ("skip", 2)],
    ]
    assert genotype.normal.concat == (2, 3)


def test_scores_are_eq_1_for_every_beta_and_the_parent_alone():
    plan = make_plan(3, [0, 2], seeds=1)
    assert plan.scores() == ["z beta_p=0 (A_C)", "z beta_p=1 (A_P)", "z beta_p=2", "random"]
    columns = score_columns(plan, [50.0, 60.0, 70.0], [80.0, 60.0, 65.0], seed=0)
    assert columns["z beta_p=0 (A_C)"] == [50.0, 60.0, 70.0]
    assert columns["z beta_p=1 (A_P)"] == [80.0, 60.0, 65.0]
    assert columns["z beta_p=2"] == [110.0, 60.0, 60.0]  # 50 + 2 * 30, 60 + 0, 70 + 2 * (-5)
    assert columns["random"] == score_columns(plan, [1, 2, 3], [1, 2, 3], seed=0)["random"]  # seeded


def test_summary_over_seeds():
    plan = CorrelationPlan(3, (1.0,), (0, 1), top_k=1)
    rows = [
        {"score": "z beta_p=1 (A_P)", "tau": 0.5, "rho": 0.6, "top_k_overlap": 1.0},
        {"score": "z beta_p=1 (A_P)", "tau": 0.1, "rho": None, "top_k_overlap": 0.0},
    ]
    entry = summary(plan.scores(), rows)[0]
    assert entry["seeds"] == 2 and entry["tau"] == pytest.approx(0.3)
    assert entry["tau_std"] == pytest.approx(0.2828427)  # sqrt(((0.2)^2 + (0.2)^2) / 1)
    assert entry["rho"] == 0.6 and entry["rho_std"] is None  # the undefined value is left out
    assert summary(plan.scores(), rows)[1] == {"score": "random", "seeds": 0, **dict.fromkeys(
        ["tau", "tau_std", "rho", "rho_std", "top_k_overlap", "top_k_overlap_std"])}  # fmt: skip


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--architectures", "2"], "--architectures must be at least 3"),
        (["--beta-p", "0,-1"], "must be finite and not negative"),
        (["--beta-p", "2,2"], "listed twice"),
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--beta-p", "a,b"], "is not a comma-separated list"),
        (["--resume", "/tmp", "--seeds", "2"], "--seeds cannot change it"),
    ],
)
def test_bad_input_is_one_line(args, pattern):
    assert_one_line_error(runner.invoke(app, ["correlate", *args]), pattern)


def test_resume_of_another_directory_is_one_line(tmp_path):
    assert_one_line_error(runner.invoke(app, ["correlate", "--resume", str(tmp_path)]), "is not a correlate directory")


def test_from_needs_a_supernet_with_every_op(tmp_path, tiny_search):
    def from_(path):
        return runner.invoke(app, ["correlate", "--from", str(path), "--device", "cpu"])

    assert_one_line_error(from_(tmp_path), "is not a cpnas run directory")
    (tmp_path / "config.yaml").write_text(dump_yaml(load_config("quick")))
    assert_one_line_error(from_(tmp_path), "has no checkpoint")
    finished, _ = tiny_search()  # a finished cp search: one op left per edge
    assert_one_line_error(from_(finished), "was pruned to 1 of 4 ops per edge")


def test_the_training_key_is_the_genotype_the_train_recipe_and_the_seed():
    genotype = to_genotype(draw_architectures(list(OPS), 4, 1, seed=0)[0], 4, {"index": 0})
    config = load_config("quick")
    key = training_key(genotype, config)
    # what a stand-alone training never reads leaves the key alone
    for change in ("search.kernel_weight=0.001", "data.val_fraction=0.2", "device=cpu"):
        assert training_key(genotype, load_config("quick", sets=[change])) == key, change
    assert training_key(to_genotype(draw_architectures(list(OPS), 4, 1, seed=0)[0], 4, {"index": 7}), config) == key
    # the recipe, the data it trains on, the seed and the network do not
    for change in ("train.epochs=1", "train.kernel_weight=0", "data.dataset=fashion-mnist", "seed=1"):
        assert training_key(genotype, load_config("quick", sets=[change])) != key, change
    assert training_key(to_genotype(draw_architectures(list(OPS), 4, 1, seed=1)[0], 4), config) != key


def test_reusable_trainings_are_keyed_also_where_the_row_has_no_key(tmp_path):
    genotype = to_genotype(draw_architectures(list(OPS), 4, 1, seed=0)[0], 4)
    config = load_config("quick")
    (tmp_path / "seed0" / "arch0").mkdir(parents=True)
    (tmp_path / "seed0" / "arch0" / "config.yaml").write_text(dump_yaml(config))
    accuracies = {"acc_child": 40.0, "acc_parent": 50.0, "test_acc_parent": 70.0}
    rows = [
        {"seed": 0, "index": 0, "genotype": genotypes.to_dict(genotype), "train_run": "seed0/arch0"}  # older row
        | {"test_acc_child": 61.0, **accuracies},
        {"seed": 0, "index": 1, "truth_key": "k", "train_run": "/elsewhere/arch3", "test_acc_child": 55.0}  # reused
        | accuracies,
    ]
    (tmp_path / "results.json").write_text(json.dumps({"architectures": rows}))
    found = reusable_trainings(tmp_path)
    assert found[training_key(genotype, config)]["train_run"] == str(tmp_path / "seed0" / "arch0")
    assert found["k"]["train_run"] == "/elsewhere/arch3" and found["k"]["test_acc_child"] == 55.0


def test_truth_must_be_a_correlate_run(tmp_path):
    assert_one_line_error(runner.invoke(app, ["correlate", "--truth", str(tmp_path)]), "is not a correlate directory")


def test_plan_round_trips():
    plan = make_plan(5, [0.5, 2], seeds=2, first_seed=3)
    assert plan.seeds == (3, 4) and plan.top_k == 1
    assert CorrelationPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    with pytest.raises(UserError):
        make_plan(5, [float("inf")], 1)


def tables(folder) -> dict:
    data = json.loads((folder / "results.json").read_text())
    for row in data["architectures"]:
        row.pop("train_seconds")  # wall time: the one figure a resumed run may not repeat
    return {k: data[k] for k in ("architectures", "statistics", "summary")}


ARGS = ["correlate", "--architectures", "3", "--seeds", "1", "--beta-p", "0,2", "--device", "cpu", *set_flags(TINY)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A tiny study run uninterrupted once for this module: (its directory, its wall seconds)."""
    folder = tmp_path_factory.mktemp("correlate") / "reference"
    started = time.perf_counter()
    result = run_cli([*ARGS, "--run-dir", str(folder)], timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Kendall tau" in result.stdout and "z beta_p=2" in result.stdout
    return folder, time.perf_counter() - started


@pytest.mark.e2e
def test_correlate_killed_at_random_resumes_to_the_same_tables(tmp_path, reference):
    reference, seconds = reference
    data = json.loads((reference / "results.json").read_text())
    assert [(r["seed"], r["index"]) for r in data["architectures"]] == [(0, 0), (0, 1), (0, 2)]
    assert [r["score"] for r in data["statistics"]] == ["z beta_p=0 (A_C)", "z beta_p=1 (A_P)", "z beta_p=2", "random"]
    assert Image.open(reference / "scatter-z-beta_p2.png").size == (960, 600)
    assert len((reference / "results.csv").read_text().splitlines()) == 5

    killed = tmp_path / "killed"
    proc = start_cli([*ARGS, "--run-dir", str(killed)])
    kill_at_a_random_moment(proc, killed / "seed0" / "supernet", within=seconds)
    result = run_cli(["correlate", "--resume", str(killed)], timeout=600)
    assert result.returncode == 0, result.stderr
    assert tables(killed) == tables(reference)
    again = run_cli(["correlate", "--resume", str(killed)], timeout=600)  # finished: nothing is redone
    assert again.returncode == 0 and tables(killed) == tables(reference)

    # --from the reference's supernet: the same draw, the same scores, the same trainings
    scored = tmp_path / "from"
    result = run_cli([*ARGS, "--from", str(reference / "seed0" / "supernet"), "--run-dir", str(scored)], timeout=600)
    assert result.returncode == 0, result.stderr
    assert not (scored / "seed0" / "supernet").exists()
    assert (scored / "seed0" / "scores.json").read_text() == (reference / "seed0" / "scores.json").read_text()
    assert tables(scored) == tables(reference)


@pytest.mark.e2e
def test_truth_reuses_the_trainings_for_another_supernet_setting(tmp_path, reference):
    reference, _ = reference
    other = tmp_path / "kernel"
    cp_loss = ["--set", "search.kernel_weight=0.001", "--set", "search.center_weight=0.1"]
    result = run_cli([*ARGS, *cp_loss, "--truth", str(reference), "--run-dir", str(other)], timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(reused from") == 3
    assert (other / "seed0" / "supernet" / "events.jsonl").is_file()  # its own supernet
    assert not list((other / "seed0").glob("arch*"))  # and no training of its own
    mine, theirs = (json.loads((f / "results.json").read_text())["architectures"] for f in (other, reference))
    for row, original in zip(mine, theirs, strict=True):
        assert row["truth_key"] == original["truth_key"] and row["reused_from"] == str(reference.resolve())
        assert row["test_acc_child"] == original["test_acc_child"]
        assert row["train_run"] == str(reference.resolve() / original["train_run"])


@pytest.mark.e2e
def test_ranking_of_a_real_search_against_a_real_truth(tmp_path, reference, tiny_search):
    search, _ = tiny_search()
    out = tmp_path / "ranking"
    result = run_cli(["correlate", "--ranking", str(search), "--truth", str(reference[0]), "--run-dir", str(out)])
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "results.json").read_text())
    # three architectures of 2 x 14 edges: at most 3 different ops per edge have a truth
    assert 28 <= data["statistics"][0]["points"] <= 84 and len(data["statistics"]) == 10
