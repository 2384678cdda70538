"""Packed 1-bit networks with random weights for the deploy tests (plan, C export): every op of the
search space in both op styles, built, packed and loaded as `cpnas evaluate` loads a model."""

import dataclasses

import torch

from cpnas_cli.engine.deploy.packing import load_packed, write_packed
from cpnas_cli.engine.nn.network import NetworkSpec
from cpnas_cli.engine.train.model_file import ModelInfo, save_model
from cpnas_cli.space.genotype import Genotype

# Every op of the search space once in each cell type (DARTS_V2 lacks avg pool, sep/dil 5x5).
EVERY_OP = (
    "Genotype(normal=[('sep_conv_5x5', 0), ('dil_conv_5x5', 1), ('avg_pool_3x3', 0), ('skip_connect', 2), "
    "('max_pool_3x3', 3), ('sep_conv_3x3', 1), ('dil_conv_3x3', 4), ('skip_connect', 0)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('avg_pool_3x3', 0), ('skip_connect', 1), ('sep_conv_5x5', 2), ('dil_conv_3x3', 0), "
    "('max_pool_3x3', 1), ('dil_conv_5x5', 3), ('sep_conv_3x3', 4), ('skip_connect', 2)], reduce_concat=[2, 3, 4, 5])"
)
STYLES = {
    "paper": {"shortcut": False, "group_width": 1},  # depth-wise separable and dilated convs
    "cpu": {"shortcut": True, "group_width": 16},  # a real-valued shortcut, 16 channels per group
}


def random_child(genotype: Genotype, style: str, image_size: int, stem_stride: int = 1, in_channels: int = 3):
    """(ModelInfo, Child) with random weights and BatchNorm statistics, in eval mode."""
    spec = NetworkSpec(in_channels=in_channels, classes=10, channels=16, cells=3, image_size=image_size,
                       reductions=[1, 2], stem_stride=stem_stride, **STYLES[style])  # fmt: skip
    torch.manual_seed(0)
    child = spec.build(genotype, True).eval()
    for module in child.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return ModelInfo(genotype, spec, [f"class {i}" for i in range(10)], "test"), child


def packed_network(tmp_path, genotype: Genotype, style: str, image_size: int, stem_stride: int = 1, in_channels=3):
    """`random_child`'s Child packed to tmp_path/model.cpnas and loaded back (load_packed)."""
    info, child = random_child(genotype, style, image_size, stem_stride, in_channels)
    path = tmp_path / "model.cpnas"
    write_packed(path, info, child)
    return load_packed(path)[1]


def random_checkpoint(path, genotype: Genotype, style: str, image_size: int, exact: bool = True):
    """`random_child` saved as `cpnas train` saves a checkpoint (version 1 with exact=False)."""
    info, child = random_child(genotype, style, image_size, stem_stride=2, in_channels=1)
    info = dataclasses.replace(info, spec=dataclasses.replace(info.spec, exact=exact))
    save_model(path, info, child)
    return path
