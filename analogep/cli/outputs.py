"""Where a command writes what the user did not name: the output-path policy.

A run folder holds recorded results: training's samples.png and samples.npy (the run's
generate settings), evaluate's quality.json (1000 samples of those settings, which
`compare` reads). A command that makes one of them with the run's own settings writes it
there (the same result again, of the run's latest checkpoint); with any other setting it
writes beside it, under a name that says the settings (`quality-n200.json`,
`samples-t1.2-seed3.png`), and says where it wrote, so no recorded result is replaced by
a different one the user did not ask to replace. An output the user names (--out,
--save, --plot) is written where named. `compile` without --out writes to decks/<name>,
never into the repository's reviewed netlists/.
"""

from __future__ import annotations

import re
from pathlib import Path

from analogep.config.schema import to_dict
from analogep.config.spec import Spec

# compile's default folder (a folder of decks per config name).
DECKS_FOLDER = Path("decks")


def _text(value) -> str:
    if isinstance(value, float):
        value = f"{value:g}"
    return re.sub(r"[^A-Za-z0-9._]+", "_", str(value)).strip("_") or "none"


def settings_name(path: str | Path, settings: dict) -> Path:
    """`path` with the settings in its name: quality.json + {"n": 200, "seed": 3} ->
    quality-n200-seed3.json; a setting whose value is True is its name alone (-spice),
    one that is a name, its value (ode); no settings: `path` itself."""
    path = Path(path)
    if not settings:
        return path
    parts = []
    for key, value in settings.items():
        if value is True:
            parts.append(_text(key))
        elif isinstance(value, str) and key in ("sampler", "mode"):
            parts.append(_text(value))
        else:
            parts.append(f"{_text(key)}{_text(value)}")
    return path.with_name(f"{path.stem}-{'-'.join(parts)}{path.suffix}")


def devices_label(devices: str) -> str:
    """A --devices value as a name: the preset, or the YAML file's stem."""
    return Path(devices).stem if devices.endswith((".yaml", ".yml")) else devices


def sampling_settings(run: Spec, used: Spec, n: int | None = None, run_n: int | None = None,
                      backend: str = "numpy", devices: str | None = None) -> dict:
    """The sampling settings of `used` that differ from the run's (`run`): the generate and
    dsm keys changed (n compared as given against `run_n`, default generate.n), the backend
    when not numpy, the devices when given."""
    out: dict = {}
    if n is not None and n != (run.generate.n if run_n is None else run_n):
        out["n"] = n
    for section in ("generate", "dsm"):
        before, after = to_dict(getattr(run, section)), to_dict(getattr(used, section))
        out.update({k: v for k, v in after.items() if before.get(k) != v and k != "n"})
    if backend != "numpy":
        out[backend] = True
    if devices is not None:
        out["devices"] = devices_label(devices)
    return out
