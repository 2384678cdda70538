"""The baseline strategies: ABanditNAS's torch-free bookkeeping against numbers worked by hand,
then bnas, random and abandit end to end at toy size, each resumed after SIGKILL to the same
genotype, with their event logs checked against what each method prescribes."""

import json
import math
import random

import pytest

from cpnas_cli.bookkeeping.bandit import Bandit, bandit_plan, lower_bound, sampling_probabilities, upper_bound
from cpnas_cli.bookkeeping.cp_rule import derive
from cpnas_cli.bookkeeping.ledger import Removal
from cpnas_cli.config import STRATEGIES as CONFIG_STRATEGIES
from cpnas_cli.engine.search.runner import Search
from cpnas_cli.engine.search.strategies import STRATEGIES
from cpnas_cli.engine.search.strategies.random import random_score
from cpnas_cli.events import read_all
from tests.cli import kill_at_a_random_moment, run_cli, start_cli
from tests.tiny_runs import TINY_SEARCH, run_in_library, samples, structure, tiny_args

OPS = ["zero", "skip", "max_pool_3x3", "sep_conv_3x3"]  # TINY_SEARCH's ops


# --- ABanditNAS bookkeeping, by hand ---------------------------------------------------------


def test_confidence_bounds():
    # m = 0.6, n = 1, N = 2: sqrt(2 ln 2 / 1) = 1.1774100
    assert lower_bound(0.6, 1, 2) == pytest.approx(0.6 - 1.1774100, abs=1e-7)
    # m = 0.81, n = 2, N = 3: sqrt(2 ln 3 / 2) = sqrt(1.0986123) = 1.0481471
    assert upper_bound(0.81, 2, 3) == pytest.approx(0.81 + 1.0481471, abs=1e-7)


def test_sampling_favours_the_lower_lcb():
    # -s_L = 0.5774100 and 0.3774100: p_a = 1 / (1 + e^-0.2) = 0.5498340
    p = sampling_probabilities({"a": -0.5774100, "b": -0.3774100})
    assert p["a"] == pytest.approx(0.5498340, abs=1e-7)
    assert p["b"] == pytest.approx(0.4501660, abs=1e-7)


def test_plan_is_warmup_then_k_times_t_trials_per_k():
    assert bandit_plan(3, 2) == [
        ("warmup", 3, 0),
        ("warmup", 3, 1),
        ("warmup", 3, 2),
        *[("bandit", 3, c) for c in range(6)],
        *[("bandit", 2, c) for c in range(4)],
    ]
    # the notes' counts after warm-up: T = 3 gives 81 trials for K0 = 7, 105 for K0 = 8
    assert len(bandit_plan(7, 3)) == 7 + 81
    assert len(bandit_plan(8, 3)) == 8 + 105


class FixedDraws:
    """Stands in for random.Random: hands out the given uniform numbers in order."""

    def __init__(self, *values):
        self.values = list(values)

    def random(self):
        return self.values.pop(0)


def warmed_bandit() -> Bandit:
    """One edge, ops a b c; warm-up rewards a 0.5, b 0.7, c 0.6 (so N = 3)."""
    bandit = Bandit.start(["a", "b", "c"], ["normal"], 1)
    for op, reward in (("a", 0.5), ("b", 0.7), ("c", 0.6)):
        bandit.warm_up({"normal": [op]}, reward)
    return bandit


def test_warm_up_sets_m_to_the_reward_and_n_to_one():
    bandit = warmed_bandit()
    assert bandit.m == {"normal": [{"a": 0.5, "b": 0.7, "c": 0.6}]}
    assert bandit.n == {"normal": [{"a": 1, "b": 1, "c": 1}]}
    assert bandit.trials == 3


def test_probabilities_and_draws_after_warm_up():
    bandit = warmed_bandit()
    # bonus sqrt(2 ln 3) = 1.4823038 for all: -s_L = 0.9823038, 0.7823038, 0.8823038
    # softmax: 1 : e^-0.2 : e^-0.1 = 1 : 0.8187308 : 0.9048374, sum 2.7235682
    p = bandit.probabilities()["normal"][0]
    assert p["a"] == pytest.approx(0.3671654, abs=1e-7)
    assert p["b"] == pytest.approx(0.3006096, abs=1e-7)
    assert p["c"] == pytest.approx(0.3322250, abs=1e-7)
    # slices of [0, 1) in op order: a [0, 0.367), b [0.367, 0.668), c [0.668, 1)
    assert [bandit.draw(FixedDraws(u))["normal"][0] for u in (0.2, 0.5, 0.9)] == ["a", "b", "c"]


def test_draws_follow_the_probabilities():
    bandit = warmed_bandit()
    rng = random.Random(0)
    counts = {"a": 0, "b": 0, "c": 0}
    for _ in range(20000):
        counts[bandit.draw(rng)["normal"][0]] += 1
    assert counts["a"] / 20000 == pytest.approx(0.3671654, abs=0.01)
    assert counts["b"] / 20000 == pytest.approx(0.3006096, abs=0.01)


