"""Stage 3, what a trained network costs and how it ships: profile, packing, plans, the native engine."""
