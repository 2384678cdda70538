"""The command line through Typer's runner: bad input is one line on stderr and exit code 2,
nothing already written is touched; export writes JSON and DARTS genotypes."""

import json

import pytest
from typer.testing import CliRunner

from cpnas_cli.cli.app import app
from cpnas_cli.space import genotype as g
from tests.cli import assert_one_line_error
from tests.genotypes import DARTS_V2

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["--dataset", "imagenet21k"], "unknown dataset"),
        (["--dataset", "cifar10"], "cifar10"),  # no --data-dir: says how to provide the files
        (["--dataset", "fashion-mnist", "--data-dir", "/nonexistent/dir"], "/nonexistent/dir"),
        (["--beta-p", "-1"], "beta_p must not be negative"),
        (["--rounds", "0"], "rounds"),
        (["--ops", "1"], "--ops 1 is out of range"),
        (["--ops", "skip,conv_9x9"], "unknown ops"),
        (["--set", "search.betap=1"], "did you mean search.beta_p"),
        (["--set", "nonsense"], "not key=value"),
        (["--preset", "no-such-preset"], "unknown preset"),
        (["--device", "cuda:7"], "not available"),
    ],
)
def test_search_bad_input(tmp_path, args, pattern):
    run_dir = tmp_path / "run"
    result = invoke("search", "--run-dir", str(run_dir), *args)
    assert_one_line_error(result, pattern)
    assert not run_dir.exists()  # nothing was created for a run that could not start


def test_search_bad_preset_file(tmp_path):
    preset = tmp_path / "broken.yaml"
    preset.write_text("search:\n  rounds: [\n")
    assert_one_line_error(invoke("search", "--preset", str(preset)), "not valid YAML")


def test_resume_of_something_that_is_not_a_run(tmp_path):
    assert_one_line_error(invoke("search", "--resume", str(tmp_path)), "not a cpnas run directory")


def test_resume_refuses_flags_that_would_change_the_run(tmp_path):
    (tmp_path / "config.yaml").write_text("name: quick\n")
    result = invoke("search", "--resume", str(tmp_path), "--beta-p", "1")
    assert_one_line_error(result, "cannot change it")


def test_existing_run_dir_is_not_overwritten(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    assert_one_line_error(invoke("search", "--run-dir", str(tmp_path)), "already exists")
    assert (tmp_path / "keep.txt").read_text() == "precious"


def test_export_json_and_darts(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text(DARTS_V2)
    result = invoke("export", str(source), str(tmp_path / "out.json"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out.json").read_text())["format"] == "cpnas-genotype"
    result = invoke("export", str(tmp_path / "out.json"), str(tmp_path / "out.txt"), "--format", "darts")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.txt").read_text().strip() == DARTS_V2
    assert g.load(tmp_path / "out.txt") == g.load(tmp_path / "out.json")


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["{src}", "{tmp}/missing/out.json"], "does not exist"),
        (["{tmp}/nope.json", "{tmp}/out.json"], "not found"),
        (["{src}", "{tmp}/out.json", "--format", "yaml"], "unknown format"),
        (["{tmp}", "{tmp}/out.json"], "no genotype.json"),
    ],
)
def test_export_bad_input(tmp_path, args, pattern):
    source = tmp_path / "in.txt"
    source.write_text(DARTS_V2)
    args = [a.format(src=source, tmp=tmp_path) for a in args]
    assert_one_line_error(invoke("export", *args), pattern)


def test_config_prints_every_key():
    result = invoke("config", "--set", "search.beta_p=0.5")
    assert result.exit_code == 0
    assert "beta_p: 0.5" in result.output and "epochs_per_sample" in result.output
