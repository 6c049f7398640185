"""What the command-line tests share: the repository's paths, the `analogep` command run
in-process (click's CliRunner, the real command, no mocks) and the tiny example turned
into a score-matching config."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from analogep.cli.app import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny.yaml"


def invoke(*args) -> Result:
    """`analogep ARGS...` in this process; every argument as its str."""
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_ok(result: Result) -> None:
    """The command succeeded; else its exit code, output and exception say why."""
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"


def tiny_dsm_yaml(path: Path, dsm: str = "") -> Path:
    """examples/tiny.yaml with train.objective: dsm (and `dsm`, the body of a dsm section
    such as "conditioning: scale\\n", indented by the caller), written to `path`."""
    text = TINY.read_text().replace("train:\n", "train:\n  objective: dsm\n", 1)
    path.write_text(text + (f"\ndsm:\n{dsm}" if dsm else ""))
    return path


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """Refused the project's way: exit code 2, no traceback, and exactly one line on stderr,
    `error: ...` holding every fragment; returns that line."""
    assert result.exit_code == 2, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def train_tiny(out: Path, steps: int) -> Path:
    """A flow-matching run of examples/tiny.yaml, `steps` steps, into `out` (no samples)."""
    assert_ok(invoke("train", TINY, "--out", out, "--steps", steps, "--no-samples"))
    return out
