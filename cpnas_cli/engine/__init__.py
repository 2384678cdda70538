"""The method on torch, by stage: run/ (plumbing), nn/ (building blocks), search/, train/, deploy/, ablation/."""
