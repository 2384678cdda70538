"""`cpnas config`: print the resolved configuration of a preset with flags applied."""

from rich.syntax import Syntax

from cpnas_cli import config as configs

from ._options import Preset, Sets, console, guard

EXAMPLES = """
Examples:

  cpnas config                                   # the quick preset, every key

  cpnas config --preset cifar10 --set search.beta_p=1
"""


@guard
def show_config(preset: Preset = "quick", sets: Sets = None):
    """Print every config key with its value after the preset and --set are applied (the keys --set accepts)."""
    config = configs.load_config(preset, sets=sets or [])
    console.print(Syntax(configs.dump_yaml(config), "yaml", theme="ansi_dark", background_color="default"))
