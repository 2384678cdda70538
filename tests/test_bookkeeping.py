"""The torch-free search bookkeeping against numbers worked by hand: Alg. 1's sampling
schedule, Eq. 1, Eq. 2 and the pruning step."""

import json
import math
import random

import pytest

from cpnas_cli.bookkeeping.budget import epochs_that_fit
from cpnas_cli.bookkeeping.indicator import edge_indicator, performance
from cpnas_cli.bookkeeping.ledger import Ledger
from cpnas_cli.bookkeeping.schedule import round_architectures, round_rng, sample_plan


def test_eq1_scores_child_plus_weighted_gap():
    # A_C = 80, A_P = 90, beta_P = 2: 80 + 2 * (90 - 80) = 100
    assert performance(80.0, 90.0, 2.0) == 100.0
    # beta_P = 0.5: 60 + 0.5 * (70 - 60) = 65
    assert performance(60.0, 70.0, 0.5) == 65.0
    # beta_P = 0 is the Child alone (BNAS†), whatever the Parent does
    assert performance(42.0, 99.0, 0.0) == 42.0


def test_eq2_is_a_softmax_over_mean_scores():
    # percent: z̄ enter as they are. Two ops, z̄ = 1 and 0: e = e/(e+1) = 0.7310586, 1/(e+1) = 0.2689414
    e = edge_indicator({"a": 1.0, "b": 0.0}, "percent")
    assert e["a"] == pytest.approx(0.7310586, abs=1e-7)
    assert e["b"] == pytest.approx(0.2689414, abs=1e-7)
    # three ops, z̄ = 2, 1, 0: e^2 / (e^2 + e + 1) = 7.389056 / 11.107338 = 0.6652410
    e = edge_indicator({"x": 2.0, "y": 1.0, "z": 0.0}, "percent")
    assert e["x"] == pytest.approx(0.6652410, abs=1e-7)
    assert e["y"] == pytest.approx(0.2447285, abs=1e-7)
    assert e["z"] == pytest.approx(0.0900306, abs=1e-7)


def test_eq2_reads_accuracy_as_a_fraction_by_default():
    # z̄ = 200, 100, 0 percent are 2, 1, 0 as fractions: the three-op values above
    e = edge_indicator({"x": 200.0, "y": 100.0, "z": 0.0})
    assert e["x"] == pytest.approx(0.6652410, abs=1e-7)
    assert e["z"] == pytest.approx(0.0900306, abs=1e-7)
    # 60 against 50 percent: 1 / (1 + exp(-0.1)) = 1 / 1.9048374 = 0.5249792; in percent 1 / (1 + exp(-10)) = 0.9999546
    assert edge_indicator({"a": 60.0, "b": 50.0})["a"] == pytest.approx(0.5249792, abs=1e-7)
    assert edge_indicator({"a": 60.0, "b": 50.0}, "percent")["a"] == pytest.approx(0.9999546, abs=1e-7)


def test_eq2_is_stable_for_percent_scale_scores():
    # percent-scale scores would overflow a naive exp(); shifting by the max keeps it exact
    e = edge_indicator({"a": 1000.0, "b": 999.0}, "percent")
    assert e["a"] == pytest.approx(1 / (1 + math.exp(-1)))
    # and past about 37 points a percent e is exactly 1.0 in floating point; as a fraction it is not
    assert edge_indicator({"a": 80.0, "b": 40.0}, "percent")["a"] == 1.0
    assert edge_indicator({"a": 80.0, "b": 40.0})["a"] == pytest.approx(1 / (1 + math.exp(-0.4)))


@pytest.mark.parametrize("seed", range(5))
def test_each_round_samples_every_op_of_every_edge_exactly_once(seed):
    remaining = {"normal": [["a", "b", "c"], ["b", "c", "d"]], "reduce": [["a", "c", "d"]]}
    archs = round_architectures(remaining, round_rng(seed, 3, 0))
    assert len(archs) == 3
    for cell, edges in remaining.items():
        for edge, ops in enumerate(edges):
            assert sorted(a[cell][edge] for a in archs) == sorted(ops)


def test_schedule_is_a_pure_function_of_seed_k_and_round():
    remaining = {"normal": [list("abcdefgh") for _ in range(14)]}
    first = round_architectures(remaining, round_rng(7, 8, 1))
    assert first == round_architectures(remaining, round_rng(7, 8, 1))
    assert first != round_architectures(remaining, round_rng(7, 8, 2))
    assert first != round_architectures(remaining, round_rng(8, 8, 1))


def test_schedule_rejects_edges_with_different_k():
    with pytest.raises(ValueError):
        round_architectures({"normal": [["a", "b"], ["a"]]}, random.Random(0))


def test_sample_plan_counts_t_times_k0_down_to_2():
    # the paper: T = 3, K = 8 -> 3 * (8+7+6+5+4+3+2) = 105 samples
    assert len(sample_plan(8, 3)) == 105
    assert sample_plan(3, 2) == [
        (3, 0, 0),
        (3, 0, 1),
        (3, 0, 2),
        (3, 1, 0),
        (3, 1, 1),
        (3, 1, 2),
        (2, 0, 0),
        (2, 0, 1),
        (2, 1, 0),
        (2, 1, 1),
    ]


