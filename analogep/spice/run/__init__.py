"""Running ngspice: the engines (shared library, subprocess), the runner registry, the
local worker pool, the Dask pool, and the worker lifetime guard."""
