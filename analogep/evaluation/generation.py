"""The FlowEqProp paper's generation claims, measured (Gower 2026, section 4 and discussion).

1. Extended generation: the velocity field is time independent, so integrating past the
   training horizon t = 1 keeps descending the learned energy; the paper sees sharper
   samples up to a sweet spot and over-sharpening well beyond it. `t1_sweep` puts every
   `evaluate` figure (quality.py) against t1, for the bare energy gradient and for the
   spring read-out (the paper's footnote 3: "comparable generation quality"), each over
   several noise seeds. One Euler trajectory per (mode, seed) to the largest t1 gives
   every smaller t1 on the way (flow_sampling.generate_snapshots: the same samples as a
   run to that t1, same noise, same warm starts).
2. Number of steps: at a fixed t1, the Euler step dt = t1 / steps; `steps_sweep` puts the
   same figures against the number of steps (the cost of generation in clamped equilibria).

The sweet spot of each figure is where it is best: the lowest Fréchet distance and
out-of-range share, the highest confidence and class coverage, and the nearest-train
distance closest to the held-out real digits' (below it the samples sit closer to
training images than real digits do: copying; above it, off the data).
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np

from analogep.backends.factory import make_backend
from analogep.config.spec import Spec
from analogep.evaluation.quality import evaluate_samples
from analogep.model.energy import Params
from analogep.model.factory import build_energy
from analogep.objectives.flow_sampling import generate, generate_snapshots
from analogep.objectives.flow_time import TimeCode, time_condition

FIGURES = ("confidence", "classes_covered", "frechet", "nearest_train_distance", "outside_range")
# How each figure's sweet spot is chosen (module docstring).
BEST = {"confidence": "max", "classes_covered": "max", "frechet": "min", "nearest_train_distance": "reference",
        "outside_range": "min"}
MODES = ("energy", "spring")


def _figures(samples: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    """The evaluate figures of a batch of samples, and the held-out reals' figures."""
    report = evaluate_samples(samples).to_dict()
    return {f: float(report[f]) for f in FIGURES}, {f: float(report["reference"][f]) for f in FIGURES}


def _summary(per_seed: list[list[dict[str, float]]]) -> dict[str, dict[str, list[float]]]:
    """Per figure, the mean and standard deviation over seeds at each grid point
    (per_seed[s][k]: seed s, grid point k)."""
    out = {}
    for f in FIGURES:
        values = np.array([[point[f] for point in seed] for seed in per_seed])  # (seeds, grid)
        out[f] = {"mean": values.mean(axis=0).tolist(), "std": values.std(axis=0, ddof=1 if len(values) > 1 else 0).tolist(),
                  "values": values.tolist()}
    return out


def figures_over_seeds(
    seeds: list[int], draw: Callable[[int], Iterable[np.ndarray]]
) -> tuple[dict[str, dict[str, list[float]]], dict[str, float]]:
    """The evaluate figures of the sample sets `draw(seed)` gives (one per grid point, in
    order) for each seed: their mean and spread over the seeds (`_summary`), and the
    held-out reals' figures."""
    per_seed, reference = [], {}
    for seed in seeds:
        row = []
        for x in draw(seed):
            figs, reference = _figures(x)
            row.append(figs)
        per_seed.append(row)
    return _summary(per_seed), reference


def figures_by_mode(
    modes: Iterable[str], grid: list, seeds: list[int], draw_for: Callable[[str], Callable[[int], Iterable[np.ndarray]]]
) -> tuple[dict[str, dict], dict[str, float]]:
    """For each read-out mode, the figures over seeds of `draw_for(mode)` (figures_over_seeds)
    and their sweet spots on `grid`; and the held-out reals' figures."""
    out: dict[str, dict] = {}
    reference: dict[str, float] = {}
    for mode in modes:
        figures, reference = figures_over_seeds(seeds, draw_for(mode))
        out[mode] = {"figures": figures, "sweet_spot": sweet_spots(list(grid), figures, reference)}
    return out, reference


def sweet_spots(grid: list[float], figures: dict, reference: dict[str, float]) -> dict[str, dict]:
    """Per figure, the grid point where its mean over seeds is best (BEST), with the value."""
    spots = {}
    for f in FIGURES:
        mean = np.asarray(figures[f]["mean"])
        rule = BEST[f]
        k = int(np.argmax(mean) if rule == "max" else np.argmin(np.abs(mean - reference[f]) if rule == "reference" else mean))
        spots[f] = {"at": grid[k], "mean": float(mean[k]), "std": float(figures[f]["std"][k]), "rule": rule}
    return spots


def _programmed(spec: Spec, params: Params):
    model = build_energy(spec.model)
    backend = make_backend(spec, model, "numpy")
    backend.program(params)
    return model, backend


def _time(spec: Spec, backend):
    """The Euler sampler's time input for a time-dependent energy (objectives/flow_time.py)."""
    return time_condition(TimeCode.from_train(spec.train), backend)


def t1_sweep(
    spec: Spec,
    params: Params,
    *,
    t1_grid: list[float],
    seeds: list[int],
    n: int,
    dt: float,
    modes: tuple[str, ...] = MODES,
    say: Callable[[str], None] = lambda _: None,
) -> dict:
    """Every evaluate figure against the end time t1 (Euler steps of dt), per read-out mode,
    mean and spread over the noise seeds, and each figure's sweet spot."""
    model, backend = _programmed(spec, params)
    steps = [max(1, int(round(t / dt))) for t in t1_grid]
    result: dict = {"grid": list(t1_grid), "steps": steps, "dt": dt, "n": n, "seeds": list(seeds), "modes": {}}

    def draw_for(mode: str) -> Callable[[int], list[np.ndarray]]:
        def draw(seed: int) -> list[np.ndarray]:
            say(f"t1 sweep: {mode} mode, seed {seed}, {max(steps)} Euler steps of {n} samples")
            shots = generate_snapshots(model, backend, spec.gradep, n=n, steps=steps, dt=dt, mode=mode, seed=seed,
                                       condition=_time(spec, backend))
            return [shots[k] for k in steps]
        return draw

    result["modes"], result["reference"] = figures_by_mode(modes, t1_grid, seeds, draw_for)
    return result


def steps_sweep(
    spec: Spec,
    params: Params,
    *,
    steps_grid: list[int],
    seeds: list[int],
    n: int,
    t1: float,
    mode: str = "energy",
    say: Callable[[str], None] = lambda _: None,
) -> dict:
    """Every evaluate figure against the number of Euler steps over [0, t1] (dt = t1 /
    steps), mean and spread over the noise seeds."""
    model, backend = _programmed(spec, params)

    def draw(seed: int) -> Iterator[np.ndarray]:
        for k in steps_grid:
            say(f"steps sweep: {k} Euler steps to t1 = {t1:g}, seed {seed}")
            yield generate(model, backend, spec.gradep, n=n, t1=t1, dt=t1 / k, mode=mode, seed=seed,
                           condition=_time(spec, backend))

    figures, reference = figures_over_seeds(seeds, draw)
    return {"grid": list(steps_grid), "t1": t1, "mode": mode, "n": n, "seeds": list(seeds), "figures": figures,
            "reference": reference, "sweet_spot": sweet_spots(list(steps_grid), figures, reference)}
