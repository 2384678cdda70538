"""`cpnas bench` through the CLI runner: the JSON fields and positive ratios on a tiny packed model
and on a genotype with random weights, and one line with exit 2 for bad input."""

import json

import pytest
from typer.testing import CliRunner

from cpnas_cli.cli.app import app
from cpnas_cli.data import load_dataset
from cpnas_cli.engine.deploy.native import library
from tests.cli import assert_one_line_error
from tests.test_export import SPEC_SHORTCUT, _trained_checkpoint, invoke

needs_library = pytest.mark.skipif(not library.available(), reason=library.why_unavailable())
runner = CliRunner()
ENGINES = ("native", "torch 1-bit", "torch full precision")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    checkpoint = _trained_checkpoint(folder / "best.safetensors", SPEC_SHORTCUT, load_dataset("embedded"))
    assert invoke("export", checkpoint, folder / "model.cpnas").exit_code == 0
    return checkpoint, folder / "model.cpnas"


def check_report(data: dict, batches: list[int]) -> None:
    assert data["isa"] == library.isa() and data["threads"] >= 1
    assert data["resident_bytes"]["weights"] > 0 and data["resident_bytes"]["activations"] > 0
    assert [row["batch"] for row in data["batches"]] == batches
    for row in data["batches"]:
        for name in ENGINES:
            timing = row[name]
            assert 0 < timing["median_ms"] <= timing["p90_ms"] and timing["images_per_s"] > 0
        assert row["speedup_vs_torch_1bit"] > 0 and row["speedup_vs_full_precision"] > 0
        assert row["activation_bytes"] > 0
        assert abs(sum(layer["share"] for layer in row["layers"]) - 1) < 1e-6
        assert {layer["precision"] for layer in row["layers"]} == {"1-bit", "full precision"}
        assert any(layer["path"].startswith(library.isa()) for layer in row["layers"])


@needs_library
def test_bench_a_packed_model(model):
    result = invoke("bench", model[1], "--batch", "1", "--repeats", "2", "--threads", "1", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    check_report(data, [1])
    assert data["file_bytes"] == model[1].stat().st_size and data["input"] == [1, 28, 28]


@needs_library
def test_bench_a_genotype_with_random_weights_and_tables(darts_v2_file):
    args = ("bench", darts_v2_file, "--preset", "fashion-mnist", "--size", "small", "--batch", "1,2", "--repeats", "2")
    data = json.loads(invoke(*args, "--json").stdout)
    check_report(data, [1, 2])
    tables = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert tables.exit_code == 0, tables.output
    assert "native speedup" in tables.stdout and "time per step kind" in tables.stdout


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["missing.cpnas"], "not found"),
        (["CHECKPOINT"], "export it with cpnas export"),
        (["MODEL", "--batch", "1,x"], "expected positive batch sizes"),
        (["MODEL", "--batch", "0"], "expected positive batch sizes"),
        (["MODEL", "--size", "small"], "its size is fixed"),
    ],
)
def test_bad_input_is_one_line(model, args, pattern):
    args = [{"CHECKPOINT": model[0], "MODEL": model[1]}.get(a, a) for a in args]
    assert_one_line_error(invoke("bench", *args), pattern)


def test_bench_without_the_library_is_one_line(model, monkeypatch):
    monkeypatch.setattr(library, "_LIB", None)
    monkeypatch.setattr(library, "_WHY", "_cpnas_native.so was not built (test)")
    assert_one_line_error(invoke("bench", model[1]), "was not built (test)")
