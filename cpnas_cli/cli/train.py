"""`cpnas train`: train (or resume training) the evaluation network of a genotype with the CP loss."""

from pathlib import Path
from typing import Annotated

import typer

from cpnas_cli import config as configs
from cpnas_cli.errors import UserError
from cpnas_cli.events import read_all
from cpnas_cli.space import genotype as genotypes

from ._options import DataDir, Dataset, Device, Preset, Resume, RunDirOpt, Seed, Sets, console, guard, streamed
from ._run import open_run, resume_hint, run_config, world_note
from ._sources import source_genotype
from ._train_view import TrainProgress, summary_table

EXAMPLES = """
Examples:

  cpnas train runs/<id>/genotype.json                        # quick preset: embedded data, CPU, minutes

  cpnas train runs/<id> --preset fashion-mnist --size small  # full Fashion-MNIST, about an hour on 2 cores

  cpnas train genotype.txt --preset cifar10 --size medium    # the paper's recipe on CIFAR-10 (GPU)

  cpnas train genotype.json --set train.kernel_weight=0 --set train.center_weight=0   # CP loss off

  cpnas train --resume runs/<train-id>                       # continue an interrupted run
"""


def epoch_plan(t: configs.TrainConfig) -> str:
    return f"{t.epochs} epochs" if t.minutes is None else f"at most {t.epochs} epochs in {t.minutes:g} min"


@guard
def train(
    genotype: Annotated[
        Path | None,
        typer.Argument(help="genotype.json, a file with a DARTS Genotype(...) string, or a search run directory."),
    ] = None,
    preset: Preset = "quick",
    size: Annotated[
        str | None, typer.Option(help="small | medium | large: initial channels (paper CIFAR-10: 56 / 72 / 112).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (with --minutes: the most).")] = None,
    minutes: Annotated[
        float | None, typer.Option(help="Training-time budget: as many epochs as fit, judged after each epoch.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Training batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Initial learning rate (cosine-annealed).")] = None,
    dataset: Dataset = None,
    data_dir: DataDir = None,
    device: Device = None,
    seed: Seed = None,
    sets: Sets = None,
    run_dir: RunDirOpt = None,
    resume: Resume = None,
):
    """Train the found cells stacked into the evaluation network (Sec. 3.1): the 1-bit Child under
    the kernel-level Child-Parent loss (Eqs. 3-4), supervised by its full-precision Parent."""
    from cpnas_cli.engine.run.distributed import joined
    from cpnas_cli.engine.run.interrupt import graceful_interrupt
    from cpnas_cli.engine.train.trainer import Trainer

    flags = {
        "train.size": size,
        "train.epochs": epochs,
        "train.minutes": minutes,
        "train.batch_size": batch_size,
        "train.lr": lr,
        "data.dataset": dataset,
        "data.data_dir": str(data_dir) if data_dir else None,
        "seed": seed,
    }
    with joined() as world:  # under torchrun: this rank of the job; alone: no process group
        with world.together():
            if resume is None and genotype is None:
                raise UserError(
                    "no genotype given", "pass a genotype.json, a DARTS genotype file or a search run directory"
                )
            run, config = run_config(preset, flags, sets, device, resume, run_dir, ("GENOTYPE",) if genotype else ())
            if run is not None:
                cell = genotypes.load(run.genotype)
            else:
                assert genotype is not None  # a new run (no --resume) has a genotype, checked above
                cell = source_genotype(genotype)
        world.on_device(config, ("train.batch_size", config.train.batch_size))

        with graceful_interrupt() as stop:
            with world.together():
                engine = Trainer(config, cell, stop=stop, world=world)  # loads data, builds networks: fails first
            run = open_run(engine, config, run, f"train-{config.name}", run_dir, world)
            t = config.train
            console.print(
                f"[bold]cpnas train[/] {run.path}  ({config.data.dataset}{streamed(engine.data)}, "
                f"C={engine.spec.channels}, "
                f"{t.cells} cells, {epoch_plan(t)}, Parent {t.parent}, kernel x{t.kernel_weight:g}, "
                f"centre x{t.center_weight:g}, device {engine.device}{world_note(world)})"
            )
            if engine.finished:
                console.print(f"Run {run.path} already finished.")
            else:
                with resume_hint("train", run.path, stop), TrainProgress(console, engine.epochs, engine.epoch) as view:
                    engine.report = view
                    engine.run()
        if not world.main:
            return
    console.print(summary_table(read_all(run.events)))
    console.print(
        f"Model: [bold]{run.path / 'best.safetensors'}[/]   (evaluate: cpnas evaluate {run.path / 'best.safetensors'})"
    )
