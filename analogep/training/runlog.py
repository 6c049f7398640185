"""The run log, RUN_DIR/metrics.jsonl: one JSON record per logged training step.

A record is a strict JSON object (a value that is not finite, such as the loss of a
skipped step, is null) with an integer `step` (increasing down the file) and numeric
`loss`, `step_time` and `time` where present. Every record training writes names the
backend that computed it (`backend`; on ngspice also its `runner`), and the first record
after a resume that changed how steps are computed holds the change (`changed`,
training/resume.py). A line that is not JSON (a crash or a
disk error garbled it) costs only itself: the records after it are read, and a resume
moves it to metrics.jsonl.bad instead of dropping it. Valid JSON that is not a record
means the file is not a run log, and is refused with the file and line.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from analogep.errors import AnalogepWarning, CheckpointError
from analogep.io import json_text, write_text

METRICS_NAME = "metrics.jsonl"
BAD_LINES_NAME = "metrics.jsonl.bad"
_NUMERIC = ("loss", "step_time", "time")


@dataclass
class MetricsLog:
    """What metrics.jsonl holds: its records, and the lines that are not JSON."""

    path: Path
    records: list[dict] = field(default_factory=list)
    bad_lines: list[tuple[int, bytes]] = field(default_factory=list)  # (line number, the line's bytes)

    def describe_bad(self) -> str:
        """'line 51' or 'lines 51, 77 and 90 (3 lines)': which lines are not JSON."""
        numbers = [n for n, _ in self.bad_lines]
        if len(numbers) == 1:
            return f"line {numbers[0]} is"
        shown = ", ".join(map(str, numbers[:5])) + (", ..." if len(numbers) > 5 else "")
        return f"lines {shown} ({len(numbers)} lines) are"


def read_log(out_dir: str | Path) -> MetricsLog:
    """metrics.jsonl of a run folder (none yet: no records).

    A last line without its newline that is not JSON was being written when the process
    died: it belongs to a step after the last checkpoint and is left out quietly (a
    resume recomputes that step). Raises CheckpointError for a line that is JSON but not
    a record, or a step that does not increase."""
    path = Path(out_dir) / METRICS_NAME
    log = MetricsLog(path)
    if not path.exists():
        return log
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the run log ({exc.strerror or exc})") from None
    lines = data.split(b"\n")
    torn = lines.pop()  # after the last newline: nothing, or a line cut short
    for number, raw in enumerate(lines, 1):
        if raw.strip():
            _add(log, number, raw, torn=False)
    if torn.strip():
        _add(log, len(lines) + 1, torn, torn=True)
    return log


def _add(log: MetricsLog, number: int, raw: bytes, torn: bool) -> None:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8 or not JSON
        if not torn:
            log.bad_lines.append((number, raw))
        return
    where = f"{log.path}:{number}"
    snippet = raw.decode("utf-8")[:60]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{where}: not a metrics record (a JSON object with a step): {snippet}")
    step = obj.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise CheckpointError(f"{where}: not a metrics record (no integer step >= 1): {snippet}")
    for key in _NUMERIC:
        value = obj.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise CheckpointError(f"{where}: not a metrics record ({key} is not a number): {snippet}")
    if log.records and step <= log.records[-1]["step"]:
        raise CheckpointError(
            f"{where}: step {step} follows step {log.records[-1]['step']}; the log mixes two runs or was edited"
        )
    log.records.append(obj)


def read_metrics(out_dir: str | Path) -> list[dict]:
    """The records of a run folder; lines that are not JSON are skipped with an
    AnalogepWarning naming them (the file is not changed)."""
    log = read_log(out_dir)
    if log.bad_lines:
        warnings.warn(AnalogepWarning(f"{log.path}: {log.describe_bad()} not JSON; skipped"), stacklevel=2)
    return log.records


def keep_aside(log: MetricsLog) -> None:
    """Append the log's non-JSON lines to metrics.jsonl.bad (before a resume rewrites
    metrics.jsonl without them), with an AnalogepWarning."""
    if not log.bad_lines:
        return
    aside = log.path.with_name(BAD_LINES_NAME)
    with open(aside, "ab") as f:
        f.write(b"".join(raw + b"\n" for _, raw in log.bad_lines))
        f.flush()
    warnings.warn(
        AnalogepWarning(f"{log.path}: {log.describe_bad()} not JSON; moved to {aside.name}, the other records kept"),
        stacklevel=2,
    )


class RunLog:
    """metrics.jsonl opened for appending, line-buffered so `tail -f` follows the run.

    Opening rewrites the file with `records` (on resume: those up to the checkpoint's
    step), so a resumed run's log is the uninterrupted run's."""

    def __init__(self, out_dir: str | Path, records: list[dict]):
        path = Path(out_dir) / METRICS_NAME
        write_text(path, "".join(json_text(r) + "\n" for r in records))
        self._file = open(path, "a", buffering=1)

    def write(self, record: dict) -> None:
        self._file.write(json_text(record) + "\n")

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        """Close the file. Every record was flushed by its newline, so an error here only
        repeats a write that failed and was reported already."""
        try:
            self._file.close()
        except OSError:
            pass
