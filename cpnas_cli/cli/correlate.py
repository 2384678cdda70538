"""`cpnas correlate`: does the Child-Parent indicator (Eq. 1) rank architectures as training them
stand-alone does? Score N drawn architectures with a Child-Parent supernet, train each as a 1-bit
network, and report Kendall's tau and Spearman's rho with bootstrap intervals (docs/correlate.md).
`--truth` reuses another study's trainings; `--ranking` scores a finished search's own ranking op by op."""

from pathlib import Path
from typing import Annotated

import typer

from cpnas_cli import config as configs
from cpnas_cli.errors import UserError
from cpnas_cli.runs import new_run_dir

from ._correlate_view import CorrelationProgress, ranking_table, statistics_table, summary_table
from ._options import Device, Preset, Resume, RunDirOpt, Seed, Sets, console, guard
from ._run import resume_hint, world_note
from .ablate import parse_list

EXAMPLES = """
Examples:

  cpnas correlate --preset fashion-mnist-ablation --architectures 24 --beta-p 0,1,2,3 --seeds 3

  cpnas correlate --resume runs/20261205-000000-correlate-fashion-mnist-ablation   # continue an interrupted one

  cpnas correlate --from runs/<correlate-run>/seed0/supernet --architectures 48     # score more with a trained supernet

  cpnas correlate --truth runs/<correlate-run> --set search.kernel_weight=0.001 --set search.center_weight=0.1
                                        # another supernet setting against the same trainings (one supernet per seed)

  cpnas correlate --ranking runs/<cp-search> --truth runs/<correlate-run>   # the search's own ranking, op by op
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
    truth: Annotated[
        Path | None,
        typer.Option(
            help="Reuse this correlate run's stand-alone trainings where genotype, train recipe and seed match; "
            "with --ranking, the trainings to compare against.",
        ),
    ] = None,
    ranking: Annotated[
        list[Path] | None,
        typer.Option(
            help="Score a finished cp, bnas or random search's own ranking (mean z per op and edge) against --truth's "
            "trainings, op by op; no supernet, no training (repeatable: one row set per search).",
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

    from cpnas_cli.engine.ablation.correlation_plan import make_plan, supernet_of
    from cpnas_cli.engine.ablation.correlation_truth import truth_run

    if ranking:
        flags: dict[str, object] = {"--architectures": architectures, "--beta-p": beta_p, "--seeds": seeds}
        flags |= {"--seed": seed, "--set": sets, "--from": from_, "--resume": resume}
        given = [name for name, value in flags.items() if value is not None]
        if given or truth is None:
            raise UserError(
                f"--ranking compares a finished search with --truth's trainings; {', '.join(given) or 'no --truth'}",
                "pass --ranking runs/<search> --truth runs/<correlate run> and nothing else but --run-dir",
            )
        return _rank(ranking, truth_run(truth), run_dir)

    from cpnas_cli.engine.ablation.correlation import Correlation  # torch: --ranking needs none
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
                        ("--truth", truth),
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
                if truth is not None:
                    plan = replace(plan, truth=str(truth_run(truth)))

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
    console.print(summary_table(summary(plan.scores(), rows)))
    console.print(f"Results: [bold]{folder / 'results.csv'}[/], {folder / 'results.json'}, {folder}/scatter-*.png")


def _rank(searches: list[Path], truth: Path, run_dir: Path | None) -> None:
    """--ranking: every search's op-level scores against the truth run's trainings (torch-free)."""
    from cpnas_cli.engine.ablation.correlation_ranking import load, score_names, write_results
    from cpnas_cli.engine.ablation.correlation_results import summary

    architectures, loaded = load(searches, truth)  # bad input fails here, before a folder is made
    folder = new_run_dir("correlate-ranking", run_dir).path
    console.print(
        f"[bold]cpnas correlate --ranking[/] {folder}  ({len(searches)} search(es) against the "
        f"{len(architectures)} trainings of {truth})"
    )
    rows = write_results(folder, truth, architectures, loaded)
    console.print(ranking_table(rows))
    console.print(summary_table(summary(score_names(), rows), unit="searches"))
    console.print(f"Results: [bold]{folder / 'results.csv'}[/], {folder / 'results.json'}, {folder}/scatter-*.png")
