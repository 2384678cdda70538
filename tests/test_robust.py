"""Robustness through the command line (issue 19): bad files and run state are one line, exit 2,
nothing written (a binary genotype file, an empty run config.yaml, a watched path that does not
exist, a checkpoint from another version); one writer per run directory; SIGTERM is Ctrl-C; a NaN
stops a run at its step and a failed write (a full disk) stops it with one line, the last good
checkpoint kept in both cases."""

import errno
import json
import os
import pickle
import pickletools
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner

from cpnas_cli.cli.app import app
from cpnas_cli.config import dump_yaml, load_config, load_run_config
from cpnas_cli.data.embedded import load_embedded
from cpnas_cli.engine.ablation.plan import make_plan
from cpnas_cli.engine.ablation.runner import Ablation
from cpnas_cli.engine.deploy.packing import load_packed, write_packed
from cpnas_cli.engine.nn.network import NetworkSpec
from cpnas_cli.engine.run import checkpoint
from cpnas_cli.engine.run.checkpoint import load_checkpoint, save_checkpoint
from cpnas_cli.engine.run.loop import RunLoop
from cpnas_cli.engine.search.runner import Search
from cpnas_cli.engine.search.strategies.cp import CPStrategy
from cpnas_cli.engine.train.model_file import ModelInfo, load_model, save_model
from cpnas_cli.errors import UserError
from cpnas_cli.runs import RunDir, lock_writer, new_run_dir, release_writer
from cpnas_cli.space import genotype as genotypes
from tests.cli import ENV, assert_one_line_error, run_cli, set_flags, start_cli, wait_for
from tests.dashboard import drive, started_log, until
from tests.fuzz_targets import file_bytes
from tests.genotypes import DARTS_V2
from tests.tiny_runs import TINY_SEARCH, run_in_library, run_states, samples, structure, tiny_args

runner = CliRunner()
BINARY = bytes(range(256)) * 4  # not UTF-8: byte 0x80 cannot start a character


def files_in(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    "command, after", [("profile", []), ("train", ["--epochs", "1", "--run-dir", "run"]), ("export", ["out.json"])]
)
def test_a_binary_genotype_file_is_one_line_not_a_traceback(tmp_path, monkeypatch, command, after):
    monkeypatch.chdir(tmp_path)
    binary = tmp_path / "genotype.bin"
    binary.write_bytes(BINARY)
    result = runner.invoke(app, [command, str(binary), *after])
    assert_one_line_error(result, f"genotype file {binary} is not UTF-8 text")
    assert files_in(tmp_path) == [("genotype.bin", binary.stat().st_mtime_ns)]


def _edited(edit) -> dict:
    data = genotypes.to_dict(genotypes.from_darts(DARTS_V2))
    edit(data)
    return data


# Genotypes of other search spaces: an op of NASNet's space in a DARTS string, an op of ENAS's in
# cpnas JSON, and a NASNet-style node taking one input twice (our cells: one edge per pair of nodes).
# Each as the file a user passes and as the JSON a model file holds.
NASNET_OP = _edited(lambda d: d["normal"]["nodes"][3][1].update(op="sep_conv_7x7"))
ENAS_OP = _edited(lambda d: d["normal"]["nodes"][0][0].update(op="conv_3x3"))
TWICE = _edited(lambda d: d["normal"]["nodes"][1][1].update(input=0))
FOREIGN = {
    "nasnet.txt": (DARTS_V2.replace("('dil_conv_3x3', 2)", "('sep_conv_7x7', 2)"), NASNET_OP, "uses op sep_conv_7x7"),
    "enas.json": (json.dumps(ENAS_OP), ENAS_OP, "uses op conv_3x3, which cpnas's search space does not have"),
    "twice.json": (json.dumps(TWICE), TWICE, "normal node 3 takes node 0 twice, which cpnas's cells cannot"),
}


