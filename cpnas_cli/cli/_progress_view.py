"""The base of the live views of search, train and ablate: a rich Progress used as a context manager."""

from rich.progress import Progress


class ProgressView:
    """Subclasses set `self.progress` and take events through `__call__`."""

    progress: Progress

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)
