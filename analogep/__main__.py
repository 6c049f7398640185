"""`python -m analogep ...`: the same command line as the `analogep` script, for environments
where the virtual environment's bin/ is not on PATH."""

from analogep.cli import main

main()
