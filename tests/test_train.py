"""Training and evaluation end to end at toy size on the embedded data: the run directory and
event log, exact resume after SIGKILL or Ctrl-C, `cpnas evaluate` tables and JSON, and every
bad checkpoint or genotype ending in one line and exit code 2."""

import errno
import json
import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from cpnas_cli.cli.app import app
from cpnas_cli.config import load_config
from cpnas_cli.data import Augment
from cpnas_cli.engine.run import checkpoint
from cpnas_cli.engine.run.checkpoint import load_checkpoint
from cpnas_cli.engine.search.data import SearchData
from cpnas_cli.engine.train.model_file import load_model
from cpnas_cli.engine.train.pair import TrainingPair
from cpnas_cli.engine.train.trainer import Trainer
from cpnas_cli.events import read_all
from cpnas_cli.space import genotype as g
from tests.cli import assert_one_line_error, kill_at_a_random_moment, run_cli, set_flags, start_cli, wait_for
from tests.genotypes import DARTS_V2, DARTS_V2_VARIANT
from tests.tiny_runs import run_in_library, run_states

TINY = [
    "train.channels=4",
    "train.cells=3",
    "train.stem_stride=2",
    "train.epochs=4",
    "train.batch_size=50",
    "train.train_images=400",
    "train.optimizer=adam",
    "train.lr=0.01",
    "train.cutout=8",
    "train.drop_path=0.2",
    "device=cpu",
    "seed=3",
]
TIMING = {"t", "seconds", "eval_seconds", "elapsed", "images_per_s"}
runner = CliRunner()


def epochs(run_dir: Path) -> list[dict]:
    """Every epoch event without its timings: what an exact resume must reproduce."""
    return [
        {k: v for k, v in e.items() if k not in TIMING}
        for e in read_all(run_dir / "events.jsonl")
        if e["kind"] == "epoch"
    ]


def tensors(path: Path) -> dict:
    return load_file(str(path))


