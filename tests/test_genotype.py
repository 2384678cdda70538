"""Genotype derivation, the genotype.json schema and the DARTS string form."""

import json
import random

import pytest

from cpnas_cli.bookkeeping.cp_rule import derive
from cpnas_cli.bookkeeping.ledger import Ledger, Removal
from cpnas_cli.errors import UserError
from cpnas_cli.space import genotype as g
from tests.genotypes import DARTS_V2

# nodes = 2: edges (0,2) (1,2) (0,3) (1,3) (2,3)
SURVIVORS = {
    "normal": ["sep_conv_3x3", "skip", "zero", "max_pool_3x3", "dil_conv_3x3"],
    "reduce": ["zero", "zero", "avg_pool_3x3", "skip", "sep_conv_5x5"],
}
FINAL_E = {  # e of the survivor at the last ranking (K = 2)
    "normal": [0.9, 0.6, 0.99, 0.7, 0.8],
    "reduce": [0.95, 0.85, 0.6, 0.9, 0.7],
}


def finished_ledger(lifetime_means=None) -> Ledger:
    """A finished search by hand; `lifetime_means[cell][edge]` sets the survivors' whole-search mean z."""
    remaining = {c: [[op] for op in ops] for c, ops in SURVIVORS.items()}
    last = {c: [{op: e} for op, e in zip(SURVIVORS[c], FINAL_E[c], strict=True)] for c in SURVIVORS}
    means = lifetime_means or {c: [50.0] * 5 for c in SURVIVORS}
    lifetime = {
        c: [
            {
                op: [means[c][i] * 3, 3]
                for op in (
                    "zero",
                    "skip",
                    "sep_conv_3x3",
                    "sep_conv_5x5",
                    "max_pool_3x3",
                    "avg_pool_3x3",
                    "dil_conv_3x3",
                    "dil_conv_5x5",
                )
            }
            for i in range(5)
        ]
        for c in SURVIVORS
    }
    removals = [
        # the reduce cell's zero-survivor edges lost these non-zero ops (latest last)
        Removal(3, "reduce", 0, "skip", 40.0, 0.2),
        Removal(2, "reduce", 0, "max_pool_3x3", 50.0, 0.3),
        Removal(2, "reduce", 1, "dil_conv_5x5", 45.0, 0.4),
        Removal(2, "normal", 2, "sep_conv_5x5", 45.0, 0.01),
    ]
    return Ledger(remaining=remaining, removals=removals, last_ranking=last, lifetime=lifetime)


def test_darts_rule_keeps_the_two_strongest_nonzero_edges_per_node():
    genotype = derive(finished_ledger(), nodes=2)
    # normal node 2: sep_conv_3x3 from 0 (0.9), skip from 1 (0.6)
    assert [(e.op, e.source) for e in genotype.normal.nodes[0]] == [("sep_conv_3x3", 0), ("skip", 1)]
    # normal node 3: edge 0->3 survived as zero; dil_conv_3x3 from 2 (0.8) beats max_pool from 1 (0.7)
    assert [(e.op, e.source) for e in genotype.normal.nodes[1]] == [("dil_conv_3x3", 2), ("max_pool_3x3", 1)]
    assert genotype.normal.concat == (2, 3)


def test_equal_final_indicators_are_ranked_by_the_whole_search_mean_score(monkeypatch):
    # T = 1 makes e equal on every edge; then the survivors' mean z over the search decides
    monkeypatch.setitem(FINAL_E, "normal", [0.7] * 5)
    genotype = derive(finished_ledger({"normal": [60, 70, 0, 65, 62], "reduce": [50] * 5}), nodes=2)
    # normal node 3 (edges 0->3 zero, 1->3 max_pool mean 65, 2->3 dil_conv mean 62): max_pool first
    assert [(e.op, e.source) for e in genotype.normal.nodes[1]] == [("max_pool_3x3", 1), ("dil_conv_3x3", 2)]
    # normal node 2: skip (70) before sep_conv_3x3 (60)
    assert [(e.op, e.source) for e in genotype.normal.nodes[0]] == [("skip", 1), ("sep_conv_3x3", 0)]


def test_zero_survivors_lend_their_last_nonzero_op_when_a_node_lacks_inputs():
    genotype = derive(finished_ledger(), nodes=2)
    # reduce node 2: both edges survived as zero; their last non-zero ops were
    # max_pool_3x3 (e 0.3, from 0) and dil_conv_5x5 (e 0.4, from 1): stronger first
    assert [(e.op, e.source, e.indicator) for e in genotype.reduce.nodes[0]] == [
        ("dil_conv_5x5", 1, 0.4),
        ("max_pool_3x3", 0, 0.3),
    ]
    # reduce node 3: three non-zero survivors, the two strongest are skip (0.9) and sep_conv_5x5 (0.7)
    assert [(e.op, e.source) for e in genotype.reduce.nodes[1]] == [("skip", 1), ("sep_conv_5x5", 2)]


def test_keep_all_takes_every_nonzero_survivor():
    genotype = derive(finished_ledger(), nodes=2, keep="all")
    assert [(e.op, e.source) for e in genotype.normal.nodes[1]] == [("dil_conv_3x3", 2), ("max_pool_3x3", 1)]
    assert [(e.op, e.source) for e in genotype.reduce.nodes[1]] == [
        ("skip", 1),
        ("sep_conv_5x5", 2),
        ("avg_pool_3x3", 0),
    ]
    # an all-zero node still gets one input: the strongest stand-in
    assert [(e.op, e.source) for e in genotype.reduce.nodes[0]] == [("dil_conv_5x5", 1)]
    with pytest.raises(UserError, match="--format json"):
        g.to_darts(genotype)