def test_moving_average_then_pruning_by_the_lowest_ucb():
    bandit = warmed_bandit()
    bandit.record({"normal": ["a"]}, 0.9, lam=0.7)  # m_a = 0.3 * 0.5 + 0.7 * 0.9 = 0.78
    bandit.record({"normal": ["b"]}, 0.4, lam=0.7)  # m_b = 0.3 * 0.7 + 0.7 * 0.4 = 0.49
    bandit.record({"normal": ["a"]}, 0.8, lam=0.7)  # m_a = 0.3 * 0.78 + 0.7 * 0.8 = 0.794
    assert bandit.m["normal"][0] == pytest.approx({"a": 0.794, "b": 0.49, "c": 0.6})
    assert bandit.n["normal"][0] == {"a": 3, "b": 2, "c": 1}
    assert bandit.trials == 6
    # N = 6, 2 ln 6 = 3.5835189: s_U a = 0.794 + sqrt(3.5835189 / 3) = 1.8869347,
    # b = 0.49 + sqrt(3.5835189 / 2) = 1.8285662, c = 0.6 + sqrt(3.5835189) = 2.4930184
    upper = bandit.bounds(upper_bound)["normal"][0]
    assert upper == pytest.approx({"a": 1.8869347, "b": 1.8285662, "c": 2.4930184}, abs=1e-6)
    # b goes although c's m is lower than a's: c has been drawn once, its bound is wide
    (removal,) = bandit.prune(random.Random(0))
    assert (removal.k, removal.cell, removal.edge, removal.op) == (3, "normal", 0, "b")
    assert removal.mean_score == pytest.approx(0.49) and removal.indicator == pytest.approx(1.8285662, abs=1e-6)
    assert bandit.remaining == {"normal": [["a", "c"]]} and bandit.k == 2
    assert bandit.m["normal"][0]["b"] == pytest.approx(0.49)  # the removed arm's record stays


def test_equal_ucbs_are_broken_by_the_seeded_draw():
    picks = set()
    for seed in range(20):
        bandit = Bandit.start(["a", "b"], ["normal"], 1)
        bandit.warm_up({"normal": ["a"]}, 0.5)
        bandit.warm_up({"normal": ["b"]}, 0.5)
        (removal,) = bandit.prune(random.Random(seed))
        picks.add(removal.op)
    assert picks == {"a", "b"}


def test_bandit_state_survives_json():
    bandit = warmed_bandit()
    bandit.record({"normal": ["c"]}, 0.3, lam=0.7)
    bandit.prune(random.Random(1))
    again = Bandit.from_dict(json.loads(json.dumps(bandit.to_dict())))
    assert again == bandit


def test_finished_bandit_derives_the_genotype_by_m():
    """nodes = 2: edges 0->2, 1->2, 0->3, 1->3, 2->3; node 3 keeps its two edges of largest m."""
    bandit = Bandit.start(OPS, ["normal", "reduce"], 5)
    survivors = {
        "normal": ["sep_conv_3x3", "skip", "max_pool_3x3", "sep_conv_3x3", "skip"],
        "reduce": ["zero", "skip", "max_pool_3x3", "skip", "sep_conv_3x3"],
    }
    m = {"normal": [0.5, 0.5, 0.5, 0.8, 0.7], "reduce": [0.9, 0.4, 0.3, 0.6, 0.2]}
    for cell, ops in survivors.items():
        for edge, op in enumerate(ops):
            bandit.remaining[cell][edge] = [op]
            bandit.m[cell][edge][op], bandit.n[cell][edge][op] = m[cell][edge], 4
            bandit.reward_sum[cell][edge][op] = 2.0
    # reduce 0->2 ended on zero; sep_conv_3x3 was the last non-zero op it lost (m 0.35 then)
    bandit.removals = [Removal(2, "reduce", 0, "sep_conv_3x3", 0.35, 1.9)]
    g = derive(bandit.ledger(), nodes=2)
    ops = lambda cell: [[(e.op, e.source) for e in node] for node in cell.nodes]  # noqa: E731
    assert ops(g.normal) == [[("sep_conv_3x3", 0), ("skip", 1)], [("sep_conv_3x3", 1), ("skip", 2)]]
    assert ops(g.reduce) == [[("skip", 1), ("sep_conv_3x3", 0)], [("skip", 1), ("max_pool_3x3", 0)]]
    assert g.normal.nodes[1][0].indicator == pytest.approx(0.8)  # the genotype records m


# --- random and the registry -----------------------------------------------------------------


def test_random_scores_depend_on_seed_and_sample_only():
    scores = [random_score(5, n) for n in range(50)]
    assert scores == [random_score(5, n) for n in range(50)]
    assert scores != [random_score(6, n) for n in range(50)]
    assert all(0 <= s < 100 for s in scores) and len(set(scores)) == 50


def test_every_configurable_strategy_is_implemented():
    assert set(CONFIG_STRATEGIES) <= set(STRATEGIES)


# --- end to end ------------------------------------------------------------------------------


@pytest.fixture
def bnas(tiny_search):
    return tiny_search("search.strategy=bnas")


@pytest.fixture
def random_run(tiny_search):
    return tiny_search("search.strategy=random")


