"""What a resumed run may change, so that a run folder's config stays true to its run.

The checkpoint carries the effect of the keys that set a run up at its first step: the
model's weights, the random stream of noise, times and batches (train.seed), the
optimizer's state, the devices' draws and programmed state. A resume that changed one of
them would write into config.yaml a value the run never used (retraining from it would
give another model), so such a change is refused, naming the key. Every other key
(train.steps to extend the run, the learning rate, the backend, ...) takes effect from the
next step: each change is reported and written into config.yaml, and one that changes how
the steps are computed (not train.steps, threads, logging, sampling settings...) is logged
in metrics.jsonl with the first step it applied to (`"changed": {key: [old, new]}`), so
config.yaml and the log together say how every step was computed.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from analogep.config.schema import to_dict
from analogep.config.spec import Spec
from analogep.errors import AnalogepWarning, CheckpointError

# Keys (a dotted key, or a section ending in ".") fixed at a run's first step, with why.
FIXED_ON_RESUME = {
    "model.": "the checkpoint's weights belong to the model they were trained as",
    "train.seed": "it seeded the run's noise, times and batches, whose stream the checkpoint continues",
    "train.dataset": "it is what the run has learnt so far",
    "train.objective": "it is what the run has learnt so far",
    "train.optimizer.name": "the checkpoint holds that optimizer's state",
    "devices.": "the checkpoint holds the devices' draws and programmed state",
}


# Keys whose change alters no step's numbers: a resumed run with the new value is the
# uninterrupted run with it (how long, on how many threads, what is logged and kept, how
# ngspice is reached, how samples are drawn at the end and what energy accounting assumes).
NEUTRAL_ON_RESUME = (
    "name", "train.steps", "train.threads", "train.checkpoint_every", "train.log_every", "train.max_bad_steps",
    "train.max_skipped_share", "circuit.timeout", "circuit.scheduler", "circuit.connect_timeout", "generate.",
    "dsm.langevin_step", "dsm.steps_per_level", "dsm.denoise", "dsm.sampler", "dsm.ode_steps", "dsm.substeps",
    "dsm.final_sigma", "physics.",
)


def config_changes(old: Spec, new: Spec) -> dict[str, tuple]:
    """Config keys (dotted) whose value differs, with (old, new)."""

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    a, b = flat(to_dict(old)), flat(to_dict(new))
    return {k: (a.get(k), b.get(k)) for k in b if a.get(k) != b.get(k)}


def _matches(key: str, pattern: str) -> bool:
    return key == pattern or (pattern.endswith(".") and key.startswith(pattern))


def _fixed(key: str) -> str | None:
    return next((why for k, why in FIXED_ON_RESUME.items() if _matches(key, k)), None)


def resume_changes(checkpoint: Spec, spec: Spec, out: Path, step: int) -> dict[str, list]:
    """The changes `spec` makes to the run checkpointed in `out` at `step` that alter how
    steps are computed, as the run log records them ({key: [old, new]}); every change is
    reported with an AnalogepWarning. CheckpointError for a change of a key fixed at the
    run's start (nothing is written)."""
    changes = config_changes(checkpoint, spec)
    for key, (was, now) in changes.items():
        why = _fixed(key)
        if why is not None:
            raise CheckpointError(
                f"{out}: {key} cannot change on resume (the run has {was}, {now} was asked): {why}; "
                f"train into another folder to use {now}"
            )
    logged = {}
    for key, (was, now) in changes.items():
        if any(_matches(key, k) for k in NEUTRAL_ON_RESUME):
            warnings.warn(AnalogepWarning(f"{out}: {key} changed from {was} to {now} on resume (config.yaml rewritten)"))
            continue
        warnings.warn(AnalogepWarning(
            f"{out}: {key} changed from {was} to {now} on resume: steps {step + 1} on use {now} "
            f"(config.yaml rewritten; metrics.jsonl records the change at step {step + 1})"
        ))
        logged[key] = [was, now]
    return logged
