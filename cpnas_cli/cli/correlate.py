"""`cpnas correlate`: does the Child-Parent indicator (Eq. 1) rank architectures as training them
stand-alone does? Score N drawn architectures with a Child-Parent supernet, train each as a 1-bit
network, and report Kendall's tau and Spearman's rho with bootstrap intervals (docs/correlate.md)."""

from pathlib import Path
from typing import Annotated

import typer

from cpnas_cli import config as configs
from cpnas_cli.errors import UserError
from cpnas_cli.runs import new_run_dir

from ._correlate_view import CorrelationProgress, statistics_table, summary_table
from ._options import Device, Preset, Resume, RunDirOpt, Seed, Sets, console, guard
from ._run import resume_hint, world_note
from .ablate import parse_list

EXAMPLES = """
Examples:

  cpnas correlate --preset fashion-mnist-ablation --architectures 24 --beta-p 0,1,2,3 --seeds 3

  cpnas correlate --resume runs/20261205-000000-correlate-fashion-mnist-ablation   # continue an interrupted one

  cpnas correlate --from runs/<correlate-run>/seed0/supernet --architectures 48     # score more with a trained supernet
"""


@guard
def correlate(
    architectures: Annotated[
        int | None,
        typer.Option(help="Architectures drawn per seed, each trained stand-alone (default 24).", show_default=False),
    ] = None,
    beta_p: Annotated[
        str | None,
        typer.Option(
            help="beta_P values of Eq. 1 whose z is compared, comma-separated (default 0,1,2,3).", show_default=False
        ),
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(help="Seeds (seed, seed+1, ...): each its own supernet and draw (default 3).", show_default=False),
    ] = None,
    from_: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Score with this search run's supernet (every op still alive, e.g. another correlate run's "
            "seed<s>/supernet) instead of training one; its search and data settings are used.",
        ),
    ] = None,
    preset: Preset = "quick",
    seed: Seed = None,
    device: Device = None,
    sets: Sets = None,
    run_dir: RunDirOpt = None,
    resume: Resume = None,
):
    """Train the Child-Parent supernet with every op alive (the cp schedule, K fixed), score N drawn
    architectures by z (each beta_P), the Child and the Parent alone, train each architecture as a
    1-bit network with the preset's recipe, and rank-correlate; writes results.json, results.csv
    and a scatter-<score>.png per score."""
    from dataclasses import replace

    from cpnas_cli.engine.ablation.correlation import Correlation
    from cpnas_cli.engine.ablation.correlation_plan import make_plan, supernet_of
    from cpnas_cli.engine.ablation.correlation_results import summary
    from cpnas_cli.engine.run.distributed import joined
    from cpnas_cli.engine.run.interrupt import graceful_interrupt

    with joined() as world:  # under torchrun: the supernets and the trainings are dealt over the ranks
        with world.together():
            if resume is not None:
                given = [
                    name
                    for name, v in (
                        ("--architectures", architectures),
                        ("--beta-p", beta_p),
                        ("--seeds", seeds),
                        ("--seed", seed),
                        ("--set", sets),
                        ("--run-dir", run_dir),
                        ("--from", from_),
                    )
                    if v is not None
                ]
                if given:
                    raise UserError(
                        f"--resume continues a correlation with its own plan; {', '.join(given)} cannot change it",
                        "drop those flags (only --device may change on resume)",
                    )
            else:
                plan = make_plan(
                    24 if architectures is None else architectures,
                    parse_list(beta_p, "--beta-p", float) or [0.0, 1.0, 2.0, 3.0],
                    3 if seeds is None else seeds,
                    seed or 0,
                )
                base = configs.load_config(preset, {"device": device}, sets or [])
                if from_ is not None:  # the draw and the genotypes follow the supernet's space
                    supernet = supernet_of(from_)
                    scored = configs.load_run_config(supernet / "config.yaml")
                    base.search, base.data = scored.search, scored.data
                    plan = replace(plan, supernet=str(supernet.resolve()))

        def open_or_create():
            if resume is not None:
                made = Correlation.open(resume, device)
            else:
                made = Correlation.create(new_run_dir(f"correlate-{base.name}", run_dir).path, base, plan)
            return made.folder, made.base, made.plan

        with graceful_interrupt() as stop:
            folder, base, plan = world.on_main(open_or_create)  # rank 0 writes the directory
            world.on_device(base, None)
            study = Correlation(folder, base, plan, stop=stop, world=world)
            console.print(
                f"[bold]cpnas correlate[/] {folder}  ({plan.architectures} architectures x {len(plan.seeds)} seeds, "
                f"{study.base.data.dataset}, device {study.base.device}{world_note(world)})"
            )
            with resume_hint("correlate", folder, stop), CorrelationProgress(console, study.units, study.done) as view:
                study.report = view
                study.run()
        if not world.main:
            return
    study.write_outputs()
    rows = study.statistics()  # bootstrap intervals: seconds per seed, so computed once here
    console.print(statistics_table(rows))
    console.print(summary_table(summary(plan, rows)))
    console.print(f"Results: [bold]{folder / 'results.csv'}[/], {folder / 'results.json'}, {folder}/scatter-*.png")
