"""How `cpnas search` and `cpnas train` start, resume and stop a run, alone or as ranks of a
torchrun job (a helper, not a command)."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cpnas_cli import config as configs
from cpnas_cli.engine.run.interrupt import Interrupted, StopFlag
from cpnas_cli.errors import UserError
from cpnas_cli.runs import RunDir, atomic_write_text, existing_run, new_run_dir

from ._options import console

if TYPE_CHECKING:  # torch: commands import it when they run an engine, not with this module
    from cpnas_cli.engine.run.distributed import World


def run_config(
    preset: str,
    flags: dict,
    sets: list[str] | None,
    device: str | None,
    resume: Path | None,
    run_dir: Path | None,
    other_inputs: tuple[str, ...] = (),
) -> tuple[RunDir | None, configs.Config]:
    """(None, the new run's config: preset <- flags <- --set), or (the run to resume, its own
    config). A resume takes no flag that would change the run but --device; `other_inputs` names
    the command's other inputs that were given (they cannot change it either)."""
    if resume is None:
        return None, configs.load_config(preset, {**flags, "device": device}, sets or [])
    run = existing_run(resume)
    given = [k for k, v in flags.items() if v is not None] + (["--set"] if sets else [])
    given += (["--run-dir"] if run_dir else []) + list(other_inputs)
    if given:
        raise UserError(
            f"--resume continues a run with its own config; {', '.join(given)} cannot change it",
            "drop those (only --device may change on resume)",
        )
    config = configs.load_run_config(run.config)
    config.device = device or config.device
    return run, config


def open_run(
    engine, config: configs.Config, run: RunDir | None, name: str, run_dir: Path | None, world: "World"
) -> RunDir:
    """Resume `run` in the engine, or create the new run's directory (rank 0 of a torchrun job:
    every rank learns its path), write its config and begin."""
    if run is None:

        def create() -> str:
            made = new_run_dir(name, run_dir)
            atomic_write_text(made.config, configs.dump_yaml(config))  # a kill mid-write leaves no torn config
            return str(made.path)

        run = RunDir(Path(world.on_main(create)))
        world.resume_hint = f"cpnas {engine.command} --resume {run.path}"
        engine.begin(run)
        return run
    world.resume_hint = f"cpnas {engine.command} --resume {run.path}"
    engine.restore(run)
    return run


def world_note(world: "World") -> str:
    """What the header line adds for a torchrun job."""
    return f", {world.size} processes" if world.size > 1 else ""


@contextmanager
def resume_hint(command: str, folder: Path, stop: StopFlag) -> Iterator[None]:
    """Ctrl-C or SIGTERM (after the engine checkpointed, or a second one) ends with the command
    that resumes the run in `folder` and exit code 130 (Ctrl-C) or 143 (SIGTERM)."""
    try:
        yield
    except (Interrupted, KeyboardInterrupt):
        console.print(f"\n[yellow]Interrupted.[/] Resume with:  cpnas {command} --resume {folder}")
        raise typer.Exit(stop.exit_code) from None
