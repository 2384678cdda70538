"""Presets, flags and --set: the merge order and the errors for keys and values that cannot work."""

import pytest

from cpnas_cli import config as configs
from cpnas_cli.config import load_config, load_run_config
from cpnas_cli.errors import UserError


def test_defaults_are_the_papers_cifar10_search_values():
    s = configs.Config().search
    assert (s.rounds, s.beta_p, s.batch_size, s.lr, s.momentum, s.weight_decay) == (3, 2.0, 512, 0.025, 0.9, 5e-4)
    assert (s.channels, s.cells, s.reductions, s.nodes, len(s.ops)) == (16, 6, [1, 3], 4, 8)
    d = configs.Config().data
    assert (d.train_fraction, d.val_fraction) == (0.5, 0.05)


def test_every_shipped_preset_loads():
    for name in configs.preset_names():
        assert load_config(name).name == name


def test_cifar10_preset_is_the_paper_unchanged():
    config = load_config("cifar10")
    assert config.search == configs.Config().search
    assert config.data.dataset == "cifar10"


def test_merge_order_preset_then_flags_then_set():
    config = load_config("quick", {"search.beta_p": 1.0, "search.rounds": None}, ["search.beta_p=0.5", "seed=3"])
    assert config.search.beta_p == 0.5  # --set wins over the flag
    assert config.search.rounds == load_config("quick").search.rounds  # None flag leaves the preset value
    assert config.seed == 3


def test_set_parses_yaml_values():
    config = load_config("quick", sets=["search.reductions=[0, 2]", "search.ops=[skip, zero]", "data.data_dir=null"])
    assert config.search.reductions == [0, 2]
    assert config.search.ops == ["skip", "zero"]
    assert config.data.data_dir is None


def test_int_is_accepted_for_a_float_key():
    assert load_config("quick", sets=["search.beta_p=2"]).search.beta_p == 2.0


@pytest.mark.parametrize(
    "sets, message",
    [
        (["search.betap=2"], "unknown config key 'search.betap'.*did you mean search.beta_p"),
        (["nope.lr=1"], "unknown config key 'nope.lr'"),
        (["search=1"], "unknown config key 'search'"),
        (["search.rounds=two"], "search.rounds.*must be int"),
        (["search.rounds=1.5"], "must be int"),
        (["data.flip=true"], "unknown config key 'data.flip'"),  # augmentation is per phase
        (["train.flip=yes please"], "train.flip.*must be bool"),
        (["search.crop_padding=-1"], "search.crop_padding must not be negative"),
        (["train.crop_padding=-2"], "train.cutout/auxiliary_weight/crop_padding must not be negative"),
        (["search.beta_p=-1"], "beta_p must not be negative"),
        (["search.rounds=0"], "rounds.*at least 1"),
        (["search.ops=[skip]"], "at least 2 distinct ops"),
        (["search.ops=[skip, conv_9x9]"], "unknown ops"),
        (["search.quantizer=ternary"], "quantizer"),
        (["search.group_width=0"], "search.group_width must be at least 1"),
        (["train.group_width=0"], "train.group_width must be at least 1"),
        (["train.shortcut=maybe"], "train.shortcut.*must be bool"),
        (["data.train_fraction=0.9", "data.val_fraction=0.2"], "sum to at most 1"),
        (["search.lr"], "not key=value"),
    ],
)
def test_bad_values_are_one_line_user_errors(sets, message):
    with pytest.raises(UserError, match=message) as err:
        load_config("quick", sets=sets)
    assert "\n" not in str(err.value)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(UserError, match=r"unknown preset 'nope'.*quick"):
        load_config("nope")


@pytest.mark.parametrize(
    "text, message",
    [
        ("search: [1, 2\n", "not valid YAML at line"),
        ("- a\n- b\n", "must be a mapping"),
        ("search:\n  beta_pp: 2\n", "unknown config key 'search.beta_pp'"),
    ],
)
def test_bad_preset_files(tmp_path, text, message):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        load_config(str(path))


def test_resolved_config_round_trips_through_yaml(tmp_path):
    config = load_config("quick", sets=["search.beta_p=0.25", "search.reductions=null"])
    path = tmp_path / "config.yaml"
    path.write_text(configs.dump_yaml(config))
    assert load_run_config(path) == config
