"""model.yaml: malformed configs are refused at the boundary, through the real command line.

Every refusal must be exit code 2 and exactly one line on stderr that names the key path,
with no traceback and no output folder created (spec.py's contract, the scikit-learn way).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from analogep.cli.app import main
from analogep.config import (
    ConfigError,
    Spec,
    dump_spec,
    from_dict,
    load_spec,
    to_dict,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# (id, YAML text, what the one error line must contain: the key path, and a hint of why)
MALFORMED = [
    ("unknown-top-key", "nmae: x\n", ["nmae: unknown key", "allowed keys: name, model"]),
    ("unknown-model-key", "model:\n  size: [64, 8]\n", ["model.size: unknown key", "sizes"]),
    ("unknown-optimizer-key", "train:\n  optimizer:\n    momentum: 0.9\n", ["train.optimizer.momentum: unknown key"]),
    ("non-string-key", "1: 2\n", ["1: unknown key"]),
    ("sizes-not-a-list", "model:\n  sizes: 64\n", ["model.sizes: expected a list"]),
    ("sizes-item-string", "model:\n  sizes: [64, abc]\n", ["model.sizes[1]: expected an integer"]),
    ("sizes-item-float", "model:\n  sizes: [64, 8.0]\n", ["model.sizes[1]: expected an integer"]),
    ("size-zero", "model:\n  sizes: [64, 0, 8]\n", ["model.sizes[1]: 0 is not allowed", ">= 1"]),
    ("sizes-empty", "model:\n  sizes: []\n", ["model.sizes: expected at least 2 values"]),
    ("sizes-one-layer", "model:\n  sizes: [64]\n", ["model.sizes: expected at least 2 values"]),
    ("first-size-not-64", "model:\n  sizes: [32, 8]\n", ["model.sizes[0]", "must be 64"]),
    ("negative-lambda", "gradep:\n  lambda: -1\n", ["gradep.lambda: -1.0 is not allowed", "> 0"]),
    ("negative-dt", "generate:\n  dt: -0.01\n", ["generate.dt: -0.01 is not allowed", "> 0"]),
    ("negative-step", "relax:\n  step: -0.1\n", ["relax.step: -0.1 is not allowed"]),
    (
        "beta-euler-unstable",
        "gradep:\n  beta: 0.005\nrelax:\n  solver: euler\n",
        ["gradep.beta", "euler relaxation unstable", "< 2"],
    ),
    (
        "beta-unbounded",
        "gradep:\n  beta: 0.02\nrelax:\n  solver: fast\n",
        ["gradep.beta", "-beta phase", "unbounded", "beta < 0.0178"],
    ),
    (
        "beta-below-float32-resolution",
        "gradep:\n  beta: 1.0e-12\n",
        ["gradep.beta: 1e-12 is below the resolution of float32", "beta >= 2.12e-05"],
    ),
    ("phases-4", "gradep:\n  phases: 4\n", ["gradep.phases: 4 is not allowed", "one of 2, 3"]),
    ("phases-bool", "gradep:\n  phases: true\n", ["gradep.phases"]),
    ("bad-solver", "relax:\n  solver: rk4\n", ["relax.solver: 'rk4' is not allowed", "'euler', 'fast'"]),
    ("bad-yaml-bracket", "model:\n  sizes: [64, 8\n", ["not valid YAML", "line 3"]),
    ("bad-yaml-indent", "model:\n sizes: [64, 8]\n  seed: 1\n", ["not valid YAML", "line 3"]),
    ("top-level-list", "- 1\n- 2\n", ["config: expected a mapping"]),
    ("top-level-scalar", "hello\n", ["config: expected a mapping"]),
    ("section-scalar", "model: 5\n", ["model: expected a mapping"]),
    ("gmin-ge-gmax", "circuit:\n  gmin: 2.0e-3\n  gmax: 1.0e-3\n", ["circuit.gmin", "circuit.gmax"]),
    ("bool-for-int", "train:\n  steps: true\n", ["train.steps: expected an integer, got bool"]),
    ("float-for-int", "train:\n  steps: 10.5\n", ["train.steps: expected an integer"]),
    ("string-for-int", "train:\n  steps: '10'\n", ["train.steps: expected an integer"]),
    ("zero-steps", "train:\n  steps: 0\n", ["train.steps: 0 is not allowed"]),
    ("betas-length", "train:\n  optimizer:\n    betas: [0.9]\n", ["train.optimizer.betas: expected 2 values"]),
    ("betas-range", "train:\n  optimizer:\n    betas: [0.9, 1.0]\n", ["train.optimizer.betas[1]: 1.0 is not allowed"]),
    ("lr-string", "train:\n  optimizer:\n    lr: fast\n", ["train.optimizer.lr: expected a number"]),
    ("lr-zero", "train:\n  optimizer:\n    lr: 0\n", ["train.optimizer.lr: 0.0 is not allowed"]),
    ("tol-nan", "relax:\n  tol: .nan\n", ["relax.tol: expected a finite number"]),
    ("beta-inf", "gradep:\n  beta: .inf\n", ["gradep.beta: expected a finite number"]),
    ("bad-dtype", "model:\n  dtype: float16\n", ["model.dtype: 'float16' is not allowed"]),
    ("bad-activation", "model:\n  activation: relu\n", ["model.activation: 'relu' is not allowed"]),
    ("bool-as-string", "train:\n  ot_coupling: yes please\n", ["train.ot_coupling: expected true or false"]),
    ("empty-name", "name: ''\n", ["name: expected a non-empty string"]),
    ("negative-seed", "model:\n  seed: -1\n", ["model.seed: -1 is not allowed"]),
    ("reltol-one", "circuit:\n  reltol: 1\n", ["circuit.reltol: 1.0 is not allowed", "< 1"]),
    ("bad-dataset", "train:\n  dataset: mnist\n", ["train.dataset: 'mnist' is not allowed"]),
    ("max-dropped-above-one", "train:\n  max_dropped: 1.5\n", ["train.max_dropped: 1.5 is not allowed", "<= 1"]),
    ("bad-generate-mode", "generate:\n  mode: langevin\n", ["generate.mode: 'langevin' is not allowed"]),
]


def run_train(config: Path, out: Path):
    return CliRunner().invoke(main, ["train", str(config), "--out", str(out), "--steps", "1", "--no-samples"])


@pytest.mark.parametrize("text, expected", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_config_is_refused_with_one_line_naming_the_key(tmp_path, text, expected):
    config = tmp_path / "model.yaml"
    config.write_text(text)
    out = tmp_path / "run"
    result = run_train(config, out)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    line = lines[0]
    assert line.startswith(f"error: {config}: ")
    for part in expected:
        assert part in line, line
    assert "Traceback" not in result.output
    assert not out.exists()


def test_there_are_at_least_twenty_malformed_cases():
    assert len(MALFORMED) >= 20
    assert len({m[0] for m in MALFORMED}) == len(MALFORMED)


def test_a_list_type_error_reads_as_english(tmp_path):
    config = tmp_path / "model.yaml"
    config.write_text("model:\n  sizes: 64\n")
    result = run_train(config, tmp_path / "run")
    assert "expected a list of integers" in result.stderr


# A small model, so that a regression (the config accepted) costs one quick step, not a paper step.
DUPLICATE_KEY = "name: dup\nmodel:\n  sizes: [64, 4]\n  seed: 1\n  seed: 2\ntrain:\n  batch: 8\n"


def test_duplicate_key_is_refused(tmp_path):
    """YAML 1.2 requires unique mapping keys; PyYAML's safe_load silently keeps the last one,
    so `seed: 1` above is ignored without a word. A typo'd copy-paste must be an error."""
    config = tmp_path / "model.yaml"
    config.write_text(DUPLICATE_KEY)
    with pytest.raises(ConfigError, match=r"duplicate.*seed"):
        load_spec(config)
    out = tmp_path / "run"
    result = run_train(config, out)
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and "seed" in result.stderr
    assert not out.exists()


