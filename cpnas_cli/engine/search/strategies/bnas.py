"""BNAS† (Table 1, Sec. 3.2): the CP-NAS loop scored by the Child's accuracy alone (beta_P = 0
in Eq. 1), the paper's stand-in for BNAS on 1-bit weights and activations.

The loop, the schedule and the Parent are those of CP-NAS; the Parent is trained and logged as in
`cp` but takes no part in the score, so `search.beta_p` is ignored and the run's wall time is
comparable with `cp` sample for sample.
"""

from cpnas_cli.bookkeeping.indicator import performance

from .cp import CPStrategy


class BNASStrategy(CPStrategy):
    name = "bnas"

    def score(self, n: int, acc: dict) -> float:
        """Eq. 1 with beta_P = 0: z = A_C."""
        return performance(acc["child"], acc["parent"], 0.0)

    def genotype(self, meta: dict):
        return super().genotype({**meta, "beta_p": 0.0})
