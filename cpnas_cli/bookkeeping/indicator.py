"""The CP-NAS performance indicator, Eqs. 1-2. Torch-free.

Accuracies enter in percent (0-100), as DARTS-lineage code reports them. The pruning decision
is the same on any scale (softmax is monotone); percent only makes the displayed e readable.
"""

import math


def performance(acc_child: float, acc_parent: float, beta_p: float) -> float:
    """Eq. 1: z = A_C + beta_P (A_P - A_C), the score given to every op of a sampled architecture.

    beta_P = 0 scores by the Child alone (the paper's BNAS† baseline)."""
    return acc_child + beta_p * (acc_parent - acc_child)


def edge_indicator(mean_scores: dict[str, float]) -> dict[str, float]:
    """Eq. 2: e(o_k) = softmax over the ops of one edge of their mean score z̄_k."""
    top = max(mean_scores.values())  # subtract the max: same softmax, no overflow
    weights = {op: math.exp(z - top) for op, z in mean_scores.items()}
    total = sum(weights.values())
    return {op: w / total for op, w in weights.items()}
