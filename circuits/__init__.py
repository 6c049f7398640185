"""Hand-written SPICE subcircuit library used by compiled analogep netlists."""
