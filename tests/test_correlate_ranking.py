"""`cpnas correlate --ranking`: a search's own ranking scored op by op against a correlate run's
stand-alone trainings, on a search and a truth written by hand (nodes = 2: 5 edges per cell,
ops a b c), every figure worked out below."""

import json
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from cpnas_cli.cli.app import app
from cpnas_cli.config import dump_yaml, load_config
from cpnas_cli.engine.ablation.correlation_plan import STATISTICS
from cpnas_cli.engine.ablation.correlation_ranking import (
    FIRST_Z,
    LAST_Z,
    SURVIVED,
    op_accuracy,
    per_edge,
    pooled,
    ranking_statistics,
    search_scores,
)
from cpnas_cli.engine.ablation.correlation_truth import trained_architectures
from cpnas_cli.events import EventWriter, header
from cpnas_cli.space.cells import cell_edges
from tests.cli import ENV, assert_one_line_error

runner = CliRunner()
CELLS, EDGES = ["normal", "reduce"], [list(e) for e in cell_edges(2)]
ODD = ("normal", 0)  # the one edge where the search ranks the ops the other way round
TAU = STATISTICS["tau"]


def per_edge_values(usual: dict, odd: dict) -> dict:
    return {c: [dict(odd if (c, i) == ODD else usual) for i in range(len(EDGES))] for c in CELLS}


def write_search(folder, seed: int = 4):
    """K = 3: z̄ a 50, b 60, c 70 (odd edge a 80, b 60, c 40), a goes (odd: c); K = 2: z̄ b 65, c 75
    (odd: a 85, b 62), b goes. Survivor c (odd: a)."""
    folder.mkdir()
    config = load_config("quick")
    config.seed = seed
    (folder / "config.yaml").write_text(dump_yaml(config))
    head = {"seed": seed, "search": {"strategy": "cp", "nodes": 2}}
    log = EventWriter(folder / "events.jsonl")
    log.write([header("search", head, cells=CELLS, edges=EDGES, ops=["a", "b", "c"], indicator_scale="fraction")])
    for k, means, odd_means, removed, odd_removed in [
        (3, {"a": 50, "b": 60, "c": 70}, {"a": 80, "b": 60, "c": 40}, "a", "c"),
        (2, {"b": 65, "c": 75}, {"a": 85, "b": 62}, "b", "b"),
    ]:
        log.emit("ranking", K=k, mean_z=per_edge_values(means, odd_means), indicator={}, scale="fraction")
        log.emit(
            "prune", K=k, removed={c: [odd_removed if (c, i) == ODD else removed for i in range(5)] for c in CELLS}
        )
    return folder


def write_truth(folder, accuracies=(80.0, 70.0, 60.0)):
    """A correlate run that trained three architectures: every edge c (80%), every edge b (70%),
    every edge a (60%). So the truth of every (edge, op) is a 60, b 70, c 80."""
    (folder / "seed0").mkdir(parents=True)
    (folder / "correlate.json").write_text("{}")
    archs = [{c: [op] * 5 for c in CELLS} for op in "cba"][: len(accuracies)]
    supernet = [50.0] * len(archs)  # the supernet's scores: not what --ranking compares
    (folder / "seed0" / "scores.json").write_text(
        json.dumps({"architectures": archs, "acc_child": supernet, "acc_parent": supernet})
    )
    rows = [
        {"seed": 0, "index": i, "acc_child": 50.0, "acc_parent": 50.0, "test_acc_child": acc, "test_acc_parent": acc}
        | {"train_run": f"seed0/arch{i}"}
        for i, acc in enumerate(accuracies)
    ]
    (folder / "results.json").write_text(json.dumps({"architectures": rows}))
    return folder


def test_scores_come_from_the_rankings_and_prunings(tmp_path):
    head, scores = search_scores(write_search(tmp_path / "search"))
    assert head["config"]["seed"] == 4
    # the last ranking an op was in: the odd edge's c went at K = 3 (40), a and b lasted to K = 2
    assert [scores[LAST_Z][("normal", 0, op)] for op in "abc"] == [85, 62, 40]
    assert [scores[LAST_Z][("reduce", 3, op)] for op in "abc"] == [50, 65, 75]
    assert [scores[FIRST_Z][("normal", 0, op)] for op in "abc"] == [80, 60, 40]
    assert [scores[SURVIVED][("reduce", 3, op)] for op in "abc"] == [0, 1, 2]
    # e of a where it went (K = 3), as fractions: exp(-0.2) / (exp(-0.2) + exp(-0.1) + 1)
    # = 0.818731 / 2.723568 = 0.300609; b at K = 2: 1 / (1 + exp(0.1)) = 0.475021
    e = scores["e (fraction), last ranking"]
    assert e[("reduce", 3, "a")] == pytest.approx(0.300609, abs=1e-6)
    assert e[("reduce", 3, "b")] == pytest.approx(0.475021, abs=1e-6)


