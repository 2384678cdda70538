"""best.safetensors chosen on images held out of the training set (train.val_images), never on the
test set: the held-out images are never trained on, the best epoch is the validation's, the
summary and the model file report that epoch's test accuracy beside the last one's."""

import pytest
import torch
from rich.console import Console

from cpnas_cli.cli._train_view import summary_table
from cpnas_cli.config import dump_yaml, load_config, load_run_config
from cpnas_cli.data import holdout_split, validation_size
from cpnas_cli.engine.train import trainer as trainer_module
from cpnas_cli.engine.train.model_file import load_model
from cpnas_cli.engine.train.trainer import Trainer
from cpnas_cli.errors import UserError
from cpnas_cli.events import read_all
from cpnas_cli.space import genotype as g
from tests.genotypes import DARTS_V2
from tests.tiny_runs import run_in_library

TINY = [
    "train.channels=4",
    "train.cells=3",
    "train.stem_stride=2",
    "train.batch_size=50",
    "train.train_images=200",
    "train.eval_batch_size=1000",
    "train.auxiliary_weight=0",
    "train.optimizer=adam",
    "device=cpu",
    "seed=3",
]


def test_by_default_5_percent_are_held_out_and_at_most_2500():
    assert [validation_size(n, None) for n in (8000, 50000, 60000, 1_281_167, 12, 9)] == [400, 2500, 2500, 2500, 1, 0]
    assert (validation_size(60000, 10000), validation_size(60000, 0)) == (10000, 0)  # a count as given


def test_holdout_split_is_seeded_disjoint_and_keeps_the_rest_in_order():
    rest, held = holdout_split(20, 5, seed=1)
    assert len(held) == 5 and len(rest) == 15
    assert sorted(rest.tolist() + held.tolist()) == list(range(20))
    assert rest.tolist() == sorted(rest.tolist()) and held.tolist() == sorted(held.tolist())
    assert torch.equal(holdout_split(20, 5, seed=1)[1], held) and not torch.equal(holdout_split(20, 5, seed=2)[1], held)
    rest, held = holdout_split(20, 0, seed=1)
    assert rest.tolist() == list(range(20)) and len(held) == 0  # nothing held out: the order before the split
    with pytest.raises(UserError, match="cannot hold out 20 of 20"):
        holdout_split(20, 20, seed=1)


def test_the_held_out_images_are_never_trained_on(tmp_path, monkeypatch):
    seen = {"train": [], "eval": []}
    real = trainer_module.datasets.batches

    def recording(images, labels, indices, *args, **kwargs):
        seen["train" if kwargs.get("aug") is not None else "eval"].append(indices.clone())
        return real(images, labels, indices, *args, **kwargs)

    monkeypatch.setattr(trainer_module.datasets, "batches", recording)
    engines = []

    def make(config):
        engines.append(Trainer(config, g.from_darts(DARTS_V2)))
        return engines[0]

    run_in_library(make, tmp_path / "run", [*TINY, "train.epochs=2", "train.val_images=300"])
    trainer = engines[0]
    held = set(trainer.val_idx.tolist())
    assert len(held) == 300
    trained = torch.cat(seen["train"])
    assert len(seen["train"]) == 2 and not held & set(trained.tolist())
    assert sorted(set(trained.tolist())) == sorted(trainer.train_idx.tolist())  # the first 200 not held out
    assert any(torch.equal(indices, trainer.val_idx) for indices in seen["eval"])  # validated every epoch


def scripted_accuracies(monkeypatch, val: list[float], test: list[float]):
    """Pair.evaluate answers from scripts, per epoch: the test set first, then the validation images."""
    answers = iter(x for pair in zip(test, val, strict=True) for x in pair)

    def evaluate(self, batches):
        acc = next(answers)
        return {"child": acc, "parent": acc + 1}

    monkeypatch.setattr(trainer_module.TrainingPair, "evaluate", evaluate)


def test_best_is_the_epoch_of_the_best_validation_accuracy_not_test(tmp_path, monkeypatch):
    scripted_accuracies(monkeypatch, val=[40.0, 60.0, 50.0], test=[41.0, 55.0, 70.0])
    run, summary, _ = run_in_library(
        lambda config: Trainer(config, g.from_darts(DARTS_V2)), tmp_path / "run", [*TINY, "train.epochs=3"]
    )
    rows = [e for e in read_all(run.events) if e["kind"] == "epoch"]
    assert [e["best"] for e in rows] == [True, True, False]
    assert [e["val_acc_child"] for e in rows] == [40.0, 60.0, 50.0]
    assert summary["best_by"] == "validation" and summary["best_epoch"] == 2
    assert (summary["best_val_acc_child"], summary["best_test_acc_child"]) == (60.0, 55.0)
    assert summary["test_acc_child"] == 70.0  # the last epoch's, reported beside it
    best, last = (load_model(run.path / f"{n}.safetensors")[0].extras for n in ("best", "last"))
    assert (best["epoch"], best["test_acc_child"], best["val_acc_child"]) == (2, 55.0, 60.0)
    assert (last["epoch"], last["test_acc_child"]) == (3, 70.0)


def test_val_images_0_chooses_by_test_accuracy_as_before(tmp_path, monkeypatch):
    answers = iter([41.0, 55.0, 50.0])
    monkeypatch.setattr(trainer_module.TrainingPair, "evaluate", lambda self, b: {"child": next(answers), "parent": 1})
    run, summary, _ = run_in_library(
        lambda config: Trainer(config, g.from_darts(DARTS_V2)),
        tmp_path / "run",
        [*TINY, "train.epochs=3", "train.val_images=0"],
    )
    rows = [e for e in read_all(run.events) if e["kind"] == "epoch"]
    assert [e["best"] for e in rows] == [True, True, False] and all(e["val_acc_child"] is None for e in rows)
    assert summary["best_by"] == "test" and summary["best_test_acc_child"] == 55.0


def test_too_many_held_out_images_and_old_runs(tmp_path):
    with pytest.raises(UserError, match=r"train\.val_images"):
        Trainer(load_config("quick", sets=[*TINY, "train.val_images=8000"]), g.from_darts(DARTS_V2))
    text = dump_yaml(load_config("quick")).replace("  val_images: null\n", "")
    (tmp_path / "config.yaml").write_text(text)
    assert load_run_config(tmp_path / "config.yaml").train.val_images == 0  # a run from before resumes as it was


@pytest.mark.parametrize(("val", "caption"), [([40.0, 60.0, 50.0], "validation top-1"), ([None] * 3, "optimistic")])
def test_the_summary_table_shows_the_best_and_the_last_checkpoint(val, caption):
    rows = [
        {"kind": "epoch", "epoch": i + 1, "best": b, "val_acc_child": v, "test_acc_child": t, "test_acc_parent": 90.0}
        for i, (b, v, t) in enumerate(zip([True, True, False], val, [41.0, 55.0, 70.0], strict=True))
    ]
    console = Console(width=120, record=True)
    console.print(summary_table(rows))
    text = console.export_text()
    best, last = (next(line for line in text.splitlines() if line.startswith(f"│ {n}")) for n in ("best", "last"))
    assert "│     2 │" in best and "55.00%" in best and "│     3 │" in last and "70.00%" in last
    assert caption in " ".join(text.split())
