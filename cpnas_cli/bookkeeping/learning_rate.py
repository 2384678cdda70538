"""The learning-rate schedule every phase uses: cosine annealing without restart. Torch-free.

The search anneals over its samples (or a differentiable search over its epochs), training over
its batches; each passes its own position and length.
"""

import math


def cosine_annealing(base: float, floor: float, position: float, length: float) -> float:
    """From `base` at position 0 to `floor` at `length` (and after it), along half a cosine."""
    return floor + 0.5 * (base - floor) * (1 + math.cos(math.pi * min(position, length) / length))
