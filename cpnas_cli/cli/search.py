"""`cpnas search`: run (or resume) a CP-NAS search and write the genotype."""

from typing import Annotated

import typer

from cpnas_cli import config as configs
from cpnas_cli.errors import UserError
from cpnas_cli.events import read_all
from cpnas_cli.space import genotype as genotypes
from cpnas_cli.space.cells import OPS

from ._cell_tree import cell_tree
from ._options import DataDir, Dataset, Device, Preset, Resume, RunDirOpt, Seed, Sets, console, guard, streamed
from ._run import open_run, resume_hint, run_config, world_note
from ._search_view import SearchProgress, survivors_table

EXAMPLES = """
Examples:

  cpnas search                                          # quick preset, embedded Fashion-MNIST sample

  cpnas search --preset fashion-mnist --beta-p 2        # full Fashion-MNIST, about an hour on 2 cores

  cpnas search --preset cifar10 --data-dir ~/data       # the paper's setting (GPU)

  cpnas search --dataset folder --data-dir D            # D/train/<class>/*, D/test/<class>/*

  cpnas search --strategy abandit                       # a baseline: cp, bnas, random, abandit

  cpnas search --resume runs/20261122-101500-quick      # continue an interrupted run
"""


def parse_ops(value: str) -> list[str]:
    """--ops K (the first K ops of the paper's list) or a comma list of op names."""
    if value.strip().isdigit():
        k = int(value)
        if not 2 <= k <= len(OPS):
            raise UserError(f"--ops {k} is out of range", f"use 2..{len(OPS)} or a comma list of op names")
        return list(OPS[:k])
    return [op.strip() for op in value.split(",") if op.strip()]


def budget(s: configs.SearchConfig) -> str:
    """What the search's size is made of, for the header line."""
    if s.strategy in ("pc-darts", "dcp"):
        return f"{s.diff_epochs:g} epochs, 1/{s.pc_k} channels, {len(s.ops)} ops"
    return f"K={len(s.ops)}, T={s.rounds}, beta_P={s.beta_p:g}"


@guard
def search(
    preset: Preset = "quick",
    strategy: Annotated[
        str | None,
        typer.Option(
            help="cp (default) | bnas (beta_P = 0) | random | abandit (docs/strategies.md) | pc-darts | dcp "
            "(docs/differentiable.md)."
        ),
    ] = None,
    dataset: Dataset = None,
    data_dir: DataDir = None,
    beta_p: Annotated[float | None, typer.Option(help="beta_P of Eq. 1 (0 = Child accuracy only, BNAS†).")] = None,
    rounds: Annotated[int | None, typer.Option(help="T: rounds per K; every op is scored once per round.")] = None,
    ops: Annotated[
        str | None, typer.Option(help="Initial ops: a count K (first K of the paper's 8) or names, comma-separated.")
    ] = None,
    channels: Annotated[int | None, typer.Option(help="Initial channels C of the supernet.")] = None,
    cells: Annotated[int | None, typer.Option(help="Cells in the supernet.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Training batch size.")] = None,
    epochs_per_sample: Annotated[
        float | None, typer.Option(help="Epochs of the search-train split per sample (may be < 1).")
    ] = None,
    device: Device = None,
    seed: Seed = None,
    sets: Sets = None,
    run_dir: RunDirOpt = None,
    resume: Resume = None,
):
    """Search a 1-bit cell with CP-NAS (Alg. 1): the Child and Parent train every sampled
    architecture, Eq. 1 scores it, Eq. 2 ranks the ops, the worst op on every edge goes, K -> 1."""
    from cpnas_cli.engine.run.distributed import joined
    from cpnas_cli.engine.run.interrupt import graceful_interrupt
    from cpnas_cli.engine.search.runner import Search

    flags = {
        "data.dataset": dataset,
        "data.data_dir": str(data_dir) if data_dir else None,
        configs.STRATEGY_KEY: strategy,
        configs.BETA_P_KEY: beta_p,
        "search.rounds": rounds,
        "search.ops": parse_ops(ops) if ops else None,
        "search.channels": channels,
        "search.cells": cells,
        "search.batch_size": batch_size,
        "search.epochs_per_sample": epochs_per_sample,
        "seed": seed,
    }
    with joined() as world:  # under torchrun: this rank of the job; alone: no process group
        with world.together():
            run, config = run_config(preset, flags, sets, device, resume, run_dir)
        world.on_device(config, batch_setting(config.search))
        if run is not None and world.on_main(run.genotype.is_file):
            console.print(f"Run {run.path} already finished; its genotype is {run.genotype}")
            return

        with graceful_interrupt() as stop:
            with world.together():
                engine = Search(config, stop=stop, world=world)  # loads data, builds networks: fails before writing
            run = open_run(engine, config, run, config.name, run_dir, world)
            console.print(
                f"[bold]cpnas search[/] {run.path}  ({config.search.strategy}, {config.data.dataset}"
                f"{streamed(engine.data.dataset)}, {budget(config.search)}, device {engine.device}{world_note(world)})"
            )
            with resume_hint("search", run.path, stop), SearchProgress(console, engine.total, engine.n) as view:
                engine.report = view
                engine.run()
        if not world.main:
            return
    console.print(survivors_table(read_all(run.events)))
    genotype_path = run.genotype
    console.print(cell_tree(genotypes.load(genotype_path)))
    console.print(f"Genotype: [bold]{genotype_path}[/]   (export: cpnas export {run.path} genotype.json)")


def batch_setting(s: configs.SearchConfig) -> tuple[str, int]:
    """The training batch of the strategy, which every rank shares equally under torchrun."""
    if s.strategy in ("pc-darts", "dcp"):
        return "search.diff_batch_size", s.diff_batch_size
    return "search.batch_size", s.batch_size
