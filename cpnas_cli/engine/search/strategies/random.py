"""Random selection (Fig. 6): the CP-NAS loop, budget and schedule, with the networks' accuracy
ignored: every sample is scored by a uniform draw from [0, 100), a pure function of (seed, sample).

So the op that leaves each edge at every K, and the two edges each node keeps in the genotype,
are random; Child and Parent still train every sample exactly as in `cp` (their accuracies are
logged), which keeps the search's cost and wall time comparable sample for sample.
"""

import random

from .cp import CPStrategy


def random_score(seed: int, n: int) -> float:
    """Sample n's score: uniform in [0, 100), the same for the same (seed, n)."""
    return 100.0 * random.Random(f"cpnas-random-score:{seed}:{n}").random()


class RandomStrategy(CPStrategy):
    name = "random"

    def score(self, n: int, acc: dict) -> float:
        """A random score for sample n, whatever its accuracies."""
        return random_score(self.config.seed, n)

    def genotype(self, meta: dict):
        return super().genotype({**meta, "beta_p": None})
