"""Kendall's tau-b, Spearman's rho, the bootstrap interval and top-k overlap against values worked by hand."""

import math
import random

import pytest

from cpnas_cli.bookkeeping.rank_correlation import (
    average_ranks,
    bootstrap_interval,
    kendall_tau_b,
    spearman_rho,
    top_k_overlap,
)


def test_average_ranks_share_ties():
    # sorted: 1 (rank 1), 2 2 (ranks 2, 3 -> 2.5 each), 5 (rank 4)
    assert average_ranks([2, 5, 1, 2]) == [2.5, 4.0, 1.0, 2.5]


def test_no_ties():
    # x = 1 2 3 4, y = 1 3 2 4: of the 6 pairs only (2nd, 3rd) is discordant -> tau = (5 - 1) / 6.
    # Ranks are the values; d = 0 -1 1 0, sum d^2 = 2 -> rho = 1 - 6 * 2 / (4 * 15) = 0.8.
    x, y = [1, 2, 3, 4], [1, 3, 2, 4]
    assert kendall_tau_b(x, y) == pytest.approx(4 / 6)
    assert spearman_rho(x, y) == pytest.approx(0.8)


def test_ties_on_both_sides():
    # x = 1 2 2 3, y = 1 2 3 3. Pairs: (1,2) tied in x, (2,3) tied in y, the other 4 concordant.
    # tau_b = 4 / sqrt((6 - 1) (6 - 1)) = 0.8.
    # Ranks: x 1 2.5 2.5 4, y 1 2 3.5 3.5, mean 2.5; deviations x -1.5 0 0 1.5, y -1.5 -0.5 1 1:
    # sxy = 2.25 + 1.5 = 3.75, sxx = 4.5, syy = 2.25 + 0.25 + 1 + 1 = 4.5 -> rho = 3.75 / 4.5.
    x, y = [1, 2, 2, 3], [1, 2, 3, 3]
    assert kendall_tau_b(x, y) == pytest.approx(0.8)
    assert spearman_rho(x, y) == pytest.approx(3.75 / 4.5)


def test_ties_and_discordance():
    # x = 1 1 2 3, y = 4 3 2 1: pair (0,1) tied in x, the other 5 discordant.
    # tau_b = -5 / sqrt((6 - 1) (6 - 0)) = -5 / sqrt(30).
    # Ranks x 1.5 1.5 3 4, y 4 3 2 1; deviations x -1 -1 0.5 1.5, y 1.5 0.5 -0.5 -1.5:
    # sxy = -1.5 - 0.5 - 0.25 - 2.25 = -4.5, sxx = 4.5, syy = 5 -> rho = -4.5 / sqrt(22.5).
    x, y = [1, 1, 2, 3], [4, 3, 2, 1]
    assert kendall_tau_b(x, y) == pytest.approx(-5 / math.sqrt(30))
    assert spearman_rho(x, y) == pytest.approx(-4.5 / math.sqrt(22.5))


def pair_count_tau_b(x, y):
    """Kendall's tau-b straight from its definition: every pair, O(n^2)."""
    pairs = [(i, j) for i in range(len(x)) for j in range(i + 1, len(x))]
    signs = [(x[i] > x[j]) - (x[i] < x[j]) for i, j in pairs], [(y[i] > y[j]) - (y[i] < y[j]) for i, j in pairs]
    numerator = sum(a * b for a, b in zip(*signs, strict=True))
    denominator = math.sqrt(sum(a != 0 for a in signs[0]) * sum(b != 0 for b in signs[1]))
    return numerator / denominator if denominator else None


@pytest.mark.parametrize("seed", range(20))
def test_merge_sort_tau_b_is_the_pair_count(seed):
    # few distinct values on both sides: ties in x, in y and in both
    rng = random.Random(seed)
    n = rng.randint(2, 40)
    x, y = [rng.randint(0, 5) for _ in range(n)], [rng.choice([0.5, 1.0, 2.0, rng.random()]) for _ in range(n)]
    expected = pair_count_tau_b(x, y)
    assert kendall_tau_b(x, y) == (None if expected is None else pytest.approx(expected, abs=1e-12))


def test_perfect_orders():
    assert kendall_tau_b([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman_rho([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)


def test_constant_or_single_is_undefined():
    # A constant score ranks nothing: 0/0, reported as None (n/a), not as 0 (no association).
    assert kendall_tau_b([2, 2, 2], [1, 2, 3]) is None
    assert spearman_rho([1, 2, 3], [7, 7, 7]) is None
    assert kendall_tau_b([1], [1]) is None and spearman_rho([1], [1]) is None
    assert bootstrap_interval([2, 2, 2], [1, 2, 3], kendall_tau_b, seed=0, resamples=50) is None


def test_lengths_must_match():
    with pytest.raises(ValueError):
        kendall_tau_b([1, 2], [1, 2, 3])


def test_bootstrap_is_deterministic_per_seed():
    x = [3.1, 1.2, 5.5, 4.0, 2.2, 6.3, 0.4, 5.0]
    y = [60.0, 52.0, 71.0, 58.0, 66.0, 75.0, 50.0, 64.0]
    first = bootstrap_interval(x, y, kendall_tau_b, seed=7, resamples=200)
    assert first == bootstrap_interval(x, y, kendall_tau_b, seed=7, resamples=200)
    assert first != bootstrap_interval(x, y, kendall_tau_b, seed=8, resamples=200)
    assert first is not None
    low, high = first
    assert -1 <= low <= kendall_tau_b(x, y) <= high <= 1


def test_bootstrap_of_a_perfect_order_is_a_point():
    # Every resample with two distinct architectures is perfectly concordant; all-tied ones are skipped.
    assert bootstrap_interval([1, 2, 3, 4], [5, 6, 7, 8], spearman_rho, seed=1, resamples=100) == (1.0, 1.0)


def test_top_k_overlap():
    # best 2 by score: architectures 0 (0.9) and 3 (0.7); best 2 trained: 3 (90) and 1 (85) -> 1 of 2.
    assert top_k_overlap([0.9, 0.1, 0.5, 0.7], [80, 85, 70, 90], 2) == 0.5
    # a tie at the cut goes to the earlier architecture: best score is 0, best trained is 2.
    assert top_k_overlap([1, 1, 0], [0, 1, 2], 1) == 0.0
    assert top_k_overlap([1, 2, 3], [1, 2, 3], 3) == 1.0
    with pytest.raises(ValueError):
        top_k_overlap([1, 2], [1, 2], 3)
