"""The evaluation network of a genotype (Sec. 3.1): its cells stacked N deep, trained from scratch.

With a binary `Style` it is the 1-bit Child (every conv inside the cells binarized); with a
full-precision one it is the Parent built from the same genotype. The stem and the classifier
stay full precision in both, as does the auxiliary tower, which only exists during training.
Reduction cells sit at 1/3 and 2/3 of the depth (paper: 10 cells = 8 normal + 2 reduction).
"""

from dataclasses import asdict, dataclass, field
from typing import cast

import torch
import torch.nn as nn

from cpnas_cli.config import typed_record
from cpnas_cli.errors import UserError
from cpnas_cli.space.genotype import Cell as CellGenotype
from cpnas_cli.space.genotype import Genotype

from .backbone import CellSlot, Classifier, cell_plan, preprocess, reduction_cells, stem, stem_channels
from .binary import QUANTIZERS
from .ops import Style, build_op


class Cell(nn.Module):
    def __init__(self, genotype: CellGenotype, slot: CellSlot, style: Style, drop_path=0.0):
        super().__init__()
        self.reduce = slot.reduce
        self.pre0, self.pre1 = preprocess(slot, style)
        self.inputs = [[e.source for e in node] for node in genotype.nodes]
        self.ops = nn.ModuleList(
            nn.ModuleList(build_op(e.op, slot.c, 2 if slot.reduce and e.source < 2 else 1, style) for e in node)
            for node in genotype.nodes
        )
        self.concat = list(genotype.concat)
        self.drop_path = drop_path

    def forward(self, s0, s1):
        states = [self.pre0(s0), self.pre1(s1)]
        for sources, ops in zip(self.inputs, self.ops, strict=True):
            node_ops = cast(nn.ModuleList, ops)  # nn.ModuleList types its items as Module
            states.append(sum(self._drop(op(states[src]), op) for src, op in zip(sources, node_ops, strict=True)))
        return torch.cat([states[i] for i in self.concat], dim=1)

    def _drop(self, x, op):
        """Drop path (DARTS): in training, zero a whole op output per image, rescaling the rest;
        identity ops are never dropped."""
        if not self.training or self.drop_path <= 0 or isinstance(op, nn.Identity):
            return x
        keep = 1.0 - self.drop_path
        mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
        return x * mask / keep


class AuxiliaryHead(nn.Module):
    """The DARTS auxiliary tower at 2/3 depth (full precision, training only); adaptive pooling
    to 2x2 makes it work for any input size (CIFAR 8x8 or Fashion-MNIST 7x7 at that depth)."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(),
        )
        self.linear = nn.Linear(768, classes)

    def forward(self, x):
        return self.linear(self.features(x).flatten(1))


class EvalNetwork(nn.Module):
    """Stem, `cells` cells of the genotype, classifier (+ auxiliary head when asked for).

    forward returns (logits, aux_logits or None, features) where features are the last cell's
    output: the f_C of Eq. 3's centre term."""

    def __init__(
        self,
        genotype: Genotype,
        in_channels: int,
        classes: int,
        channels: int,
        cells: int,
        style: Style,
        auxiliary: bool = False,
        imagenet_stem: bool = False,
        reductions: list[int] | None = None,
        stem_multiplier: int = 3,
        drop_path: float = 0.0,
        stem_stride: int = 1,
    ):
        super().__init__()
        self.reductions = reduction_cells(cells, reductions)
        c_stem = stem_channels(channels, stem_multiplier, imagenet_stem)
        self.stem = stem(in_channels, c_stem, stride=stem_stride, imagenet=imagenet_stem)

        def kind(reduce: bool) -> CellGenotype:
            return genotype.cell("reduce" if reduce else "normal")

        plan = cell_plan(cells, channels, c_stem, self.reductions, lambda reduce: len(kind(reduce).concat))
        self.cells = nn.ModuleList(Cell(kind(slot.reduce), slot, style, drop_path) for slot in plan)
        aux_channels = None
        if self.reductions:  # the tower reads the last reduction cell's output
            self.aux_index = self.reductions[-1]
            aux_channels = plan[self.aux_index].c_out
        self.auxiliary = AuxiliaryHead(aux_channels, classes) if auxiliary and aux_channels else None
        self.classifier = Classifier(plan[-1].c_out, classes)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if self.auxiliary is not None and self.training and i == self.aux_index:
                aux = self.auxiliary(s1)
        return self.classifier(s1), aux, s1