def train_darts_v2(run_dir: Path, overrides: list[str]):
    """A tiny training of DARTS_V2 through the library: (the RunDir, run()'s summary, seconds)."""
    return run_in_library(lambda config: Trainer(config, g.from_darts(DARTS_V2)), run_dir, overrides)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted tiny training through the library, timed: a real training end to end, so the
    tests that take it are marked e2e."""
    run, _, seconds = train_darts_v2(tmp_path_factory.mktemp("ref") / "run", TINY)
    return run.path, seconds


@pytest.mark.e2e
def test_training_writes_the_run_directory_and_the_event_log(reference):
    run_dir, _ = reference
    events = read_all(run_dir / "events.jsonl")
    header = events[0]
    assert header["kind"] == "header" and header["run"] == "train" and header["schema"] == 1
    assert header["epochs"] == 4 and header["config"]["train"]["channels"] == 4
    assert g.from_dict(header["genotype"]) == g.from_darts(DARTS_V2)
    states = [e["state"] for e in events if e["kind"] == "status"]
    assert states == ["started", "finished"]
    rows = [e for e in events if e["kind"] == "epoch"]
    assert [e["epoch"] for e in rows] == [1, 2, 3, 4]
    for e in rows:
        assert set(e) >= {
            "epoch",
            "epochs",
            "loss",
            "loss_ce",
            "loss_kernel",
            "loss_center",
            "train_acc_child",
            "train_acc_parent",
            "test_acc_child",
            "test_acc_parent",
            "val_acc_child",
            "val_acc_parent",
            "lr",
            "images_per_s",
            "seconds",
            "elapsed",
            "best",
        }
        assert e["images"] == 400 and e["loss_kernel"] > 0 and e["loss_center"] > 0
        assert e["loss"] > e["loss_ce"]  # the CP terms are in the Child's objective
    assert rows[0]["lr"] == 0.01 and rows[-1]["lr"] < rows[0]["lr"]  # cosine from lr
    assert rows[-1]["loss_ce"] < rows[0]["loss_ce"] and rows[-1]["loss_parent"] < rows[0]["loss_parent"]
    assert (
        [e["best"] for e in rows]
        == [  # chosen by the held-out validation images
            e["val_acc_child"] > max([r["val_acc_child"] for r in rows[:i]] or [-1]) for i, e in enumerate(rows)
        ]
    )
    for name in ("best", "last", "genotype", "config", "checkpoint/state"):
        assert list(run_dir.glob(f"{name}.*")), name
    info, _child, parent = load_model(run_dir / "last.safetensors")
    assert parent is not None and info.spec.stem_stride == 2 and info.extras["epoch"] == 4
    assert info.extras["test_acc_child"] == rows[-1]["test_acc_child"]


@pytest.mark.e2e
def test_cp_loss_off_trains_the_same_parent_and_only_measures_the_terms(reference, tmp_path):
    run, _, _ = train_darts_v2(tmp_path / "off", [*TINY, "train.kernel_weight=0", "train.center_weight=0"])
    off, on = epochs(run.path)[-1], epochs(reference[0])[-1]
    assert off["loss_kernel"] > 0 and off["loss_center"] > 0  # still measured for the ablation
    assert off["test_acc_parent"] == on["test_acc_parent"]  # the Parent does not depend on the Child's loss
    assert off["test_acc_child"] != on["test_acc_child"]


@pytest.mark.e2e
def test_a_spent_time_budget_ends_the_run_after_its_first_epoch(tmp_path):
    run, summary, _ = train_darts_v2(tmp_path / "budget", [*TINY, "train.minutes=0.001"])  # 60 ms: less than any epoch
    events = read_all(run.path / "events.jsonl")
    assert events[0]["epochs"] == 4  # the most epochs the config allows
    assert [(e["epoch"], e["epochs"]) for e in events if e["kind"] == "epoch"] == [(1, 1)]
    assert summary["state"] == "finished" and load_model(run.path / "last.safetensors")[0].extras["epochs"] == 1


@pytest.mark.e2e
def test_sigkill_at_a_random_moment_then_resume_gives_the_same_training(reference, darts_v2_file, tmp_path):
    ref_dir, ref_seconds = reference
    run_dir = tmp_path / "killed"
    proc = start_cli(["train", str(darts_v2_file), "--run-dir", str(run_dir), *set_flags(TINY)])
    kill_at_a_random_moment(proc, run_dir, within=0.8 * ref_seconds)  # a random moment of the training
    result = run_cli(["train", "--resume", str(run_dir)], timeout=600)
    assert result.returncode == 0, result.stderr
    assert epochs(run_dir) == epochs(ref_dir)
    for name in ("last", "best"):
        ours, theirs = tensors(run_dir / f"{name}.safetensors"), tensors(ref_dir / f"{name}.safetensors")
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.e2e
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_checkpoints_prints_the_resume_command_and_resumes_exactly(
    reference, darts_v2_file, tmp_path, signum, code
):
    ref_dir, _ = reference
    run_dir = tmp_path / "interrupted"
    proc = start_cli(["train", str(darts_v2_file), "--run-dir", str(run_dir), *set_flags(TINY)])
    events = run_dir / "events.jsonl"
    wait_for(lambda: events.exists() and '"kind":"epoch"' in events.read_text())
    proc.send_signal(signum)  # Ctrl-C, or what a scheduler sends
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == code, err
    assert f"cpnas train --resume {run_dir}" in out.replace("\n", "") and not err.strip()
    assert run_states(events)[-1] == "interrupted"
    _, state = load_checkpoint(run_dir / "checkpoint")  # the checkpoint of where it stopped, loadable
    assert state["epoch"] >= 1 and state["pending_events"][-1]["state"] == "interrupted"
    result = run_cli(["train", "--resume", str(run_dir)], timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Child (1-bit)" in result.stdout
    assert epochs(run_dir) == epochs(ref_dir)
    assert torch.equal(
        tensors(run_dir / "last.safetensors")["child/classifier.linear.weight"],
        tensors(ref_dir / "last.safetensors")["child/classifier.linear.weight"],
    )
    states = run_states(events)
    assert states == ["started", "interrupted", "resumed", "finished"]
    again = run_cli(["train", "--resume", str(run_dir)], timeout=600)
    assert again.returncode == 0 and "already finished" in again.stdout


@pytest.mark.e2e
def test_a_nan_loss_stops_the_training_at_that_epoch_and_it_resumes_to_the_same_training(
    reference, darts_v2_file, tmp_path, monkeypatch
):
    ref_dir, _ = reference
    run_dir = tmp_path / "run"
    train_batch, calls = TrainingPair.train_batch, []

    def diverging(self, x, y, lr):  # the first batch of epoch 2 (8 batches per epoch) returns a NaN loss
        calls.append(1)
        result = train_batch(self, x, y, lr)
        return {**result, "loss": float("nan")} if len(calls) == 9 else result

    monkeypatch.setattr(TrainingPair, "train_batch", diverging)
    result = runner.invoke(app, ["train", str(darts_v2_file), "--run-dir", str(run_dir), *set_flags(TINY)])
    assert_one_line_error(result, "error: the run diverged: loss is nan at epoch 2: its last good checkpoint is kept")
    assert f"lower the learning rate (train.lr) in {run_dir / 'config.yaml'}" in result.stderr
    assert f"resume with: cpnas train --resume {run_dir}" in result.stderr
    assert load_checkpoint(run_dir / "checkpoint")[1]["epoch"] == 1
    assert load_model(run_dir / "last.safetensors")[0].extras["epoch"] == 1  # not overwritten by the diverged epoch
    assert run_states(run_dir / "events.jsonl")[-1] == "failed"
    monkeypatch.undo()
    resumed = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert resumed.exit_code == 0, resumed.output
    assert epochs(run_dir) == epochs(ref_dir)
    assert run_states(run_dir / "events.jsonl") == ["started", "resumed", "finished"]


@pytest.mark.e2e
def test_a_full_disk_at_a_model_file_stops_the_training_with_one_line_and_it_resumes_to_the_same_training(
    reference, darts_v2_file, tmp_path, monkeypatch
):
    ref_dir, _ = reference
    run_dir = tmp_path / "run"
    save, saves = checkpoint.save_file, []

    def full_at_the_second_epoch(tensors, filename, metadata=None):  # last.safetensors of epoch 2
        saves.append(filename)
        if ".last.safetensors" in filename and sum(".last.safetensors" in f for f in saves) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(checkpoint, "save_file", full_at_the_second_epoch)
    result = runner.invoke(app, ["train", str(darts_v2_file), "--run-dir", str(run_dir), *set_flags(TINY)])
    assert_one_line_error(result, f"cannot write {run_dir / 'last.safetensors'} (No space left on device)")
    assert load_checkpoint(run_dir / "checkpoint")[1]["epoch"] == 1
    assert load_model(run_dir / "last.safetensors")[0].extras["epoch"] == 1  # the previous one, loadable
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    resumed = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert resumed.exit_code == 0, resumed.output
    assert epochs(run_dir) == epochs(ref_dir)
    ours, theirs = tensors(run_dir / "last.safetensors"), tensors(ref_dir / "last.safetensors")
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


@pytest.mark.e2e
def test_evaluate_prints_tables_and_json_that_match_training(reference):
    ref_dir, _ = reference
    best = ref_dir / "best.safetensors"
    result = runner.invoke(app, ["evaluate", str(best), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_images"] == 2000 and set(report["per_class"]) == set(load_model(best)[0].class_names)
    best_epoch = [e for e in epochs(ref_dir) if e["best"]][-1]
    assert report["top1"] == best_epoch["test_acc_child"]
    assert report["parent"]["top1"] == best_epoch["test_acc_parent"]
    assert report["top5"] >= report["top1"]
    confusion = report["confusion"]
    assert sum(map(sum, confusion)) == 2000
    assert report["top1"] == pytest.approx(100 * sum(confusion[i][i] for i in range(10)) / 2000, abs=0.01)
    tables = runner.invoke(app, ["evaluate", str(best)], env={"COLUMNS": "200"})
    assert tables.exit_code == 0, tables.output
    for text in ("top-1", "top-5", "Ankle boot", "Confusion matrix, Child (1-bit)", "Parent (full precision)"):
        assert text in tables.stdout


def _rewrite(source: Path, target: Path, **metadata):
    with safe_open(str(source), framework="pt") as f:
        meta = {**f.metadata(), **metadata}
        data = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict and cannot be iterated)
    save_file(data, str(target), metadata=meta)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "case, pattern",
    [
        ("missing", "not found"),
        ("truncated", "truncated"),
        ("other-genotype", "do not fit its genotype"),
        ("resume-checkpoint", "not a cpnas model checkpoint"),
        ("text", "truncated or not a safetensors file"),
        ("genotype", "is a genotype, not a cpnas model checkpoint"),
    ],
)
def test_evaluate_refuses_bad_checkpoints_with_one_line(reference, tmp_path, case, pattern):
    best = reference[0] / "best.safetensors"
    path = tmp_path / "model.safetensors"
    if case == "truncated":
        path.write_bytes(best.read_bytes()[: best.stat().st_size // 2])
    elif case == "other-genotype":
        _rewrite(best, path, genotype=json.dumps(g.to_dict(g.from_darts(DARTS_V2_VARIANT))))
    elif case == "resume-checkpoint":
        path = next((reference[0] / "checkpoint").glob("weights-*.safetensors"))
    elif case == "text":
        path.write_text("these are not the weights you are looking for\n")
    elif case == "genotype":  # a DARTS string saved under a model's name: named for what it is
        path.write_text(DARTS_V2)
    assert_one_line_error(runner.invoke(app, ["evaluate", str(path)]), pattern)


@pytest.mark.e2e
def test_evaluate_refuses_a_dataset_the_model_was_not_trained_on(reference, tmp_path):
    folder = tmp_path / "folder"
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (folder / split / cls).mkdir(parents=True)
    from PIL import Image

    for split in ("train", "test"):
        for cls in ("a", "b"):
            Image.new("RGB", (28, 28)).save(folder / split / cls / "x.png")
    result = runner.invoke(
        app, ["evaluate", str(reference[0] / "best.safetensors"), "--dataset", "folder", "--data-dir", str(folder)]
    )
    assert_one_line_error(result, "evaluate on the dataset it was trained on")


@pytest.mark.parametrize(
    "content, pattern",
    [
        (None, "not found"),
        ("not a genotype", "not valid JSON"),
        ('{"format": "something"}', "not a cpnas genotype"),
        (
            "Genotype(normal=[('conv_9x9', 0), ('skip_connect', 1)], "
            "reduce=[('skip_connect', 0), ('skip_connect', 1)])",
            "uses op conv_9x9, which cpnas's search space does not have",
        ),
    ],
)
def test_train_refuses_bad_genotype_files(tmp_path, content, pattern):
    path = tmp_path / "genotype.json"
    if content is not None:
        path.write_text(content)
    result = runner.invoke(app, ["train", str(path), "--run-dir", str(tmp_path / "run"), *set_flags(TINY)])
    assert_one_line_error(result, pattern)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, pattern",
    [
        ([], "no genotype given"),
        (["{g}", "--size", "huge"], "train.size"),
        (["{g}", "--set", "train.parent=none"], "needs the Parent"),
        (["{g}", "--set", "train.kernel_source=twin"], "train.kernel_source"),
        (["{g}", "--set", "train.reductions=[7]"], "cannot build the network"),
        (["{g}", "--set", "train.batch_size=9000"], "exceeds"),
        (["{g}", "--minutes", "0"], "train.minutes must be positive"),
        (["{g}", "--set", "train.lrr=1"], "did you mean train.lr"),
        (["--resume", "{tmp}"], "not a cpnas run directory"),
    ],
)
def test_train_bad_input(darts_v2_file, tmp_path, args, pattern):
    args = [a.format(g=darts_v2_file, tmp=tmp_path) for a in args]
    assert_one_line_error(
        runner.invoke(
            app, ["train", *args, "--run-dir", str(tmp_path / "run")] if "--resume" not in args else ["train", *args]
        ),
        pattern,
    )


@pytest.mark.e2e
def test_resume_refuses_flags_that_would_change_the_run(reference):
    result = runner.invoke(app, ["train", "--resume", str(reference[0]), "--epochs", "9"])
    assert_one_line_error(result, "cannot change it")


@pytest.mark.e2e
def test_a_frozen_parent_from_a_model_file_supervises_a_new_child(reference, tmp_path, darts_v2_file):
    best = reference[0] / "best.safetensors"
    run_dir = tmp_path / "frozen"
    result = runner.invoke(
        app,
        [
            "train",
            str(darts_v2_file),
            "--run-dir",
            str(run_dir),
            *set_flags([*TINY, "train.epochs=1", f"train.parent={best}"]),
        ],
    )
    assert result.exit_code == 0, result.output
    (row,) = epochs(run_dir)
    assert row["test_acc_parent"] == load_model(best)[0].extras["test_acc_parent"]  # frozen: unchanged
    assert row["loss_parent"] is None and row["loss_kernel"] > 0
    assert load_model(run_dir / "last.safetensors")[2] is None  # not ours to save
    other = tmp_path / "other.txt"
    other.write_text(DARTS_V2_VARIANT)
    result = runner.invoke(
        app, ["train", str(other), "--run-dir", str(tmp_path / "x"), *set_flags([*TINY, f"train.parent={best}"])]
    )
    assert_one_line_error(result, "from another genotype")


def test_search_and_training_each_augment_by_their_own_keys():
    """Augmentation is per phase: the fashion-mnist preset searches with crop + flip and trains without."""
    config = load_config(
        "quick",
        sets=[
            *TINY,
            "search.crop_padding=3",
            "search.flip=true",
            "train.crop_padding=0",
            "train.flip=false",
            "train.cutout=5",
        ],
    )
    assert SearchData(config, torch.device("cpu")).augment == Augment(crop_padding=3, flip=True)
    assert Trainer(config, g.from_darts(DARTS_V2)).augment == Augment(crop_padding=0, flip=False, cutout=5)
    preset = load_config("fashion-mnist")
    assert (preset.search.crop_padding, preset.search.flip) == (2, True)
    assert (preset.train.crop_padding, preset.train.flip) == (0, False)
