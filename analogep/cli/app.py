"""The analogep command line: train, sample, evaluate, gradcheck (and the SPICE commands).

Every command explains itself with --help, reports as JSON with --json, and turns bad
input into one line on stderr naming what is wrong, with exit code 2.
"""

from __future__ import annotations

import warnings

import click

from analogep.cli.analysis import compare_cmd, gradcheck_cmd
from analogep.cli.circuit import check_cmd, compile_cmd
from analogep.cli.energy import energy_cmd
from analogep.cli.generation import evaluate_cmd, sample_cmd
from analogep.cli.robustness import robustness_cmd
from analogep.cli.study import study_cmd
from analogep.cli.training import train_cmd
from analogep.errors import AnalogepError, AnalogepWarning

EXAMPLES = """
\b
Examples:
  analogep train examples/tiny.yaml --out runs/tiny
  analogep sample runs/tiny --n 100 --out tiny.png
  analogep evaluate runs/tiny --json
  analogep gradcheck examples/tiny.yaml --beta-sweep
  analogep study budget examples/digits-dsm.yaml --plot budget.png
  analogep compare runs/tiny runs/tiny-seed1
  analogep energy runs/digits --plot energy.png
  analogep robustness runs/digits --sweep variability=0,0.05,0.2 --plot robustness.png
"""


class Group(click.Group):
    """Turn analogep's user errors into one clean line and exit code 2, and its warnings
    into one `warning: ...` line each. What the machine refuses is one line too: a file
    that cannot be read or written (exit 2), memory that cannot be had (exit 2), and
    Ctrl-C wherever it lands (exit 130, as a shell reports a process stopped by SIGINT;
    click alone would print 'Aborted!' and exit 1)."""

    def invoke(self, ctx: click.Context):
        with warnings.catch_warnings():
            warnings.simplefilter("always", AnalogepWarning)
            shown = warnings.showwarning

            def show(message, category, filename, lineno, file=None, line=None):
                if issubclass(category, AnalogepWarning):
                    click.echo(f"warning: {message}", err=True)
                else:
                    shown(message, category, filename, lineno, file, line)

            warnings.showwarning = show
            try:
                return super().invoke(ctx)
            except AnalogepError as exc:
                click.echo(f"error: {exc}", err=True)
                ctx.exit(2)
            except OSError as exc:  # a file the command reads or writes, refused by the system
                where = f"{exc.filename}: " if exc.filename else ""
                click.echo(f"error: {where}{exc.strerror or exc}", err=True)
                ctx.exit(2)
            except MemoryError as exc:
                click.echo(f"error: out of memory ({exc or 'the work does not fit this machine'})", err=True)
                ctx.exit(2)
            except KeyboardInterrupt:  # Ctrl-C outside training's own handling (start-up, sampling...)
                click.echo("interrupted", err=True)
                ctx.exit(130)


@click.group(cls=Group, epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="analogep")
def main() -> None:
    """Train energy-based generative models with Gradient Equilibrium Propagation.

    FlowEqProp (Gower 2026): a Hopfield-like energy network learns a flow-matching
    velocity field from spring-clamped equilibria, with no backpropagation. The
    equilibria come from numpy relaxation or from an ngspice-simulated analog circuit.
    """


for command in (
    train_cmd, sample_cmd, evaluate_cmd, gradcheck_cmd, study_cmd, compare_cmd, compile_cmd, check_cmd, energy_cmd,
    robustness_cmd,
):
    main.add_command(command)


if __name__ == "__main__":
    main()
