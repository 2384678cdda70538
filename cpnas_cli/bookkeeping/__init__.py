"""The method's numbers, torch-free and tested against values worked by hand: Eqs. 1-2, the
sampling schedule, the CP ledger and genotype rule, the DARTS rule, the bandit, learning rates, budgets."""
