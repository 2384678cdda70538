"""Fixtures several test modules share: a genotype file, and finished tiny searches run once a session."""

import pytest

from cpnas_cli.engine.search.runner import Search
from tests.genotypes import DARTS_V2
from tests.tiny_runs import TINY_SEARCH, run_in_library


@pytest.fixture(scope="session")
def darts_v2_file(tmp_path_factory):
    """DARTS_V2 in a text file, as `cpnas train` and `cpnas profile` take a genotype."""
    path = tmp_path_factory.mktemp("genotype") / "darts_v2.txt"
    path.write_text(DARTS_V2 + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_search(tmp_path_factory):
    """`tiny_search(*overrides)`: one uninterrupted tiny search through the library with these overrides
    after TINY_SEARCH, run the first time it is asked for and kept for the session, timed:
    (its run directory, seconds)."""
    finished = {}

    def get(*overrides: str) -> tuple:
        if overrides not in finished:
            folder = tmp_path_factory.mktemp("search") / "run"
            run, _, seconds = run_in_library(Search, folder, [*TINY_SEARCH, *overrides])
            finished[overrides] = run.path, seconds
        return finished[overrides]

    return get