@dataclass
class NetworkSpec:
    """What it takes to rebuild an EvalNetwork besides the genotype."""

    in_channels: int
    classes: int
    channels: int
    cells: int
    image_size: int
    auxiliary: bool = False
    imagenet_stem: bool = False
    reductions: list[int] | None = None
    quantizer: str = "ste"
    parent_activation: str = "relu"
    stem_stride: int = 1  # 2 halves the input in the stem (a CPU-budget knob; ignored by the ImageNet stem)
    shortcut: bool = False  # a real-valued shortcut around every conv of an op (ops.Shortcut)
    group_width: int = 1  # channels per group of the k x k convs of sep/dil ops (1 = depth-wise)
    real_depthwise: bool = False  # CP-NAS*: real-valued inputs into the k x k conv of every sep/dil op (ops.py)
    real_preprocess: bool = False  # CP-NAS**: into the cells' preprocessing convs too
    # The 1-bit formula (binary.BinaryConv2d): exact unless the network is rebuilt from a version-1
    # model file. Set from a file's version, never stored in it (`to_dict`), not compared.
    exact: bool = field(default=True, compare=False)

    @property
    def real_inputs(self) -> bool:
        """Whether some 1-bit convs take real-valued activations (CP-NAS*, CP-NAS**)."""
        return self.real_depthwise or self.real_preprocess

    def to_dict(self) -> dict:
        """The fields a model file stores (its version says whether the 1-bit convs are exact)."""
        data = asdict(self)
        del data["exact"]
        return data

    @classmethod
    def from_dict(cls, data, exact: bool, where: str, fix: str) -> "NetworkSpec":
        """The spec a model file stores, every field's type and range checked: a damaged file must
        not build a network of a billion channels, or crash building one of None."""
        spec = typed_record(
            cls, {k: v for k, v in data.items() if k != "exact"} if isinstance(data, dict) else data, where, fix
        )
        spec.exact = exact
        bad = [name for name, ok in spec._checks() if not ok]
        if bad:
            raise UserError(f"{where} has out-of-range {', '.join(bad)}", fix)
        return spec

    def _checks(self) -> list[tuple[str, bool]]:
        return [
            ("in_channels", 1 <= self.in_channels <= 16),
            ("classes", 1 <= self.classes <= 100_000),
            ("channels", 1 <= self.channels <= 4096),
            ("cells", 1 <= self.cells <= 200),
            ("image_size", 1 <= self.image_size <= 4096),
            ("stem_stride", self.stem_stride in (1, 2)),
            ("group_width", 1 <= self.group_width <= 4096),
            ("reductions", all(0 <= r < self.cells for r in self.reductions or [])),
            ("quantizer", self.quantizer in QUANTIZERS),
            ("parent_activation", self.parent_activation in ("relu", "identity")),
        ]

    def build(self, genotype: Genotype, binary: bool, drop_path: float = 0.0) -> EvalNetwork:
        style = Style.of(self, binary, affine=True, running_stats=True)
        return EvalNetwork(
            genotype,
            self.in_channels,
            self.classes,
            self.channels,
            self.cells,
            style,
            auxiliary=self.auxiliary,
            imagenet_stem=self.imagenet_stem,
            reductions=self.reductions,
            drop_path=drop_path,
            stem_stride=self.stem_stride,
        )
