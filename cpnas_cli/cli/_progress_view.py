"""The base of the live views of search, train and ablate: a rich Progress used as a context manager."""

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn


def progress_bars(console: Console, *timing: ProgressColumn) -> Progress:
    """Bars as every view draws them: name, bar, done/total, elapsed, `timing` (e.g. an ETA), info."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        *timing,
        TextColumn("{task.fields[info]}"),
        console=console,
    )


class ProgressView:
    """Subclasses set `self.progress` (see progress_bars) and take events through `__call__`."""

    progress: Progress

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)
