"""The ground truth of another `cpnas correlate` run: its stand-alone trainings, reused. Torch-free.

`--truth <correlate run>` gives a new study the trainings that run finished, so a second supernet
setting (e.g. `--set search.kernel_weight=0.001`) is compared against the same ground truth at the
cost of one supernet. A training is reused when its key is the same: a SHA-256 of what decides
the training's result, namely the genotype's structure, the whole `train` section, the data the
training reads (dataset, data_dir, image_size) and the seed. The `search` section, the search
split (train_fraction, val_fraction) and the device are not in it: the first two never reach a
stand-alone training, and a training on another device is the same recipe, though not the same
bits. `cpnas correlate --ranking` reads the same trainings (`trained_architectures`).
"""

import hashlib
import json
from pathlib import Path

from cpnas_cli import config as configs
from cpnas_cli.errors import UserError
from cpnas_cli.space import genotype as genotypes
from cpnas_cli.space.genotype import Genotype

from .correlation_plan import PLAN, SCORES, Architecture
from .correlation_results import read_architectures, read_scores

TRAINING_DATA = ("dataset", "data_dir", "image_size")  # the data keys a stand-alone training reads


def training_key(genotype: Genotype, config: configs.Config) -> str:
    """The key of one stand-alone training: the same key, the same recipe on the same network."""
    cells = {kind: genotype.cell(kind) for kind in ("normal", "reduce")}
    recipe = {
        "genotype": {
            kind: {"nodes": [[[e.op, e.source] for e in node] for node in c.nodes], "concat": list(c.concat)}
            for kind, c in cells.items()
        },
        "train": configs.to_dict(config)["train"],
        "data": {key: getattr(config.data, key) for key in TRAINING_DATA},
        "seed": config.seed,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def truth_run(path: Path) -> Path:
    """A correlate run directory (checked: one line and exit 2 for anything else)."""
    path = Path(path)
    if not (path / PLAN).is_file():
        raise UserError(
            f"{path} is not a correlate directory (no {PLAN})",
            "pass --truth a directory made by `cpnas correlate` (it holds the stand-alone trainings)",
        )
    return path.resolve()


def reusable_trainings(folder: Path) -> dict[str, dict]:
    """Key -> results row of every stand-alone training the correlate run at `folder` finished;
    `train_run` made absolute (a row it reused itself already points at the original)."""
    out = {}
    for row in read_architectures(folder):
        train_run = folder / row["train_run"]  # an absolute train_run stays as it is
        key = row.get("truth_key") or _key_of(row, train_run)
        out[key] = {**row, "train_run": str(train_run)}
    return out


def trained_architectures(folder: Path) -> list[tuple[Architecture, float]]:
    """(architecture: op per edge, stand-alone Child test accuracy) of every training the
    correlate run at `folder` finished, all seeds together."""
    draws: dict[int, list[Architecture]] = {}
    out = []
    for row in sorted(read_architectures(folder), key=lambda r: (r["seed"], r["index"])):
        if row["seed"] not in draws:
            draws[row["seed"]] = read_scores(folder / f"seed{row['seed']}" / SCORES)["architectures"]
        out.append((draws[row["seed"]][row["index"]], row["test_acc_child"]))
    return out


def _key_of(row: dict, train_run: Path) -> str:
    """The key of a row written before keys were stored: from its genotype and its training's config."""
    genotype = genotypes.from_dict(row["genotype"], where=f"{train_run}: genotype")
    return training_key(genotype, configs.load_run_config(train_run / "config.yaml"))