def _model_of(genotype: dict, path: Path) -> None:
    """A trained model file as `cpnas train` writes it, but holding this genotype (an edited file)."""
    path.write_bytes(file_bytes("model"))
    with safe_open(str(path), "pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    save_file(tensors, str(path), metadata={**metadata, "genotype": json.dumps(genotype)})


@pytest.mark.parametrize("name", list(FOREIGN))
@pytest.mark.parametrize("command", ["profile", "train", "export", "evaluate"])
def test_a_genotype_of_another_search_space_is_one_line_naming_the_file(tmp_path, monkeypatch, command, name):
    monkeypatch.chdir(tmp_path)
    text, in_a_model, problem = FOREIGN[name]
    source = tmp_path / name
    source.write_text(text)
    if command == "evaluate":  # a trained model file whose genotype is that one
        source = tmp_path / "best.safetensors"
        _model_of(in_a_model, source)
    after = {"train": ["--epochs", "1", "--run-dir", "run"], "export": ["cells.svg"]}.get(command, [])
    before = files_in(tmp_path)
    result = runner.invoke(app, [command, str(source), *after])
    assert_one_line_error(result, f"{source}")
    assert problem in result.stderr and "`cpnas search`" in result.stderr
    assert files_in(tmp_path) == before


def test_a_genotype_with_other_node_counts_is_of_this_space_and_profiles(tmp_path):
    five = DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3, 4, 5, 6]").replace(
        "('dil_conv_3x3', 2)]", "('dil_conv_3x3', 2), ('skip_connect', 0), ('sep_conv_3x3', 5)]"
    )
    (tmp_path / "five.txt").write_text(five)  # 5 nodes in the normal cell, 4 in the reduction cell
    result = runner.invoke(app, ["profile", str(tmp_path / "five.txt")])
    assert result.exit_code == 0, result.output


def test_a_genotype_given_to_evaluate_says_to_train_it_first(tmp_path, darts_v2_file):
    result = runner.invoke(app, ["evaluate", str(darts_v2_file)])
    assert_one_line_error(result, f"{darts_v2_file} is a genotype, not a cpnas model checkpoint")
    assert f"train it first (cpnas train {darts_v2_file})" in result.stderr


@pytest.mark.parametrize("text, pattern", [("", "is empty"), ("\n# nothing\n", "is empty"), ("- a\n", "mapping")])
@pytest.mark.parametrize("command", ["search", "train"])
def test_resuming_a_run_with_a_broken_config_names_the_file(tmp_path, command, text, pattern):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(text)
    before = files_in(tmp_path)
    result = runner.invoke(app, [command, "--resume", str(run)])
    assert_one_line_error(result, f"run config {run / 'config.yaml'}")
    assert pattern in result.stderr and files_in(tmp_path) == before


def test_resuming_a_run_with_a_binary_config_names_the_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_bytes(BINARY)
    result = runner.invoke(app, ["search", "--resume", str(run)])
    assert_one_line_error(result, f"run config {run / 'config.yaml'} is not UTF-8 text")


def test_watch_of_a_path_that_does_not_exist_is_one_line(tmp_path):
    result = runner.invoke(app, ["watch", str(tmp_path / "no-such-run")])
    assert_one_line_error(result, "no-such-run does not exist")
    assert "--wait" in result.stderr and not (tmp_path / "no-such-run").exists()


def test_a_checkpoint_from_another_version_is_refused_with_the_file_named(tmp_path):
    save_checkpoint(tmp_path, {}, {"step": 1}, tag="1")
    state = tmp_path / "state.json"
    assert json.loads(state.read_text())["version"] == 1
    state.write_text(json.dumps({**json.loads(state.read_text()), "version": 99}))
    with pytest.raises(UserError, match=f"{state} is of checkpoint version 99"):
        load_checkpoint(tmp_path)


def test_a_checkpoint_without_a_version_is_version_1(tmp_path):
    save_checkpoint(tmp_path, {}, {"step": 1}, tag="1")
    state = tmp_path / "state.json"
    state.write_text(json.dumps({k: v for k, v in json.loads(state.read_text()).items() if k != "version"}))
    assert load_checkpoint(tmp_path)[1]["step"] == 1


def _cifar_with_a_flipped_opcode(data_dir):
    """CIFAR-10's layout, every batch valid but data_batch_1, where one byte (the first TUPLE opcode)
    became BYTEARRAY8: the 8 bytes after it read as a length of terabytes. Found by benchmarks/fuzz.py."""
    batches = data_dir / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    valid = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, protocol=4)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (batches / name).write_bytes(valid)
    (batches / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]}))
    at = next(position for op, _, position in pickletools.genops(valid) if op.name == "TUPLE")
    (batches / "data_batch_1").write_bytes(valid[:at] + pickle.BYTEARRAY8 + valid[at + 1 :])