def hand_ledger(scale: str = "fraction") -> Ledger:
    """One cell, two edges, ops a b c, two rounds of three samples with known scores."""
    ledger = Ledger.start(["a", "b", "c"], ["normal"], 2, scale)
    samples = [  # (edge 0 op, edge 1 op, z)
        ("a", "b", 70.0),
        ("b", "c", 60.0),
        ("c", "a", 50.0),  # round 1
        ("b", "a", 80.0),
        ("c", "b", 40.0),
        ("a", "c", 65.0),  # round 2
    ]
    for op0, op1, z in samples:
        ledger.record({"normal": [op0, op1]}, z)
    return ledger


def test_mean_scores_average_the_t_rounds():
    means = hand_ledger().mean_scores()["normal"]
    # edge 0: a = (70+65)/2 = 67.5, b = (60+80)/2 = 70, c = (50+40)/2 = 45
    assert means[0] == {"a": 67.5, "b": 70.0, "c": 45.0}
    # edge 1: a = (50+80)/2 = 65, b = (70+40)/2 = 55, c = (60+65)/2 = 62.5
    assert means[1] == {"a": 65.0, "b": 55.0, "c": 62.5}


def test_prune_removes_the_lowest_indicator_on_every_edge():
    ledger = hand_ledger()
    removed = ledger.prune(random.Random(0))
    assert [(r.edge, r.op) for r in removed] == [(0, "c"), (1, "b")]
    assert ledger.remaining == {"normal": [["a", "b"], ["a", "c"]]}
    assert ledger.k == 2
    # e of c on edge 0, z̄ as fractions: exp(0.45) / (exp(0.675) + exp(0.70) + exp(0.45))
    # = 1 / (exp(0.225) + exp(0.25) + 1) = 1 / (1.252323 + 1.284025 + 1) = 0.282777
    assert removed[0].indicator == pytest.approx(0.282777, abs=1e-6)
    assert removed[0].mean_score == 45.0
    # scores start afresh for the next K; the ranking that decided is kept
    assert ledger.scores == {"normal": [{"a": [], "b": []}, {"a": [], "c": []}]}
    # b on edge 1: 1 / (exp(0.10) + 1 + exp(0.075)) = 1 / (1.105171 + 1 + 1.077884) = 0.314164
    assert ledger.last_ranking["normal"][1]["b"] == pytest.approx(0.314164, abs=1e-6)


def test_prune_removes_the_same_ops_in_percent_with_other_e():
    ledger = hand_ledger(scale="percent")
    removed = ledger.prune(random.Random(0))
    assert [(r.edge, r.op) for r in removed] == [(0, "c"), (1, "b")]  # as on the fraction scale
    # e of c on edge 0: exp(45) / (exp(67.5) + exp(70) + exp(45)) = 1 / (exp(22.5) + exp(25) + 1)
    assert removed[0].indicator == pytest.approx(1 / (math.exp(22.5) + math.exp(25) + 1))
    assert ledger.last_ranking["normal"][1]["b"] == pytest.approx(1 / (math.exp(10) + 1 + math.exp(7.5)))


def test_prune_breaks_ties_with_the_given_generator():
    ledger = Ledger.start(["a", "b", "c"], ["normal"], 1)
    for op, z in [("a", 50.0), ("b", 50.0), ("c", 90.0)]:
        ledger.record({"normal": [op]}, z)
    removed = {
        Ledger.from_dict(json.loads(json.dumps(ledger.to_dict()))).prune(random.Random(s))[0].op for s in range(20)
    }
    assert removed == {"a", "b"}  # never c; both tied ops can go


def test_ranking_before_a_round_completes_is_refused():
    ledger = Ledger.start(["a", "b"], ["normal"], 1)
    ledger.record({"normal": ["a"]}, 10.0)
    with pytest.raises(ValueError):
        ledger.ranking()


def test_ledger_survives_a_json_round_trip():
    ledger = hand_ledger()
    ledger.prune(random.Random(0))
    again = Ledger.from_dict(json.loads(json.dumps(ledger.to_dict())))
    assert again == ledger


def test_a_checkpoint_from_before_the_scale_was_stored_stays_in_percent():
    data = hand_ledger().to_dict()
    del data["scale"]
    assert Ledger.from_dict(data).scale == "percent"
    assert hand_ledger().scale == "fraction"


def test_budget_plans_the_epochs_that_fit_after_the_first():
    # 57 min = 3420 s; epoch 1 took 300 s: 3120 s left hold 10.4 more epochs -> 1 + 10
    assert epochs_that_fit(1, 300.0, 57, 20) == 11
    assert epochs_that_fit(0, 0.0, 57, 20) == 20  # nothing measured yet: the largest plan


def test_budget_only_shrinks_the_plan():
    # 3 epochs in 1000 s (333.3 s each): 2420 s left hold 7.26 -> 3 + 7 = 10 < 11
    assert epochs_that_fit(3, 1000.0, 57, 11) == 10
    # a faster machine later (200 s each: 3 + 14 = 17) does not grow the plan of 11
    assert epochs_that_fit(3, 600.0, 57, 11) == 11


def test_budget_spent_ends_the_run_after_the_epoch_done():
    assert epochs_that_fit(5, 3500.0, 57, 11) == 5  # 80 s over: no more epochs, none undone


def test_no_budget_keeps_the_planned_epochs():
    assert epochs_that_fit(3, 1e9, None, 600) == 600
