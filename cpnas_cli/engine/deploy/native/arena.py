"""Activation buffers shared by liveness: a greedy arena over a network's execution order.

A value lives from the step that writes it to the last step that reads it (both included: a
step's output never shares memory with its inputs). `assign` walks the values in the order they
are written; each takes the smallest free buffer that holds it, else grows the largest free one,
else a new buffer; a buffer is free again once its value's last reader has run. Two values whose
lifetimes overlap never share a buffer (`overlapping` checks that). Torch-free bookkeeping.
"""

from dataclasses import dataclass

ALIGN = 64  # bytes: buffer sizes are rounded up to a cache line


@dataclass(frozen=True)
class Lifetime:
    name: str
    size: int  # bytes
    first: int  # index of the step that writes it
    last: int  # index of the last step that reads it (>= first)


@dataclass
class Arena:
    buffers: list[int]  # bytes of each buffer
    placement: dict[str, int]  # value -> its buffer

    @property
    def total(self) -> int:
        return sum(self.buffers)


def _aligned(size: int) -> int:
    return -(-size // ALIGN) * ALIGN


def assign(lifetimes: list[Lifetime]) -> Arena:
    arena = Arena([], {})
    live: list[Lifetime] = []
    free: list[int] = []
    for value in sorted(lifetimes, key=lambda v: v.first):
        for dead in [v for v in live if v.last < value.first]:
            live.remove(dead)
            free.append(arena.placement[dead.name])
        size = _aligned(value.size)
        fitting = [b for b in free if arena.buffers[b] >= size]
        if fitting:
            buffer = min(fitting, key=lambda b: arena.buffers[b])
        elif free:
            buffer = max(free, key=lambda b: arena.buffers[b])
            arena.buffers[buffer] = size
        else:
            buffer = len(arena.buffers)
            arena.buffers.append(size)
        if buffer in free:
            free.remove(buffer)
        arena.placement[value.name] = buffer
        live.append(value)
    return arena


def overlapping(lifetimes: list[Lifetime], arena: Arena) -> list[tuple[str, str]]:
    """Pairs of values that share a buffer while both are live (empty for a correct arena)."""
    clashes = []
    for i, a in enumerate(lifetimes):
        for b in lifetimes[i + 1 :]:
            shared = arena.placement[a.name] == arena.placement[b.name]
            if shared and a.first <= b.last and b.first <= a.last:
                clashes.append((a.name, b.name))
    return clashes
