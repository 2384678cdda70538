"""The activation arena (native/arena.py) on hand-worked lifetimes, and on whole networks: values
alive at the same time never share a buffer, and torch steps never return arena memory."""

import random

import pytest
import torch

from cpnas_cli.engine.deploy.native import arena, library
from cpnas_cli.engine.deploy.native.arena import Lifetime
from cpnas_cli.engine.deploy.native.network import NativeNetwork
from cpnas_cli.engine.deploy.plan import lower, run_torch
from cpnas_cli.space.genotype import from_darts
from tests.genotypes import DARTS_V2
from tests.test_native_kernels import needs_fused_torch
from tests.test_plan import EVERY_OP, STYLES, packed_network


def test_a_buffer_is_reused_once_its_value_is_dead():
    # a lives over steps 0-2, b 1-3; c (step 3) fits a's 128 bytes; d (step 4) finds only b's
    # 64-byte buffer free (c is still read at 4) and grows it to 256 bytes.
    values = [Lifetime("a", 100, 0, 2), Lifetime("b", 50, 1, 3), Lifetime("c", 80, 3, 4), Lifetime("d", 200, 4, 5)]
    result = arena.assign(values)
    assert result.placement == {"a": 0, "b": 1, "c": 0, "d": 1}
    assert result.buffers == [128, 256] and result.total == 384
    assert arena.overlapping(values, result) == []


def test_an_output_never_shares_with_an_input_read_by_its_own_step():
    values = [Lifetime("x", 64, 0, 1), Lifetime("y", 64, 1, 2)]  # y is written by the step that reads x last
    assert arena.assign(values).placement == {"x": 0, "y": 1}


def test_the_smallest_fitting_buffer_is_taken():
    values = [Lifetime("big", 640, 0, 1), Lifetime("small", 64, 0, 1), Lifetime("next", 60, 2, 3)]
    result = arena.assign(values)
    assert result.placement["next"] == result.placement["small"] and result.total == 704


def test_random_lifetimes_never_overlap_and_share_memory():
    chooser = random.Random(3)
    for _ in range(50):
        values = []
        for i in range(30):
            first = chooser.randint(0, 40)
            values.append(Lifetime(f"v{i}", chooser.randint(1, 5000), first, first + chooser.randint(0, 8)))
        result = arena.assign(values)
        assert arena.overlapping(values, result) == []
        assert result.total <= sum(-(-v.size // arena.ALIGN) * arena.ALIGN for v in values)


def test_overlapping_finds_a_bad_placement():
    values = [Lifetime("a", 10, 0, 2), Lifetime("b", 10, 1, 3)]
    assert arena.overlapping(values, arena.Arena([64], {"a": 0, "b": 0})) == [("a", "b")]


@pytest.mark.skipif(not library.available(), reason=library.why_unavailable())
@needs_fused_torch
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(("genotype", "size"), [(EVERY_OP, 15), (DARTS_V2, 16)])
def test_network_arena_holds_no_two_live_values_in_one_place(tmp_path, style, genotype, size):
    genotype = from_darts(genotype)
    plan = lower(packed_network(tmp_path, genotype, style, size), genotype, (3, size, size))
    network = NativeNetwork.from_plan(plan)
    binding = network.bind(2)
    assert arena.overlapping(binding.lifetimes, binding.arena) == []
    assert binding.arena.total < sum(v.size for v in binding.lifetimes)  # buffers are shared
    ranges = [(b.data_ptr(), b.data_ptr() + b.numel()) for b in binding.buffers]
    for op in network.ops:  # every torch step's output lies outside the arena
        if op.run is not None:
            op.run = _outside(op.run, ranges)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert torch.equal(network(x), run_torch(plan, x))


def _outside(run, ranges):
    def checked(*args):
        out = run(*args)
        address = out.untyped_storage().data_ptr()
        assert not any(lo <= address < hi for lo, hi in ranges), "a torch step returned arena memory"
        return out

    return checked
