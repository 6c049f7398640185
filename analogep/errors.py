"""User-facing errors: the CLI prints their one-line message and exits with code 2."""


class AnalogepError(Exception):
    """Bad input or a run that cannot go on; the message is one line naming what and where."""


class CheckpointError(AnalogepError):
    """A checkpoint or run folder that cannot be used."""


class OutputError(AnalogepError, OSError):
    """An output that cannot be written (a full disk, a read-only folder, no permission),
    named by its final path. It is an OSError too, so code that handles a failed write
    (training's checkpoint and log writes) handles it."""

    def __str__(self) -> str:
        return f"{self.filename}: cannot write ({self.strerror})"


class AnalogepWarning(UserWarning):
    """Something the user must know that does not stop the command (a run log line kept
    aside, a config changed on resume); the CLI prints it as one `warning: ...` line."""


class CircuitError(AnalogepError):
    """A circuit that cannot be built or solved; the message names what and where."""


class DataError(AnalogepError):
    """Training data that cannot be used (a missing or unreadable file, a wrong shape,
    non-finite values); the message names the file and the problem."""
