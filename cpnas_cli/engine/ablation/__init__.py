"""Ablations (Fig. 6): search every setting with the same seeds and budget, train every found
genotype with the same training preset, and tabulate and plot what came out.

The plan, the results and the picture are torch-free; `runner.Ablation` runs the units."""

from .plan import Plan, Setting, make_plan
from .results import UnitResult, rows, summary

__all__ = ["Plan", "Setting", "UnitResult", "make_plan", "rows", "summary"]
