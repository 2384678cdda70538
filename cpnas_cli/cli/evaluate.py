"""`cpnas evaluate`: test accuracy (top-1, top-5, per class, confusion) of a trained model file."""

import json
from pathlib import Path
from typing import Annotated

import typer

from ._options import DataDir, Dataset, Device, console, guard

EXAMPLES = """
Examples:

  cpnas evaluate runs/<train-id>/best.safetensors

  cpnas evaluate runs/<train-id>/last.safetensors --json

  cpnas evaluate model.cpnas --engine torch

  cpnas evaluate best.safetensors --dataset fashion-mnist --data-dir ~/data/fashion-mnist
"""


@guard
def evaluate(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="best.safetensors or last.safetensors of a `cpnas train` run, "
            "or a model.cpnas packed by `cpnas export`."
        ),
    ],
    dataset: Dataset = None,
    data_dir: DataDir = None,
    batch_size: Annotated[int, typer.Option(help="Evaluation batch size.")] = 500,
    device: Device = None,
    engine: Annotated[
        str | None,
        typer.Option(
            help="native | torch: what runs a packed model.cpnas (default: native where its library is built)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
):
    """Evaluate the 1-bit Child (and the full-precision Parent, if the file holds one) on a test set."""
    from cpnas_cli.engine.deploy.evaluation import evaluate_model_file
    from cpnas_cli.engine.run.device import resolve_device

    report = evaluate_model_file(
        checkpoint, dataset, str(data_dir) if data_dir else None, batch_size, resolve_device(device or "auto"), engine
    )
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    from ._train_view import accuracy_table, confusion_table

    console.print(
        f"[bold]cpnas evaluate[/] {checkpoint}  ({report.dataset}, {report.n_images} test images, "
        f"engine: {report.engine})"
    )
    if report.memory:
        console.print(memory_line(report.memory), highlight=False)
    console.print(accuracy_table(report.results, report.class_names))
    for role, metrics in report.results.items():
        name = "Child (1-bit)" if role == "child" else "Parent (full precision)"
        console.print(confusion_table(metrics, report.class_names, f"Confusion matrix, {name}"))


def memory_line(memory: dict) -> str:
    """What the native engine holds, beside the model file's bytes."""
    weights, file = memory["weights"], memory["file"]
    return (
        f"native engine holds {weights:,} bytes of weights ({weights / file:.2f}x the {file:,}-byte file) "
        f"+ {memory['activations']:,} bytes of activation buffers at batch {memory['batch']}"
    )
