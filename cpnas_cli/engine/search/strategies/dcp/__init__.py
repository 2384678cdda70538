"""DCP-NAS's parts: the strategy, tangent propagation, decoupled optimisation, learned-scale convs."""