def test_a_damaged_cifar_batch_is_exactly_one_line_on_stderr(tmp_path):
    """Before the sizes were checked, CPython printed `SystemError: deallocated bytearray object has
    exported buffers` on stderr as the failed terabyte allocation was freed, above the one line."""
    _cifar_with_a_flipped_opcode(tmp_path / "data")
    run = tmp_path / "run"
    result = run_cli(["search", "--preset", "cifar10", "--data-dir", str(tmp_path / "data"), "--run-dir", str(run)])
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "data_batch_1 is not a readable CIFAR-10 python batch (expected" in result.stderr
    assert "bytearray8, but only" in result.stderr and not run.exists()


# --- one writer per run directory ----------------------------------------------------------------

HOLD = (
    "import sys, time; from cpnas_cli.runs import lock_writer; "
    "lock_writer(sys.argv[1]); print(1, flush=True); time.sleep(600)"
)


@pytest.fixture
def held(tmp_path):
    """`held(folder)`: another process holds folder's writer lock until the test ends (or kills it)."""
    procs = []

    def hold(folder):
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, env=ENV)
        assert proc.stdout is not None and proc.stdout.readline()
        procs.append(proc)
        return proc

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_second_writer_is_refused_naming_the_pid_and_a_killed_ones_lock_is_taken_over(tmp_path, held):
    proc = held(tmp_path)
    with pytest.raises(UserError, match=f"PID {proc.pid}"):
        lock_writer(tmp_path)
    proc.kill()  # SIGKILL: the kernel drops its lock; the file with its PID stays behind
    proc.wait()
    assert (tmp_path / "writer.lock").read_text().strip() == str(proc.pid)
    lock_writer(tmp_path)
    assert (tmp_path / "writer.lock").read_text().strip() == str(os.getpid())
    release_writer(tmp_path)


def test_a_run_killed_before_its_config_was_written_starts_again_in_its_directory(tmp_path, held):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "writer.lock").write_text("12345\n")  # all a run killed at its very start leaves
    result = runner.invoke(app, ["train", "--resume", str(tmp_path / "run")])
    assert_one_line_error(result, "is not a cpnas run directory (no config.yaml)")
    assert new_run_dir("test", tmp_path / "run").path == tmp_path / "run"  # the same --run-dir starts it again
    release_writer(tmp_path / "run")
    proc = held(tmp_path / "run")  # unless that first run is alive and about to write
    with pytest.raises(UserError, match=f"PID {proc.pid}"):
        new_run_dir("test", tmp_path / "run")


def _resumable_search(folder):
    run = new_run_dir("test", folder)
    run.config.write_text(dump_yaml(load_config("quick", sets=TINY_SEARCH)))
    release_writer(folder)
    return run


@pytest.mark.parametrize("command", ["search", "train"])
def test_resuming_a_run_another_process_writes_is_one_line_and_writes_nothing(tmp_path, held, command, darts_v2_file):
    run = _resumable_search(tmp_path / "run")
    (run.path / "events.jsonl").write_text('{"kind": "header"}\n')
    if command == "train":  # a train run keeps its genotype; a search with one has finished
        genotypes.save(genotypes.load(darts_v2_file), run.genotype)
    proc = held(run.path)
    before = files_in(run.path)
    result = runner.invoke(app, [command, "--resume", str(run.path)])
    assert_one_line_error(result, f"is being written by another cpnas process (PID {proc.pid})")
    assert files_in(run.path) == before


def test_resuming_an_ablation_another_process_runs_is_one_line(tmp_path, held):
    Ablation.create(tmp_path, load_config("quick", sets=TINY_SEARCH), make_plan(["cp"], None, seeds=1))
    release_writer(tmp_path)
    proc = held(tmp_path)
    result = runner.invoke(app, ["ablate", "--resume", str(tmp_path)])
    assert_one_line_error(result, f"(PID {proc.pid})")


TINY_TRAIN = ["train.channels=4", "train.cells=3", "train.stem_stride=2", "device=cpu"]


