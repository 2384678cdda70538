"""The ImageNet stem (three stride-2 convs, Sec. 3.1) in the search supernets and the evaluation
network: taken for large images when set to auto, never for small ones, and forced either way;
and the imagenet preset's network as the paper describes it (224 -> 28, C = 102, 10 cells)."""

import dataclasses

import pytest
import torch

from cpnas_cli.config import dump_yaml, load_config, load_run_config
from cpnas_cli.engine.nn.backbone import uses_imagenet_stem
from cpnas_cli.engine.nn.ops import Style
from cpnas_cli.engine.search.child_parent import ChildParent
from cpnas_cli.engine.search.mixed_supernet import MixedSupernet
from cpnas_cli.engine.train.trainer import network_spec
from cpnas_cli.space import genotype as g
from tests.genotypes import DARTS_V2

TINY = ["search.channels=4", "search.cells=3", "search.reductions=[1, 2]", "device=cpu"]


@dataclasses.dataclass
class Shape:
    """What network_spec reads of a dataset."""

    image_size: int
    in_channels: int = 3
    num_classes: int = 10


def stem_output(stem: torch.nn.Module, side: int) -> tuple[int, ...]:
    with torch.no_grad():
        return tuple(stem.eval()(torch.zeros(1, 3, side, side)).shape[1:])


@pytest.mark.parametrize(("setting", "side", "imagenet"), [("auto", 224, True), ("auto", 112, True),
                         ("auto", 111, False), ("auto", 32, False), (True, 64, True), (False, 224, False)])  # fmt: skip
def test_auto_takes_the_imagenet_stem_for_images_of_112_px_and_more(setting, side, imagenet):
    assert uses_imagenet_stem(setting, side) is imagenet


def test_the_search_supernets_reduce_224_px_to_28_before_the_cells():
    cfg = load_config("quick", sets=TINY).search
    pair = ChildParent(cfg, 3, 10, torch.device("cpu"), seed=0, image_size=224)
    for net in pair.nets.values():
        assert stem_output(net.stem, 224) == (4, 28, 28)  # C channels, as DARTS's ImageNet stem
    small = ChildParent(cfg, 3, 10, torch.device("cpu"), seed=0, image_size=32)
    assert stem_output(small.nets["child"].stem, 32) == (
        3 * 4,
        16,
        16,
    )  # quick's stem stride 2, which the other ignores
    mixed = MixedSupernet(3, 10, 4, 3, cfg.ops, Style(binary=True), reductions=[1, 2], imagenet_stem=True)
    assert stem_output(mixed.stem, 224) == (4, 28, 28)
    arch = {"normal": ["skip"] * 14, "reduce": ["max_pool_3x3"] * 14}
    with torch.no_grad():
        assert pair.nets["child"].eval()(torch.zeros(2, 3, 224, 224), arch).shape == (2, 10)


def test_the_evaluation_network_takes_the_stem_by_image_size():
    cfg = load_config("quick", sets=["train.channels=4"]).train
    assert network_spec(cfg, Shape(224)).imagenet_stem and not network_spec(cfg, Shape(32)).imagenet_stem
    forced = dataclasses.replace(cfg, imagenet_stem=False)
    assert not network_spec(forced, Shape(224)).imagenet_stem


def test_the_imagenet_preset_builds_the_papers_network():
    config = load_config("imagenet")
    spec = network_spec(config.train, Shape(224, num_classes=1000))
    assert (spec.imagenet_stem, spec.channels, spec.cells, spec.image_size) == (True, 102, 10, 224)
    net = spec.build(g.from_darts(DARTS_V2), binary=True)
    assert stem_output(net.stem, 224) == (102, 28, 28)


def test_a_run_started_before_the_key_existed_resumes_with_the_old_stem(tmp_path):
    config = load_config("quick")
    text = dump_yaml(config).replace("  imagenet_stem: auto\n", "", 1)  # the search section's, written first
    assert "imagenet_stem" in text and text.count("imagenet_stem") == 1  # train's stays
    (tmp_path / "config.yaml").write_text(text)
    assert load_run_config(tmp_path / "config.yaml").search.imagenet_stem is False
    (tmp_path / "config.yaml").write_text(dump_yaml(config))
    assert load_run_config(tmp_path / "config.yaml").search.imagenet_stem == "auto"
