"""Rank agreement between a score and a ground truth over the same architectures: Kendall's
tau-b and Spearman's rho (ties handled), a seeded bootstrap interval, and top-k overlap.
Torch-free; `cpnas correlate` asks whether the supernet's scores order architectures as
training them stand-alone does.

A statistic is None when it is undefined: fewer than two architectures, or a side with no two
different values (constant scores). Zero would claim "no association"; a constant score makes no
ranking at all, so the tables show n/a instead.
"""

import itertools
import math
import random
from collections.abc import Callable, Iterator, Sequence

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
    """(concordant - discordant) / sqrt((n0 - ties in x) (n0 - ties in y)) over all n0 pairs; a
    pair tied in x or y counts in neither numerator term. Knight's O(n log n) way: sorted by
    (x, y), the discordant pairs are the inversions of y, counted by a merge sort (the op-level
    scores of `cpnas correlate --ranking` have a few hundred points, bootstrapped 1000 times)."""
    _check(x, y)
    n = len(x)
    order = sorted(range(n), key=lambda i: (x[i], y[i]))
    pairs = n * (n - 1) // 2
    tied_x, tied_both = _tied_pairs([x[i] for i in order]), _tied_pairs([(x[i], y[i]) for i in order])
    ys = [y[i] for i in order]
    discordant = _inversions(ys)  # sorts ys
    tied_y = _tied_pairs(ys)
    concordant = pairs - tied_x - tied_y + tied_both - discordant
    denominator = math.sqrt((pairs - tied_x) * (pairs - tied_y))
    return (concordant - discordant) / denominator if denominator else None


def _tied_pairs(sorted_values: list) -> int:
    """Pairs of equal values in a sorted list: t (t - 1) / 2 per run of t equal values."""
    pairs, run = 0, 1
    for previous, value in itertools.pairwise(sorted_values):
        run = run + 1 if value == previous else 1
        pairs += run - 1
    return pairs


def _inversions(values: list) -> int:
    """Pairs i < j with values[i] > values[j] (strictly), sorting `values` in place by merging."""
    if len(values) < 2:
        return 0
    middle = len(values) // 2
    left, right = values[:middle], values[middle:]
    count = _inversions(left) + _inversions(right)
    i = j = 0
    for k in range(len(values)):
        if j == len(right) or (i < len(left) and left[i] <= right[j]):
            values[k] = left[i]
            i += 1
        else:
            values[k] = right[j]
            count += len(left) - i  # every left value still waiting is larger than right[j]
            j += 1
    return count


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
    values = [
        statistic([x[i] for i in picks], [y[i] for i in picks]) for picks in resample_indices(len(x), seed, resamples)
    ]
    return percentile_interval(values, level)


def resample_indices(units: int, seed: int, resamples: int = 1000) -> Iterator[list[int]]:
    """`resamples` draws of `units` indices with replacement, by a generator seeded with `seed`."""
    rng = random.Random(f"cpnas-bootstrap:{seed}")
    for _ in range(resamples):
        yield [rng.randrange(units) for _ in range(units)]


def percentile_interval(values: Sequence[float | None], level: float = 0.95) -> tuple[float, float] | None:
    """The central `level` interval of the defined values (None left out); None if none is defined."""
    defined = sorted(v for v in values if v is not None)
    if not defined:
        return None
    tail = (1 - level) / 2
    return _quantile(defined, tail), _quantile(defined, 1 - tail)


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
