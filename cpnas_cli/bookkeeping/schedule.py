"""Which architecture each sample of a round trains (Alg. 1, lines 3-4). Torch-free.

A round of K samples draws, on every edge independently, a random permutation of the K ops
still alive there; sample e takes the e-th op of every edge's permutation. So within a round
every remaining op on every edge is trained and scored exactly once (sampling without
replacement), and which ops share a sample is random.
"""

import random

Architecture = dict[str, list[str]]  # cell type -> op name per edge


def sample_plan(k0: int, rounds: int) -> list[tuple[int, int, int]]:
    """(K, round, index) of every sample in order: T rounds of K samples for K = k0 .. 2."""
    return [(k, t, e) for k in range(k0, 1, -1) for t in range(rounds) for e in range(k)]


def round_rng(seed: int, k: int, round_index: int) -> random.Random:
    """The round's own random stream: a pure function of (seed, K, round), so a resumed run
    draws the same architectures without storing any generator state."""
    return random.Random(f"cpnas-schedule:{seed}:{k}:{round_index}")


def round_architectures(remaining: dict[str, list[list[str]]], rng: random.Random) -> list[Architecture]:
    """K architectures covering every remaining op of every edge exactly once.

    `remaining[cell][edge]` lists the ops alive on that edge; all edges must hold the same K.
    """
    sizes = {len(ops) for edges in remaining.values() for ops in edges}
    if len(sizes) != 1:
        raise ValueError(f"every edge must hold the same number of ops, got {sorted(sizes)}")
    (k,) = sizes
    shuffled = {cell: [rng.sample(ops, k) for ops in edges] for cell, edges in remaining.items()}
    return [{cell: [perm[e] for perm in perms] for cell, perms in shuffled.items()} for e in range(k)]
