"""The Typer application: registers one command per module."""

import typer

from . import ablate, bench, config_cmd, correlate, evaluate, export, profile, search, train, watch

app = typer.Typer(
    name="cpnas",
    help="Child-Parent NAS for 1-bit CNNs: search, train, watch, profile and export binarized networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)
app.command(epilog=search.EXAMPLES)(search.search)
app.command(epilog=export.EXAMPLES)(export.export)
app.command("config", epilog=config_cmd.EXAMPLES)(config_cmd.show_config)
app.command(epilog=watch.EXAMPLES)(watch.watch)
app.command(epilog=train.EXAMPLES)(train.train)
app.command(epilog=evaluate.EXAMPLES)(evaluate.evaluate)
app.command(epilog=profile.EPILOG)(profile.profile)
app.command(epilog=ablate.EXAMPLES)(ablate.ablate)
app.command(epilog=correlate.EXAMPLES)(correlate.correlate)
app.command(epilog=bench.EXAMPLES)(bench.bench)


def main() -> None:
    app()