def test_truth_is_the_mean_accuracy_of_the_architectures_holding_the_op(tmp_path):
    archs = trained_architectures(write_truth(tmp_path / "truth"))
    truth = op_accuracy(archs, range(3))
    assert truth[("normal", 0, "a")] == 60 and truth[("reduce", 4, "c")] == 80
    # a resample: architecture 0 twice (c, 80) and 2 (a, 60); b held by none is left out
    resample = op_accuracy(archs, [0, 0, 2])
    assert resample[("normal", 1, "c")] == 80 and resample[("normal", 1, "a")] == 60
    assert ("normal", 1, "b") not in resample


def test_pooled_and_per_edge_statistics_by_hand(tmp_path):
    _, scores = search_scores(write_search(tmp_path / "search"))
    truth = op_accuracy(trained_architectures(write_truth(tmp_path / "truth")), range(3))
    # per edge: 9 edges order a < b < c as training does (tau +1), the odd one the other way (-1)
    for name in (LAST_Z, FIRST_Z, SURVIVED, "e (fraction), last ranking"):
        assert per_edge(scores[name], truth, TAU) == pytest.approx(0.8)
    # pooled, rankings survived against truth over the 30 points: groups (survived, truth)
    # (0,60) x9, (1,70) x10, (2,80) x9, (2,60) x1, (0,80) x1. Concordant 90 + 81 + 90 = 261,
    # discordant 10 + 10 + 1 = 21; ties in each side 3 x 45 = 135 of the 435 pairs:
    # tau_b = (261 - 21) / sqrt(300 * 300) = 0.8
    assert pooled(scores[SURVIVED], truth, TAU) == pytest.approx(0.8)


def test_rows_hold_both_views_and_the_bootstrap_repeats(tmp_path):
    _, scores = search_scores(write_search(tmp_path / "search"))
    archs = trained_architectures(write_truth(tmp_path / "truth"))
    rows = ranking_statistics(scores, archs, seed=4, resamples=50)
    assert rows == ranking_statistics(scores, archs, seed=4, resamples=50)
    by_name = {r["score"]: r for r in rows}
    assert len(rows) == 10 and by_name[f"{LAST_Z} (per edge)"]["points"] == 30
    # the best-scored op of an edge is the best-trained (c) on 9 of the 10 edges
    assert by_name[f"{LAST_Z} (per edge)"]["top_k_overlap"] == pytest.approx(0.9)
    assert by_name[f"{SURVIVED} (pooled)"]["tau"] == pytest.approx(0.8)
    low, high = by_name[f"{SURVIVED} (pooled)"]["tau_low"], by_name[f"{SURVIVED} (pooled)"]["tau_high"]
    assert low <= high


def test_the_command_writes_the_tables(tmp_path):
    search, truth = write_search(tmp_path / "search"), write_truth(tmp_path / "truth")
    out = tmp_path / "out"
    args = ["correlate", "--ranking", str(search), "--truth", str(truth), "--run-dir", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "rankings survived" in result.output and "Over searches" in result.output
    assert len((out / "results.csv").read_text().splitlines()) == 11
    data = json.loads((out / "results.json").read_text())
    assert data["architectures"] == 3 and len(data["points"]) == 30 and len(data["summary"]) == 10
    assert (out / "scatter-mean-z-last-ranking.png").is_file()


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        ([], "no --truth"),
        (["--truth", "TRUTH", "--seeds", "2"], "--seeds"),
        (["--truth", "SEARCH"], "is not a correlate directory"),
    ],
)
def test_bad_ranking_input_is_one_line(tmp_path, extra, pattern):
    search, truth = write_search(tmp_path / "search"), write_truth(tmp_path / "truth")
    extra = [str({"TRUTH": truth, "SEARCH": search}.get(a, a)) for a in extra]
    assert_one_line_error(runner.invoke(app, ["correlate", "--ranking", str(search), *extra]), pattern)


def test_a_search_without_ranking_or_a_truth_without_trainings_is_one_line(tmp_path):
    search, truth = write_search(tmp_path / "search"), write_truth(tmp_path / "truth")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.yaml").write_text((search / "config.yaml").read_text())
    result = runner.invoke(app, ["correlate", "--ranking", str(bare), "--truth", str(truth)])
    assert_one_line_error(result, "has no ranking with mean z")
    lean = write_truth(tmp_path / "lean", accuracies=(80.0,))
    result = runner.invoke(app, ["correlate", "--ranking", str(search), "--truth", str(lean)])
    assert_one_line_error(result, "has 1 finished stand-alone training")


def test_ranking_imports_no_torch(tmp_path):
    search, truth = write_search(tmp_path / "search"), write_truth(tmp_path / "truth")
    args = ["correlate", "--ranking", str(search), "--truth", str(truth), "--run-dir", str(tmp_path / "out")]
    script = textwrap.dedent(f"""
        import sys
        from typer.testing import CliRunner
        from cpnas_cli.cli.app import app
        args = {args!r}
        assert CliRunner().invoke(app, args).exit_code == 0
        print("torch" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
