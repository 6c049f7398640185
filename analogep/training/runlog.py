"""The run log, RUN_DIR/metrics.jsonl: one JSON record per logged training step."""

from __future__ import annotations

import json
from pathlib import Path

from analogep.io import write_text

METRICS_NAME = "metrics.jsonl"


def read_metrics(out_dir: str | Path) -> list[dict]:
    """The records of a run folder, up to the first line a crash cut short."""
    path = Path(out_dir) / METRICS_NAME
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a crash: everything after it is unreliable
    return records


class RunLog:
    """metrics.jsonl opened for appending, line-buffered so `tail -f` follows the run.

    Opening rewrites the file with `records` (on resume: those up to the checkpoint's
    step), so a resumed run's log is the uninterrupted run's."""

    def __init__(self, out_dir: str | Path, records: list[dict]):
        path = Path(out_dir) / METRICS_NAME
        write_text(path, "".join(json.dumps(r) + "\n" for r in records))
        self._file = open(path, "a", buffering=1)

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
