"""The analogep command line (entry point `analogep = analogep.cli:main`)."""

from analogep.cli.app import main

__all__ = ["main"]
