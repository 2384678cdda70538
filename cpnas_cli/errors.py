"""The one exception type for bad input: the CLI prints it as one line and exits with code 2."""


class UserError(Exception):
    """Bad input the user can fix. `problem` says what is wrong, `fix` what to do about it."""

    def __init__(self, problem: str, fix: str = ""):
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem}: {self.fix}" if self.fix else self.problem


class Notice(UserWarning):
    """Something the user should know that is not an error (a model file of an old format):
    the CLI prints each one once, as one yellow line on stderr."""


class ReportedElsewhere(UserError):
    """A UserError another process of the same job reports (rank 0, or the lowest rank still
    running, of a torchrun job): this one exits with code 2 without printing it again."""