@pytest.mark.parametrize("command", ["train", "search"])
def test_a_new_run_given_the_directory_of_a_live_run_is_one_line_naming_the_pid(tmp_path, held, command, darts_v2_file):
    run = _resumable_search(tmp_path / "run")  # a search that is running: its writer holds the lock
    (run.path / "events.jsonl").write_text('{"kind": "header"}\n')
    args = {
        "train": ["train", str(darts_v2_file), "--run-dir", str(run.path), *set_flags(TINY_TRAIN)],
        "search": tiny_args(run.path),
    }[command]
    proc = held(run.path)
    before = files_in(run.path)
    result = runner.invoke(app, args)
    assert_one_line_error(result, f"is being written by another cpnas process (PID {proc.pid})")
    assert "choose another --run-dir" in result.stderr and files_in(run.path) == before
    proc.kill()  # that run ended: its directory is still not a new one
    proc.wait()
    result = runner.invoke(app, args)
    assert_one_line_error(result, "already exists and is not empty")
    assert files_in(run.path) == before


def test_readers_do_not_need_the_lock(tmp_path, held, darts_v2_file):
    run = _resumable_search(tmp_path / "run")
    genotypes.save(genotypes.load(darts_v2_file), run.genotype)
    held(run.path)
    assert runner.invoke(app, ["export", str(run.path), str(tmp_path / "g.json")]).exit_code == 0
    assert runner.invoke(app, ["profile", str(run.path)]).exit_code == 0


def test_watch_and_evaluate_read_a_run_another_process_writes(tmp_path, held):
    """The dashboard follows a locked run's log, and evaluate scores a model file in its directory
    (a training writes last.safetensors while it runs); neither writes there."""
    run = tmp_path / "run"
    run.mkdir()
    started_log(run / "events.jsonl")
    spec = NetworkSpec(in_channels=1, classes=10, channels=4, cells=2, image_size=28, reductions=[1])
    genotype = genotypes.from_darts(DARTS_V2)
    info = ModelInfo(genotype, spec, load_embedded().classes, "embedded", {"epochs": 1})
    save_model(run / "last.safetensors", info, spec.build(genotype, True))
    held(run)
    before = files_in(run)

    async def scenario(pilot):
        await until(pilot, lambda: (pilot.app.state.status or {}).get("state") == "started")

    assert drive(run, scenario).error is None
    result = runner.invoke(app, ["evaluate", str(run / "last.safetensors"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_images"] > 0 and files_in(run) == before


@pytest.mark.e2e
def test_a_live_search_refuses_a_second_writer_and_after_kill_9_resumes(tiny_search, tmp_path):
    ref_dir, _ = tiny_search()
    run_dir = tmp_path / "live"
    proc = start_cli(tiny_args(run_dir))
    wait_for(lambda: (run_dir / "events.jsonl").exists())
    second = run_cli(["search", "--resume", str(run_dir)], timeout=300)
    assert second.returncode == 2 and f"(PID {proc.pid})" in second.stderr, second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    proc.kill()
    proc.wait()
    result = run_cli(["search", "--resume", str(run_dir)], timeout=600)
    assert result.returncode == 0, result.stderr
    assert structure(run_dir) == structure(ref_dir)


# --- SIGTERM is Ctrl-C -----------------------------------------------------------------------------


@pytest.mark.e2e
def test_sigterm_checkpoints_prints_the_resume_command_and_exits_143(tiny_search, tmp_path):
    ref_dir, _ = tiny_search()
    run_dir = tmp_path / "terminated"
    proc = start_cli(tiny_args(run_dir))
    events = run_dir / "events.jsonl"
    wait_for(lambda: events.exists() and '"kind":"sample"' in events.read_text())
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert f"cpnas search --resume {run_dir}" in out.replace("\n", "")
    assert run_states(events)[-1] == "interrupted"
    result = run_cli(["search", "--resume", str(run_dir)], timeout=600)
    assert result.returncode == 0, result.stderr
    assert structure(run_dir) == structure(ref_dir) and samples(run_dir) == samples(ref_dir)


# --- numerical faults --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, named",
    [
        ({"kind": "sample", "n": 2, "loss_child": float("nan")}, "loss_child is nan at sample n 2"),
        ({"kind": "sample", "n": 2, "acc_child": 40.0, "acc_parent": float("inf")}, "acc_parent is inf at sample n 2"),
        ({"kind": "epoch", "epoch": 2, "test_acc_child": float("nan")}, "test_acc_child is nan at epoch 2"),
        (
            {"kind": "alpha", "step": 2, "weights": {"normal": [[0.1, float("-inf")]]}},
            "weights.normal[0][1] is -inf at alpha step 2",
        ),
    ],
    ids=["loss", "accuracy", "train-accuracy", "architecture-weight"],
)
def test_a_step_with_a_nan_or_inf_is_not_committed_and_names_the_value(tmp_path, line, named):
    loop = RunLoop(report=lambda e: None, stop=None)
    run = new_run_dir("test", tmp_path / "run")
    loop.start(run, {"kind": "header", "run": "search"})
    loop.commit({"w": torch.ones(2)}, {"n": 1}, [{"kind": "sample", "n": 1, "loss_child": 0.5}], tag="1")
    good, log = (run.checkpoint / "state.json").read_text(), run.events.read_text()
    with pytest.raises(UserError) as err:
        loop.commit({"w": torch.ones(2)}, {"n": 2}, [line], tag="2")
    assert f"the run diverged: {named}" in str(err.value)
    assert f"cpnas search --resume {run.path}" in str(err.value) and "search.lr" in str(err.value)
    assert (run.checkpoint / "state.json").read_text() == good and run.events.read_text() == log
    assert load_checkpoint(run.checkpoint)[1]["n"] == 1
    release_writer(run.path)


@pytest.mark.e2e
def test_a_nan_loss_stops_the_search_at_that_step_and_it_resumes_to_the_same_genotype(
    tiny_search, tmp_path, monkeypatch
):
    ref_dir, _ = tiny_search()
    step = CPStrategy.step

    def diverging(self, n, ctx):
        events = step(self, n, ctx)
        if n == 2:
            events[0]["loss_child"] = float("nan")
        return events

    monkeypatch.setattr(CPStrategy, "step", diverging)
    with pytest.raises(UserError, match="loss_child is nan at sample n 3"):
        run_in_library(Search, tmp_path / "run", TINY_SEARCH)
    run = RunDir(tmp_path / "run")
    assert load_checkpoint(run.checkpoint)[1]["n"] == 2 and run_states(run.events)[-1] == "failed"
    monkeypatch.setattr(CPStrategy, "step", step)
    search = Search(load_run_config(run.config))
    search.restore(run)
    search.run()
    assert structure(run.path) == structure(ref_dir) and samples(run.path) == samples(ref_dir)


# --- full disks and read-only places ---------------------------------------------------------------


def _checkpointed(folder):
    save_checkpoint(folder, {"w": torch.ones(3)}, {"n": 1}, tag="1")
    return (folder / "state.json").read_text()


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), SafetensorError("No space left")])
def test_a_full_disk_under_the_weights_keeps_the_previous_checkpoint(tmp_path, monkeypatch, error):
    good = _checkpointed(tmp_path)

    def half_then_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 100)  # what got written before the disk filled up
        raise error

    monkeypatch.setattr(checkpoint, "save_file", half_then_full)
    with pytest.raises(UserError, match=f"cannot write {tmp_path / 'weights-2.safetensors'} .*No space left"):
        save_checkpoint(tmp_path, {"w": torch.zeros(3)}, {"n": 2}, tag="2")
    assert (tmp_path / "state.json").read_text() == good
    assert load_checkpoint(tmp_path)[0]["w"].tolist() == [1.0, 1.0, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "weights-1.safetensors"]