def saturated_ledger(scale: str) -> Ledger:
    """K = 2 finished on nodes = 2 cells: x beats y on every edge; at node 3 (edges 0->3, 1->3,
    2->3) by 40, 50 and 45 points, with x's mean z over the search 90, 70 and 80."""
    ledger = Ledger.start(["x", "y"], ["normal", "reduce"], 5, scale)
    x, y = [60, 60, 90, 70, 80], [50, 50, 50, 20, 35]
    for cell in ledger.scores:
        ledger.scores[cell] = [{"x": [x[i]], "y": [y[i]]} for i in range(5)]
        ledger.lifetime[cell] = [{"x": [x[i], 1], "y": [y[i], 1]} for i in range(5)]
    ledger.prune(random.Random(0))
    return ledger


def test_percent_e_saturates_where_fraction_still_ranks_the_margins():
    # percent: e = 1 / (1 + exp(-40)) rounds to exactly 1.0 on all three edges: the tie goes to the
    # mean z over the search, 90 (from 0) and 80 (from 2)
    percent = derive(saturated_ledger("percent"), nodes=2)
    assert [(e.op, e.source) for e in percent.normal.nodes[1]] == [("x", 0), ("x", 2)]
    assert {e.indicator for e in percent.normal.nodes[1]} == {1.0}
    # fraction: e = 1 / (1 + exp(-m / 100)) orders the margins: 50 (from 1), 45 (from 2)
    fraction = derive(saturated_ledger("fraction"), nodes=2)
    assert [(e.op, e.source) for e in fraction.normal.nodes[1]] == [("x", 1), ("x", 2)]
    assert [e.indicator for e in fraction.normal.nodes[1]] == [0.622459, 0.610639]  # 1 / (1 + exp(-0.5)), ... -0.45


def test_derive_refuses_an_unfinished_search():
    with pytest.raises(ValueError):
        derive(Ledger.start(["skip", "zero"], ["normal", "reduce"], 5), nodes=2)


def test_json_round_trip(tmp_path):
    genotype = derive(finished_ledger(), nodes=2, meta={"beta_p": 2.0})
    path = tmp_path / "genotype.json"
    g.save(genotype, path)
    data = json.loads(path.read_text())
    assert data["format"] == "cpnas-genotype" and data["version"] == 1
    assert data["normal"]["nodes"][0][0] == {"op": "sep_conv_3x3", "input": 0, "indicator": 0.9}
    again = g.load(path)
    assert again == genotype and again.meta == {"beta_p": 2.0}


def test_darts_string_round_trip():
    genotype = g.from_darts(DARTS_V2)
    assert genotype.normal.nodes[1][0] == g.Edge("sep_conv_3x3", 0)
    assert genotype.normal.nodes[2][1] == g.Edge("skip", 0)  # skip_connect -> skip
    assert g.to_darts(genotype) == DARTS_V2
    assert g.from_darts(g.to_darts(genotype)) == genotype


def test_darts_range_concat_and_file_loading(tmp_path):
    text = DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)")
    path = tmp_path / "genotype.txt"
    path.write_text(text)
    assert g.load(path).normal.concat == (2, 3, 4, 5)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(format="other"), "not a cpnas genotype"),
        (lambda d: d.update(version=99), "version 99"),
        (lambda d: d["normal"]["nodes"][0][0].update(op="conv_7x7"), "uses op conv_7x7, which cpnas's search space"),
        (lambda d: d["normal"]["nodes"][0][0].update(op="zero"), "normal node 2: an edge with the zero op"),
        (lambda d: d["normal"]["nodes"][0][0].update(op="none"), "normal node 2: an edge with the zero op"),
        (lambda d: d["normal"]["nodes"][0][0].update(input=2), "input 2 must be a node before it"),
        (
            lambda d: d["reduce"]["nodes"][1][1].update(input=d["reduce"]["nodes"][1][0]["input"]),
            "reduce node 3 takes node 2 twice",
        ),
        (lambda d: d["normal"].update(concat=[2, 9]), "concat"),
        (lambda d: d.pop("reduce"), "reduce is missing"),
        (lambda d: d["normal"]["nodes"].append([]), "no incoming edges"),
    ],
)
def test_validation_names_the_problem(tmp_path, mutate, message):
    data = g.to_dict(g.from_darts(DARTS_V2))
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=message):
        g.load(path)


def test_darts_spellings_are_read_in_json_too():
    data = g.to_dict(g.from_darts(DARTS_V2))
    for node in data["normal"]["nodes"]:
        for edge in node:
            edge["op"] = {"skip": "skip_connect"}.get(edge["op"], edge["op"])
    assert g.from_dict(data) == g.from_darts(DARTS_V2)


def test_every_op_of_another_search_space_is_named_at_once():
    nasnet_like = DARTS_V2.replace("('dil_conv_3x3', 2)", "('sep_conv_7x7', 2)").replace(
        "('max_pool_3x3', 0), ('max_pool_3x3', 1)", "('conv_7x1_1x7', 0), ('max_pool_3x3', 1)"
    )
    with pytest.raises(UserError, match="F uses ops sep_conv_7x7, conv_7x1_1x7, which cpnas's search space"):
        g.from_darts(nasnet_like, where="F")


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "Genotype(normal=[('sep_conv_3x3', 0)], reduce=[])",
        "Genotype(normal=__import__('os'))",
        "[1, 2]",
        DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=5"),  # was a TypeError
    ],
)
def test_malformed_files_are_user_errors(tmp_path, text):
    path = tmp_path / "g.json"
    path.write_text(text)
    with pytest.raises(UserError):
        g.load(path)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        g.load(tmp_path / "nope.json")
