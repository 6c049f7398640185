"""An objective owns its sampler settings: it declares the `analogep sample` options that
steer its sampler (each with the model.yaml key it sets), how it samples, its figure label
and its JSON summary, and the CLI asks it instead of branching on train.objective. A new
objective is one module plus one registry line, and the sample command follows it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analogep import registry
from analogep.config import Spec, load_spec, to_dict
from analogep.model.factory import build_energy
from analogep.training.checkpoint import Checkpoint, save_checkpoint
from analogep.training.optim import build_optimizer

from clirun import invoke

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny.yaml"


@pytest.mark.parametrize("name", registry.names("objective"))
def test_each_objective_declares_its_sampler_options_on_keys_model_yaml_has(name):
    cls = registry.resolve("objective", name)
    keys = to_dict(Spec())
    for option, key in cls.sampler_options.items():
        section, field = key.split(".")
        assert field in keys[section], f"{name}: --{option} sets {key}, which model.yaml does not have"
        assert "--" + option.replace("_", "-") in cls.sampling, f"{name}: its sampling text does not name --{option}"
    spec = load_spec(TINY).replace(train={"objective": name})
    objective = cls.from_spec(spec)
    assert objective.sampler_label(spec.generate) and objective.sampler_label(spec.generate, run=True)
    summary = objective.sampler_summary(spec.generate)
    assert summary and not set(summary) & {"n", "mode", "seconds", "png", "npy"}  # the command's own keys


def test_no_two_objectives_claim_the_same_option():
    claimed = [o for name in registry.names("objective") for o in registry.resolve("objective", name).sampler_options]
    assert len(claimed) == len(set(claimed))


TOY_OBJECTIVE = '''
"""A test objective: flow matching sampled with the config's time step, only its end time an option."""

from analogep.objectives.flow import FlowMatching


class FixedStepFlow(FlowMatching):
    name = "fixed"
    kind = "fixed-step flow-matching"
    sampler_options = {"t1": "generate.t1"}
    sampling = "Euler integration to --t1"
'''


def test_a_new_objective_steers_the_sample_command(tmp_path, monkeypatch):
    (tmp_path / "toy_objective.py").write_text(TOY_OBJECTIVE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.OBJECTIVES, "fixed", "toy_objective:FixedStepFlow")  # the one line
    spec = load_spec(TINY).replace(train={"objective": "fixed"})
    params = build_energy(spec.model).init_params(np.random.default_rng(0))
    ckpt = tmp_path / "checkpoint.npz"
    save_checkpoint(ckpt, Checkpoint(params, build_optimizer(spec.train.optimizer, params).state_dict(),
                                    np.random.default_rng(0).bit_generator.state, 0, spec))

    result = invoke("sample", ckpt, "--n", 4, "--t1", 0.2, "--json", "--out", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["t1"] == 0.2 and summary["dt"] == spec.generate.dt and summary["n"] == 4

    for args, expected in (
        (["--dt", "0.1"], "error: --dt: only for a flow-matching run (train.objective: flow); "
                          "this run is fixed, sampled by Euler integration to --t1"),
        (["--sampler", "ode", "--ode-steps", "3"], "error: --sampler, --ode-steps: only for a score-matching run "
                                                   "(train.objective: dsm); this run is fixed, sampled by Euler "
                                                   "integration to --t1"),
    ):
        png = tmp_path / "refused.png"
        result = invoke("sample", ckpt, "--n", 4, *args, "--out", png)
        assert result.exit_code == 2 and result.stderr.splitlines() == [expected], result.output
        assert not png.exists()
