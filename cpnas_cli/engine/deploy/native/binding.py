"""A compiled native network bound to one batch size: its activation arena and its C chains.

`Binding(ops, shapes, last_use, n)` decides, once per batch size:
- where every 1-bit conv writes: a view into a buffer of the greedy arena (arena.py), shared by
  values whose lifetimes do not overlap; one workspace serves every conv that packs its float
  input before reading neighbouring pixels (its bits live only during that call);
- the program: each run of consecutive 1-bit convs becomes one `library.Chain` (one C call, one
  parallel region), with the addresses it reads fixed where the value lives in the arena and
  patched per run where a torch step made it (`dynamic`); torch steps run between the chains.
Torch steps allocate their own outputs (they come and go with each call); a torch step never
returns a view of its input, so no torch value shares memory with the arena (tested).
"""

from dataclasses import dataclass

import torch

from . import arena, library

CHANNELS_LAST = torch.channels_last


@dataclass
class ChainRun:
    """Consecutive 1-bit convs run by one C call."""

    chain: library.Chain
    ops: list[int]  # indices in the network's op list
    dynamic: list[tuple[int, str, str]]  # (call, field, value): addresses a torch step provides per run


def value_bytes(output: str, channels: int, height: int, width: int, n: int) -> int:
    """Bytes of a conv output of n images: float32 NHWC, or packed bits (int64 words)."""
    if output == "bits":
        return n * height * width * -(-channels // 64) * 8
    return n * channels * height * width * 4


class Binding:
    """Buffers and chains of a network (its ops in order) for batches of n images."""

    def __init__(self, ops, shapes: dict[str, tuple[int, int, int]], last_use: dict[str, int], n: int):
        self.n = n
        convs = {op.output: i for i, op in enumerate(ops) if op.conv is not None}
        self.lifetimes = [
            arena.Lifetime(v, value_bytes(ops[i].conv.output, *shapes[v], n), i, max(i, last_use.get(v, i)))
            for v, i in convs.items()
        ]
        self.arena = arena.assign(self.lifetimes)
        self.buffers = [torch.empty(size, dtype=torch.uint8) for size in self.arena.buffers]
        self.views = {v: self._view(ops[i].conv, v, shapes[v]) for v, i in convs.items()}
        workspace = max((self._packed_input_bytes(op, shapes) for op in ops if op.conv is not None), default=0)
        self.workspace = torch.empty(workspace, dtype=torch.uint8) if workspace else None
        self.program: list[int | ChainRun] = []
        for i, op in enumerate(ops):
            if op.conv is None:
                self.program.append(i)
            elif self.program and isinstance(self.program[-1], ChainRun):
                self.program[-1].ops.append(i)
            else:
                self.program.append(ChainRun(None, [i], []))  # type: ignore[arg-type]
        for run in self.program:
            if isinstance(run, ChainRun):
                self._link(run, ops, shapes)

    @property
    def activation_bytes(self) -> int:
        return self.arena.total + (0 if self.workspace is None else self.workspace.numel())

    def _view(self, conv: library.BinaryConvPlan, value: str, shape: tuple[int, int, int]):
        channels, height, width = shape
        memory = self.buffers[self.arena.placement[value]][: value_bytes(conv.output, *shape, self.n)]
        if conv.output == "bits":
            words = memory.view(torch.int64).view(self.n, height, width, -(-channels // 64))
            return library.PackedActivations(words, channels)
        return memory.view(torch.float32).view(self.n, height, width, channels).permute(0, 3, 1, 2)

    def _packed_input_bytes(self, op, shapes) -> int:
        """The workspace a conv needs: its float input's bits, when it packs them first."""
        source = op.inputs[0]
        if not op.conv.packs_input_first or isinstance(self.views.get(source), library.PackedActivations):
            return 0
        channels, height, width = shapes[source]
        return value_bytes("bits", channels, height, width, self.n)

    def _link(self, run: ChainRun, ops, shapes) -> None:
        convs = []
        for i in run.ops:
            op = ops[i]
            _, height, width = shapes[op.inputs[0]]
            convs.append(op.conv.bound(self.n, height, width))
        run.chain = library.Chain(convs)
        for index, i in enumerate(run.ops):
            op, call = ops[i], run.chain.calls[index]
            source = self.views.get(op.inputs[0])
            if isinstance(source, library.PackedActivations):
                call.x_bits = source.words.data_ptr()
            else:
                if op.conv.packs_input_first:
                    call.x_bits = self.workspace.data_ptr()  # type: ignore[union-attr]
                self._address(run, index, "x", op.inputs[0], source)
            if len(op.inputs) > 1:
                self._address(run, index, "residual", op.inputs[1], self.views.get(op.inputs[1]))
            result = self.views[op.output]
            if isinstance(result, library.PackedActivations):
                call.out_bits = result.words.data_ptr()
            else:
                call.out = result.data_ptr()

    @staticmethod
    def _address(run: ChainRun, index: int, field: str, value: str, view) -> None:
        """A float the call reads: fixed where it lives in the arena, else patched per run."""
        if view is not None:
            setattr(run.chain.calls[index], field, view.data_ptr())
        else:
            run.dynamic.append((index, field, value))