@pytest.fixture
def abandit(tiny_search):
    return tiny_search("search.strategy=abandit")


def events_of(reference, kind):
    return [e for e in read_all(reference[0] / "events.jsonl") if e["kind"] == kind]


@pytest.mark.e2e
@pytest.mark.parametrize("strategy, fixture", [("bnas", "bnas"), ("random", "random_run"), ("abandit", "abandit")])
def test_sigkill_then_resume_gives_the_same_genotype(strategy, fixture, request, tmp_path):
    ref_dir, ref_seconds = request.getfixturevalue(fixture)
    run_dir = tmp_path / "killed"
    proc = start_cli([*tiny_args(run_dir), "--strategy", strategy])
    kill_at_a_random_moment(proc, run_dir, within=ref_seconds)  # a random moment of the run
    result = run_cli(["search", "--resume", str(run_dir)], timeout=600)
    assert result.returncode == 0, result.stderr
    assert structure(run_dir) == structure(ref_dir)
    assert samples(run_dir) == samples(ref_dir)  # every sample's numbers, once each, in order
    assert json.loads((run_dir / "genotype.json").read_text())["meta"]["strategy"] == strategy


@pytest.mark.e2e
def test_bnas_scores_by_the_child_alone(bnas):
    runs = events_of(bnas, "sample")
    assert len(runs) == 4 + 3 + 2
    assert all(s["z"] == s["acc_child"] for s in runs)  # beta_P = 0, whatever search.beta_p says (2)
    assert any(s["acc_parent"] != s["acc_child"] for s in runs)  # the Parent trained, but did not count
    assert json.loads((bnas[0] / "genotype.json").read_text())["meta"]["beta_p"] == 0.0


@pytest.mark.e2e
def test_random_prunes_the_same_whatever_the_networks_learn(random_run, tmp_path):
    other = run_in_library(Search, tmp_path / "run", [*TINY_SEARCH, "search.strategy=random", "search.lr=0.3"])[0].path
    ref = random_run[0]
    prunes = lambda d: [e["removed"] for e in read_all(d / "events.jsonl") if e["kind"] == "prune"]  # noqa: E731
    accs = lambda d: [s[2:4] for s in samples(d)]  # noqa: E731
    assert accs(other) != accs(ref)  # other weights, other accuracies ...
    assert prunes(other) == prunes(ref) and structure(other) == structure(ref)  # ... same removals
    assert [s["z"] for s in events_of(random_run, "sample")] == [round(random_score(5, n), 4) for n in range(9)]


@pytest.mark.e2e
def test_abandit_follows_the_bandit_procedure(abandit):
    """Replay the log: warm-up covers every op once, every later trial updates m by Eq. 4.11,
    the rankings carry Eqs. 4.9, 4.10 and 4.12, and the op of lowest UCB goes every K*T trials."""
    events = [e for e in read_all(abandit[0] / "events.jsonl") if e["kind"] in ("sample", "ranking", "prune")]
    trials = [e for e in events if e["kind"] == "sample"]
    k0, lam = len(OPS), 0.7
    assert len(trials) == k0 + 4 + 3 + 2  # T = 1
    warmup = trials[:k0]
    assert all(t["phase"] == "warmup" for t in warmup)
    for cell in ("normal", "reduce"):
        for edge in range(14):
            assert sorted(t["arch"][cell][edge] for t in warmup) == sorted(OPS)
    m, n, count, k = {}, {}, 0, k0
    stage = 0  # bandit trials since the last pruning
    for e in events:
        if e["kind"] == "sample":
            a = e["reward"]
            assert a == pytest.approx(e["acc_child"] / 100, abs=1e-6)  # the Child's accuracy in [0, 1]
            for cell, ops in e["arch"].items():
                for edge, op in enumerate(ops):
                    key = (cell, edge, op)
                    m[key] = a if e["phase"] == "warmup" else (1 - lam) * m[key] + lam * a
                    n[key] = n.get(key, 0) + 1
            count += 1
            stage += e["phase"] == "bandit"
        elif e["kind"] == "ranking":
            assert e["K"] == k and e["trials"] == count
            for cell, edges in e["m"].items():
                for edge, values in enumerate(edges):
                    for op, value in values.items():
                        key = (cell, edge, op)
                        bonus = math.sqrt(2 * math.log(count) / n[key])
                        assert value == pytest.approx(m[key], abs=2e-4)
                        assert e["pulls"][cell][edge][op] == n[key]
                        assert e["indicator"][cell][edge][op] == pytest.approx(value + bonus, abs=1e-5)
                        assert e["lcb"][cell][edge][op] == pytest.approx(value - bonus, abs=1e-5)
                    assert sum(e["p"][cell][edge].values()) == pytest.approx(1, abs=1e-5)
            last_ucb = e["indicator"]
        else:
            assert stage == k * 1  # K * T trials since the last pruning
            for cell, ops in e["removed"].items():
                for edge, op in enumerate(ops):
                    assert last_ucb[cell][edge][op] == min(last_ucb[cell][edge].values())
            k, stage = k - 1, 0
    assert k == 1