def test_the_installed_command_exits_2_on_a_bad_config(tmp_path):
    """The real console script, not only click's test runner."""
    config = tmp_path / "model.yaml"
    config.write_text("gradep:\n  lambda: -1\n")
    exe = Path(sys.executable).with_name("analogep")
    assert exe.is_file(), f"console script not installed beside {sys.executable}"
    out = tmp_path / "run"
    proc = subprocess.run([str(exe), "train", str(config), "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [f"error: {config}: gradep.lambda: -1.0 is not allowed; must be > 0"]
    assert not out.exists()


def test_missing_config_file_is_one_line(tmp_path):
    result = run_train(tmp_path / "nope.yaml", tmp_path / "run")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"error: {tmp_path / 'nope.yaml'}: no such config file"]
    assert not (tmp_path / "run").exists()


# --- the default config --------------------------------------------------------------------------


def test_default_config_equals_examples_digits_yaml():
    default = load_spec(None)
    assert default == load_spec(EXAMPLES / "digits.yaml")
    # "every key is optional; a missing key takes the value shown here"
    assert default == Spec() == from_dict({}) == from_dict(None)
    assert default.model.sizes == (64, 128, 128) and default.gradep.lam == 15.0
    assert default.gradep.beta == 1.25e-3 and default.train.batch == 1797


def test_euler_example_is_the_default_with_the_papers_relaxation():
    euler = load_spec(EXAMPLES / "digits-euler.yaml")
    assert euler.relax.solver == "euler" and euler.relax.step == 0.1 and euler.relax.tol == 0.0
    assert euler.relax.free_steps == euler.relax.nudge_steps == 300
    # The paper trusts fixed-step results: every trust check is off.
    assert euler.train.max_residual >= 1e9 and euler.train.max_asymmetry == 1.0 and euler.train.max_dropped == 1.0
    default = load_spec(None)
    trust = {k: getattr(default.train, k) for k in ("max_residual", "max_asymmetry", "max_dropped")}
    assert euler.replace(name=default.name, relax=to_dict(default.relax), train=trust) == default


def test_packaged_config_is_byte_identical_to_the_example():
    packaged = ROOT / "analogep" / "config" / "digits.yaml"
    assert packaged.read_bytes() == (EXAMPLES / "digits.yaml").read_bytes()
    from importlib import resources

    assert resources.files("analogep.config").joinpath("digits.yaml").read_bytes() == packaged.read_bytes()


def test_examples_set_every_key_of_the_schema():
    """digits.yaml documents every key: its keys are exactly the schema's."""
    written = yaml.safe_load((EXAMPLES / "digits.yaml").read_text())
    assert written == to_dict(Spec())


@pytest.mark.parametrize(
    "spec_source",
    ["default", "tiny", "modified"],
)
def test_resolved_config_dumps_and_reloads_to_an_equal_spec(spec_source, tmp_path):
    if spec_source == "default":
        spec = load_spec(None)
    elif spec_source == "tiny":
        spec = load_spec(EXAMPLES / "tiny.yaml")
    else:
        spec = Spec().replace(
            model={"sizes": [64, 10, 7, 5], "dtype": "float64", "activation": "silu"},
            gradep={"lambda": 10.0, "phases": 2, "beta": 1e-4},
            train={"ot_coupling": False, "optimizer": {"name": "sgd", "lr": 0.5, "betas": [0.5, 0.5], "eps": 1e-6}},
            circuit={"clip": True, "runner": "subprocess"},
        )
        assert spec.gradep.lam == 10.0 and spec.train.optimizer.name == "sgd"
    text = dump_spec(spec)
    assert "lambda:" in text and "lam:" not in text
    assert from_dict(yaml.safe_load(text)) == spec
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert load_spec(path) == spec
    assert dump_spec(load_spec(path)) == text


def test_yaml_1_1_exponent_without_dot_is_read_as_a_number(tmp_path):
    config = tmp_path / "model.yaml"
    config.write_text("gradep:\n  beta: 1e-3\ntrain:\n  optimizer:\n    lr: 2e-4\n")
    spec = load_spec(config)
    assert spec.gradep.beta == 1e-3 and spec.train.optimizer.lr == 2e-4


def test_replace_revalidates():
    with pytest.raises(ConfigError, match="gradep.beta"):
        Spec().replace(gradep={"beta": 0.02}, relax={"solver": "fast"})
    with pytest.raises(ConfigError, match="train.bogus: unknown key"):
        Spec().replace(train={"bogus": 1})
    assert Spec().replace(train={"steps": 5}).train.steps == 5
    assert Spec().replace(train={"steps": 5}).train.batch == 1797  # other keys kept


def test_a_large_spring_is_judged_by_the_objective_that_samples():
    # alpha 6 with the default dsm section: annealed Langevin's drift step 0.5 * read-out is
    # not below 2/alpha = 0.33, so a dsm run is refused; flow matching never reads the dsm
    # section (its Euler step dt*alpha = 0.06 < 2), so the same gradep trains.
    gradep = {"alpha": 6.0, "beta": 1e-3}
    assert from_dict({"gradep": gradep}).gradep.alpha == 6.0
    with pytest.raises(ConfigError, match=r"^dsm: langevin_step = 0.01 makes the drift step 0.5 \* read-out"):
        from_dict({"gradep": gradep, "train": {"objective": "dsm"}})


def test_a_large_spring_trains_flow_matching_through_the_command_line(tmp_path):
    cfg = tmp_path / "spring.yaml"
    cfg.write_text("model:\n  sizes: [64, 4]\ngradep:\n  alpha: 6.0\n  beta: 1.0e-3\ntrain:\n  steps: 1\n  batch: 4\n")
    result = CliRunner().invoke(main, ["train", str(cfg), "--out", str(tmp_path / "run"), "--no-samples"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "checkpoint.npz").exists()
