"""Stage 1, the search: its data, the supernets, the runner and one module per strategy."""
