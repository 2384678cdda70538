"""`cpnas ablate`: compare settings of the search (beta_P, or the strategy) like Fig. 6: search
each with the same seeds and budget, train each found genotype, tabulate and plot the results."""

from typing import Annotated

import typer

from cpnas_cli import config as configs
from cpnas_cli.errors import UserError
from cpnas_cli.runs import new_run_dir

from ._ablate_view import AblationProgress, summary_table, units_table
from ._options import Device, Preset, Resume, RunDirOpt, Seed, Sets, console, guard
from ._run import resume_hint, world_note

EXAMPLES = """
Examples:

  cpnas ablate --beta-p 0,0.5,1,2,3 --preset fashion-mnist --seeds 3      # Fig. 6 left

  cpnas ablate --strategies random,bnas,cp,abandit --preset fashion-mnist  # Fig. 6 right

  cpnas ablate --strategies cp,abandit --beta-p 1 --seeds 2                # one beta_P for every setting

  cpnas ablate --resume runs/20261122-101500-ablate-fashion-mnist         # continue an interrupted one

  cpnas ablate --resume runs/20261122-101500-ablate-fashion-mnist --seeds 5   # add seeds 3 and 4
"""


def parse_list(value: str | None, what: str, kind=str) -> list | None:
    if value is None:
        return None
    try:
        items = [kind(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        raise UserError(
            f"{what} {value!r} is not a comma-separated list of numbers", f"e.g. {what} 0,0.5,1,2,3"
        ) from None
    if not items:
        raise UserError(f"{what} is empty", f"give at least one value after {what}")
    return items


@guard
def ablate(
    beta_p: Annotated[
        str | None, typer.Option(help="beta_P values to compare (CP-NAS, Eq. 1), comma-separated.")
    ] = None,
    strategies: Annotated[
        str | None,
        typer.Option(help="Strategies to compare, comma-separated: cp, bnas, random, abandit, pc-darts, dcp."),
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(
            help="Seeds per setting (seed, seed+1, ...): mean and spread over them (default 3). With "
            "--resume: grow the ablation to this many seeds.",
            show_default=False,
        ),
    ] = None,
    preset: Preset = "quick",
    seed: Seed = None,
    device: Device = None,
    sets: Sets = None,
    run_dir: RunDirOpt = None,
    resume: Resume = None,
):
    """Search every setting with every seed (same budget), train every found genotype with the
    preset's training recipe, and write results.json, results.csv and a Fig. 6 style results.png."""
    from cpnas_cli.engine.ablation import make_plan, rows, summary
    from cpnas_cli.engine.ablation.runner import Ablation
    from cpnas_cli.engine.run.distributed import joined
    from cpnas_cli.engine.run.interrupt import graceful_interrupt

    with joined() as world:  # under torchrun: the units are dealt over the ranks
        with world.together():
            if resume is not None:
                given = [
                    name
                    for name, v in (
                        ("--beta-p", beta_p),
                        ("--strategies", strategies),
                        ("--seed", seed),
                        ("--set", sets),
                        ("--run-dir", run_dir),
                    )
                    if v
                ]
                if given:
                    raise UserError(
                        f"--resume continues an ablation with its own plan; {', '.join(given)} cannot change it",
                        "drop those flags (only --device and --seeds may change on resume)",
                    )
            else:
                plan = make_plan(
                    parse_list(strategies, "--strategies"),
                    parse_list(beta_p, "--beta-p", float),
                    3 if seeds is None else seeds,
                    seed or 0,
                )
                base = configs.load_config(preset, {"device": device}, sets or [])

        def open_or_create():
            if resume is not None:
                made = Ablation.open(resume, device, seeds)
            else:
                made = Ablation.create(new_run_dir(f"ablate-{base.name}", run_dir).path, base, plan)
            return made.folder, made.base, made.plan

        with graceful_interrupt() as stop:
            folder, base, plan = world.on_main(open_or_create)  # rank 0 writes the directory
            world.on_device(base, None)
            ablation = Ablation(folder, base, plan, stop=stop, world=world)
            console.print(
                f"[bold]cpnas ablate[/] {folder}  ({len(plan.settings)} settings x {len(plan.seeds)} seeds, "
                f"{ablation.base.data.dataset}, device {ablation.base.device}{world_note(world)})"
            )
            with (
                resume_hint("ablate", folder, stop),
                AblationProgress(console, len(plan.units()), len(ablation.results)) as view,
            ):
                ablation.report = view
                ablation.run()
        if not world.main:
            return
    ablation.write_outputs()
    console.print(units_table(rows(plan, ablation.results)))
    console.print(summary_table(summary(plan, ablation.results)))
    console.print(f"Results: [bold]{folder / 'results.csv'}[/], {folder / 'results.json'}, {folder / 'results.png'}")
