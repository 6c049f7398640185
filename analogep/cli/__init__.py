"""The analogep command line (entry point `analogep = analogep.cli:main`).

The command modules import numpy, scipy and matplotlib, about a second of start-up: a
Ctrl-C that lands there ends the command as one anywhere else does, with one line and
exit code 130 (app.Group handles it once the command runs), not a traceback.
"""

import sys

try:
    from analogep.cli.app import main
except KeyboardInterrupt:
    sys.stderr.write("interrupted\n")
    raise SystemExit(130) from None

__all__ = ["main"]