@pytest.mark.parametrize(
    "fault, at",
    [
        (errno.ENOSPC, "os.fsync"),  # the state.json write
        (errno.EROFS, "tempfile.mkstemp"),  # a read-only place
        (errno.EACCES, "os.replace"),  # the rename of the weights file
    ],
)
def test_a_failed_write_is_one_user_error_naming_the_path_and_the_cause(tmp_path, monkeypatch, fault, at):
    good = _checkpointed(tmp_path)
    module, name = at.split(".")

    def fail(*args, **kwargs):
        raise OSError(fault, os.strerror(fault))

    monkeypatch.setattr(f"{module}.{name}", fail)
    with pytest.raises(UserError, match=f"cannot write {tmp_path}/.* \\({os.strerror(fault)}\\)"):
        save_checkpoint(tmp_path, {"w": torch.zeros(3)}, {"n": 2}, tag="2")
    monkeypatch.undo()
    assert (tmp_path / "state.json").read_text() == good and load_checkpoint(tmp_path)[1]["n"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _genotype_write(path: Path, version: int) -> None:
    text = DARTS_V2 if version == 1 else DARTS_V2.replace("sep_conv_3x3", "skip_connect", 1)
    genotypes.save(genotypes.from_darts(text), path)


def _tiny_model(version: int) -> tuple[ModelInfo, torch.nn.Module]:
    spec = NetworkSpec(in_channels=1, classes=3, channels=4, cells=2, image_size=8, reductions=[1])
    genotype = genotypes.from_darts(DARTS_V2)
    return ModelInfo(genotype, spec, ["a", "b", "c"], "embedded", {"epochs": version}), spec.build(genotype, True)


WRITERS = {  # writes the file's version 1 or 2; reads back the genotype, or the version a model file holds
    "genotype.json": (_genotype_write, lambda p: genotypes.to_dict(genotypes.load(p))["normal"]),
    "best.safetensors": (lambda p, v: save_model(p, *_tiny_model(v)), lambda p: load_model(p)[0].extras["epochs"]),
    "model.cpnas": (
        lambda p, v: write_packed(p, *_tiny_model(v)),
        lambda p: load_packed(p)[0].extras["epochs"],
    ),
}
SAFETENSORS_FAULTS = [  # safetensors writes (and syncs) a temp file in Rust, then it is renamed
    (errno.ENOSPC, "cpnas_cli.engine.run.checkpoint.save_file"),
    (errno.EROFS, "os.chmod"),
    (errno.EACCES, "os.replace"),
]
FAULTS = [  # every step of each write: the temp file made and written, its mode set, the rename
    *[("genotype.json", errno.EROFS, "tempfile.mkstemp"), ("genotype.json", errno.ENOSPC, "os.fsync")],
    ("genotype.json", errno.EACCES, "os.replace"),
    *[(name, fault, at) for name in ("best.safetensors", "model.cpnas") for fault, at in SAFETENSORS_FAULTS],
]


@pytest.mark.parametrize(
    "name, fault, at", FAULTS, ids=[f"{n}-{errno.errorcode[f]}-{a.rsplit('.', 1)[-1]}" for n, f, a in FAULTS]
)
def test_a_failed_genotype_or_model_write_is_one_line_and_the_previous_file_stands(
    tmp_path, monkeypatch, name, fault, at
):
    write, read = WRITERS[name]
    path = tmp_path / name
    write(path, 1)
    good, before = read(path), path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(fault, os.strerror(fault))

    monkeypatch.setattr(at, fail)
    with pytest.raises(UserError, match=re.escape(f"cannot write {path} ({os.strerror(fault)})")):
        write(path, 2)
    monkeypatch.undo()
    assert path.read_bytes() == before and read(path) == good
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temp file left
    write(path, 2)  # space is back
    assert read(path) != good


@pytest.mark.e2e
def test_a_full_disk_stops_the_search_with_one_line_and_it_resumes_once_space_is_back(
    tiny_search, tmp_path, monkeypatch
):
    ref_dir, _ = tiny_search()
    run_dir = tmp_path / "run"
    save = checkpoint.save_file

    def fills_at_the_third(tensors, filename, metadata=None):
        if "weights-0000003" in filename:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(checkpoint, "save_file", fills_at_the_third)
    result = runner.invoke(app, tiny_args(run_dir))
    assert_one_line_error(result, f"cannot write {run_dir / 'checkpoint' / 'weights-0000003.safetensors'}")
    assert "No space left on device" in result.stderr
    assert load_checkpoint(run_dir / "checkpoint")[1]["n"] == 2
    monkeypatch.undo()
    result = runner.invoke(app, ["search", "--resume", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert structure(run_dir) == structure(ref_dir) and samples(run_dir) == samples(ref_dir)


@pytest.mark.e2e
def test_a_full_disk_at_the_genotype_stops_the_search_with_one_line_and_it_resumes_to_it(
    tiny_search, tmp_path, monkeypatch
):
    ref_dir, _ = tiny_search()
    run_dir = tmp_path / "run"
    mkstemp = tempfile.mkstemp

    def full_at_the_genotype(*args, prefix=None, **kwargs):
        if prefix == ".genotype.json.":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return mkstemp(*args, prefix=prefix, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", full_at_the_genotype)
    result = runner.invoke(app, tiny_args(run_dir))
    assert_one_line_error(result, f"cannot write {run_dir / 'genotype.json'} (No space left on device)")
    assert not (run_dir / "genotype.json").exists() and load_checkpoint(run_dir / "checkpoint")[1]["n"] == 9
    monkeypatch.undo()
    result = runner.invoke(app, ["search", "--resume", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert structure(run_dir) == structure(ref_dir) and samples(run_dir) == samples(ref_dir)
    assert run_states(run_dir / "events.jsonl") == ["started", "resumed", "finished"]
