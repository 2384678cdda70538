"""The CP-NAS performance indicator, Eqs. 1-2. Torch-free.

Accuracies, and so the scores z of Eq. 1, are kept in percent (0-100), as DARTS-lineage code
reports them. Eq. 2's softmax reads them on a `scale`: "fraction" (z̄ / 100, the default) or
"percent" (z̄ as it is). The op each pruning removes is the same on both (softmax is monotone);
e itself is not. In percent, a few points between two ops already give the leader e = 0.99, and
a margin above about 37 points gives exactly 1.0 in floating point, where the genotype's choice
of the two strongest inputs per node (by e) can no longer tell edges apart. As a fraction, e
stays graded over every margin accuracies allow. docs/search.md has the measurement
(benchmarks/indicator_scale.py) that chose it.
"""

import math

SCALES = {"fraction": 100.0, "percent": 1.0}  # what z̄ (in percent) is divided by before the softmax
SCALE = "fraction"


def performance(acc_child: float, acc_parent: float, beta_p: float) -> float:
    """Eq. 1: z = A_C + beta_P (A_P - A_C), the score given to every op of a sampled architecture.

    beta_P = 0 scores by the Child alone (the paper's BNAS† baseline)."""
    return acc_child + beta_p * (acc_parent - acc_child)


def edge_indicator(mean_scores: dict[str, float], scale: str = SCALE) -> dict[str, float]:
    """Eq. 2: e(o_k) = softmax over the ops of one edge of their mean score z̄_k (in percent),
    read on `scale` (SCALES)."""
    divisor = SCALES[scale]
    return softmax({op: z / divisor for op, z in mean_scores.items()})


def softmax(values: dict[str, float]) -> dict[str, float]:
    """exp(v) / sum exp(v) over the values, computed without overflow."""
    top = max(values.values())  # subtract the max: same softmax, no overflow
    weights = {key: math.exp(v - top) for key, v in values.items()}
    total = sum(weights.values())
    return {key: w / total for key, w in weights.items()}
