"""Bad run state and bad files through the command line: one line, exit 2, nothing written. The
symptoms issue 19 named (a binary genotype file, an empty run config.yaml, a watched path that does
not exist) and a checkpoint from another version."""

import json

import pytest
from typer.testing import CliRunner

from cpnas_cli.cli.app import app
from cpnas_cli.engine.run.checkpoint import load_checkpoint, save_checkpoint
from cpnas_cli.errors import UserError
from tests.cli import assert_one_line_error

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
