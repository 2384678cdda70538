"""Stage 2, training the found cells: the Child-Parent pair, the CP loss, the trainer, model files."""
