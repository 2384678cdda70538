"""Rank agreement between a score and a ground truth over the same architectures: Kendall's
tau-b and Spearman's rho (ties handled), a seeded bootstrap interval, and top-k overlap.
Torch-free; `cpnas correlate` asks whether the supernet's scores order architectures as
training them stand-alone does.

A statistic is None when it is undefined: fewer than two architectures, or a side with no two
different values (constant scores). Zero would claim "no association"; a constant score makes no
ranking at all, so the tables show n/a instead.
"""

import math
import random
from collections.abc import Callable, Sequence

Statistic = Callable[[Sequence[float], Sequence[float]], float | None]


def average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n, ties sharing the mean of the ranks they span (Spearman's convention)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            ranks[i] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """(concordant - discordant) / sqrt((n0 - ties in x) (n0 - ties in y)) over all pairs; a pair
    tied in x or y counts in neither numerator term. O(n^2): n is a few dozen architectures."""
    _check(x, y)
    concordant = discordant = tied_x = tied_y = pairs = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            pairs += 1
            dx, dy = x[i] - x[j], y[i] - y[j]
            tied_x += dx == 0
            tied_y += dy == 0
            if dx * dy > 0:
                concordant += 1
            elif dx * dy < 0:
                discordant += 1
    denominator = math.sqrt((pairs - tied_x) * (pairs - tied_y))
    return (concordant - discordant) / denominator if denominator else None


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson's correlation of the average ranks (the exact form under ties, not 1 - 6 sum d^2 / ...)."""
    _check(x, y)
    rx, ry = average_ranks(x), average_ranks(y)
    mean = (len(x) + 1) / 2  # average ranks always sum to n (n + 1) / 2
    sxy = sum((a - mean) * (b - mean) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mean) ** 2 for a in rx)
    syy = sum((b - mean) ** 2 for b in ry)
    return sxy / math.sqrt(sxx * syy) if sxx and syy else None


def bootstrap_interval(
    x: Sequence[float], y: Sequence[float], statistic: Statistic, seed: int, resamples: int = 1000, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile interval of `statistic` over `resamples` resamplings of the architectures (pairs
    drawn with replacement) by a generator seeded with `seed`: the same seed, the same interval.
    Resamples where the statistic is undefined (e.g. all draws tied) are left out; None if every one is."""
    _check(x, y)
    rng = random.Random(f"cpnas-bootstrap:{seed}")
    values = []
    for _ in range(resamples):
        picks = [rng.randrange(len(x)) for _ in x]
        value = statistic([x[i] for i in picks], [y[i] for i in picks])
        if value is not None:
            values.append(value)
    if not values:
        return None
    values.sort()
    tail = (1 - level) / 2
    return _quantile(values, tail), _quantile(values, 1 - tail)


def top_k_overlap(scores: Sequence[float], truth: Sequence[float], k: int) -> float:
    """The fraction of the k best-scored architectures that are among the k best-trained. Ties at
    the cut go to the earlier architecture (draw order), so the answer is always defined."""
    _check(scores, truth)
    if not 1 <= k <= len(scores):
        raise ValueError(f"k must be between 1 and {len(scores)}, got {k}")
    return len(_best(scores, k) & _best(truth, k)) / k


def _best(values: Sequence[float], k: int) -> set[int]:
    return set(sorted(range(len(values)), key=lambda i: (-values[i], i))[:k])


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default 'linear' method)."""
    position = q * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (position - low) * (sorted_values[high] - sorted_values[low])


def _check(x: Sequence[float], y: Sequence[float]) -> None:
    if len(x) != len(y):
        raise ValueError(f"{len(x)} scores against {len(y)} accuracies")
