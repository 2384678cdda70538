"""`python -m cpnas_cli` = `cpnas`."""

from .cli.app import main

main()
