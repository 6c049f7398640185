"""The devices study (docs/results/devices.md): will EP learn on these devices? Not a test.

On a config (default examples/tiny.yaml) and a step budget, for training seeds x device
seeds and each preset, the arms
  (a) ideal training, ideal circuit;
  (b) ideal training deployed on the devices (scaling + fault-aware mapping);
  (c) hardware-aware ideal training (train.weight_noise / weight_drop) then deployed;
  (d) deployed, then fine-tuned in situ for --finetune steps;
  (e) in-situ training from scratch for the same budget;
each judged as `evaluate` does (Frechet distance to held-out digits). Also the mapping
ablation (arm (b) with and without scaling and fault-aware mapping), PCM quality against
time since programming, and the write pulses per device.

Runs go to OUT/<arm>/...; finished runs are reused (a rerun picks up where it stopped).
Everything measured goes to OUT/study.json; --plot writes the figure.

    .venv/bin/python studies/devices_study.py [--steps 200] [--seeds 0 1 2] [--device-seeds 0 1 2]
        [--presets rram pcm rram-stress] [--parts ...] [--out DIR] [--plot PNG]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from analogep import api
from analogep.config import load_spec
from analogep.devices.crossbar import Devices
from analogep.model.factory import build_energy
from analogep.training.checkpoint import load_checkpoint

# The mapping ablation of arm (b): the preset with scaling and fault-aware mapping switched.
ABLATION = {
    "neither": {"scale_fraction": None, "fault_aware": False},
    "fault-aware only": {"scale_fraction": None},
    "scaling only": {"fault_aware": False},
    "both": {},
}
PCM_TIMES = {"0": 0.0, "1 h": 3600.0, "1 day": 86400.0, "30 days": 30 * 86400.0, "1 year": 365 * 86400.0}
HW_AWARE = {"weight_noise": 0.03, "weight_drop": 0.01}  # train.*: arm (c)


def seeded(spec, seed: int, steps: int):
    return spec.replace(model={"seed": seed}, train={"seed": seed, "steps": steps, "checkpoint_every": steps})


def devices(spec, preset: str, dseed: int, **keys):
    # The SPICE-only line resistance is left out: the study runs on numpy.
    return spec.replace(devices={"preset": preset, "seed": dseed, "wire_resistance": 0.0, **keys})


def run(spec, out: Path, init=None):
    """Train into `out` (or reuse the finished run there); its checkpoint."""
    if not (out / "checkpoint.npz").is_file() or load_checkpoint(out).step < spec.train.steps:
        api.train(spec, out, resume="auto", init_params=init)
    return load_checkpoint(out)


def frechet(spec, params, n: int, state=None, time_since: float | None = None) -> float:
    if time_since is not None:
        spec = spec.replace(devices={"time_since_programming": time_since})
    x = api.sample(spec, params, n=n, device_state=state)
    return float(api.evaluate(x).frechet)


def refreshed(ckpt) -> tuple[dict, dict]:
    """An in-situ run's device state after one refresh of every pair (Devices.refresh_all)."""
    d = Devices(ckpt.spec, build_energy(ckpt.spec.model))
    d.load_state_dict(*ckpt.devices, where="study")
    d.refresh_all()
    return d.state_dict()


def pulses_per_device(spec, ckpt) -> dict:
    """Write pulses per device of an in-situ run (mean and max over devices)."""
    model = build_energy(spec.model)
    d = Devices(ckpt.spec, model)
    d.load_state_dict(*ckpt.devices, where="study")
    n_dev = sum(2 * d.n_copies * np.size(ckpt.params[k]) for k in d.couplings)
    return {"total": d.total_pulses, "per_device": d.total_pulses / n_dev}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="examples/tiny.yaml")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--finetune", type=int, default=50)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--device-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--presets", nargs="*", default=["rram", "pcm", "rram-stress"])
    p.add_argument("--parts", nargs="+", default=["a", "b", "ablation", "c", "d", "e", "pcm-time"])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--out", default="runs/devices_study")
    p.add_argument("--paired", action="store_true",
                   help="one device seed per training seed (seed s on device seed s) instead of every pair")
    p.add_argument("--tag", default="", help="write OUT/study<-tag>.json (parallel processes: one tag each)")
    p.add_argument("--plot")
    p.add_argument("--time-arms", nargs="+", default=["b", "c", "d", "e"], help="arms of the PCM time series")
    p.add_argument("--merge", action="store_true", help="only merge OUT/study*.json into OUT/study.json and plot")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.merge:
        def merge(into: dict, new: dict) -> dict:
            for k, v in new.items():
                into[k] = merge(into[k], v) if isinstance(v, dict) and isinstance(into.get(k), dict) else v
            return into

        table: dict = {}
        for part in sorted(out.glob("study-*.json")):
            merge(table, json.loads(part.read_text()))
        (out / "study.json").write_text(json.dumps(table, indent=1))
        if args.plot:
            plot(table, args.plot)
        return
    table_path = out / (f"study-{args.tag}.json" if args.tag else "study.json")
    table = json.loads(table_path.read_text()) if table_path.is_file() else {}
    table.update({"config": args.config, "steps": args.steps, "finetune": args.finetune, "n": args.n,
                  "seeds": args.seeds, "device_seeds": args.device_seeds, "paired": args.paired})

    def pairs():
        return [(s, s) for s in args.seeds] if args.paired else [(s, d) for s in args.seeds for d in args.device_seeds]
    base = load_spec(args.config)

    def save() -> None:
        table_path.write_text(json.dumps(table, indent=1))

    def put(key: str, arm: str, value) -> None:
        table.setdefault(key, {}).setdefault(arm, {})
        table[key][arm] = value
        save()

    t0 = time.time()
    ideal = {s: run(seeded(base, s, args.steps), out / "a" / f"s{s}") for s in args.seeds}
    if "a" in args.parts:
        put("ideal", "a", [frechet(ideal[s].spec, ideal[s].params, args.n) for s in args.seeds])
        print(f"[{time.time() - t0:.0f}s] (a) ideal {table['ideal']['a']}", flush=True)
    hw = {}
    if "c" in args.parts:
        hw = {s: run(seeded(base, s, args.steps).replace(train=HW_AWARE), out / "c" / f"s{s}") for s in args.seeds}
    if "ablation" in args.parts:
        for name, keys in ABLATION.items():
            values = [frechet(devices(ideal[s].spec, "rram", ds, **keys), ideal[s].params, args.n) for s, ds in pairs()]
            put("ablation", name, values)
            print(f"[{time.time() - t0:.0f}s] ablation rram (b) {name}: {np.mean(values):.3g} +- {np.std(values):.2g}",
                  flush=True)
    for preset in args.presets:
        cell = table.setdefault(preset, {})
        for arm in ("b", "e", "d", "c"):
            if arm not in args.parts:
                continue
            values, pulses = [], []
            for s, ds in pairs():
                if True:
                    if arm == "b":
                        spec = devices(ideal[s].spec, preset, ds)
                        values.append(frechet(spec, ideal[s].params, args.n))
                    elif arm == "c":
                        spec = devices(hw[s].spec, preset, ds)
                        values.append(frechet(spec, hw[s].params, args.n))
                    else:
                        steps = args.finetune if arm == "d" else args.steps
                        spec = devices(seeded(base, s, steps), preset, ds)
                        ck = run(spec, out / arm / preset / f"s{s}d{ds}", init=ideal[s].params if arm == "d" else None)
                        values.append(frechet(ck.spec, ck.params, args.n, ck.devices))
                        pulses.append(pulses_per_device(spec, ck))
            cell[arm] = values
            if pulses:
                cell[f"{arm}_pulses"] = pulses
            save()
            print(f"[{time.time() - t0:.0f}s] {preset} ({arm}) {np.mean(values):.3g} +- {np.std(values):.2g}", flush=True)
    if "pcm-time" in args.parts:
        for label, t in PCM_TIMES.items():
            row = {}
            for arm in args.time_arms:
                values = []
                for s, ds in pairs():
                    if True:
                        if arm in "bc":
                            trained = ideal if arm == "b" else hw
                            values.append(frechet(devices(trained[s].spec, "pcm", ds), trained[s].params, args.n, None, t))
                        else:
                            ck = load_checkpoint(out / arm[0] / "pcm" / f"s{s}d{ds}")
                            state = refreshed(ck) if arm.endswith("refresh") else ck.devices
                            values.append(frechet(ck.spec, ck.params, args.n, state, t))
                row[arm] = values
            put("pcm_time", label, row)
            print(f"[{time.time() - t0:.0f}s] pcm at {label}: " +
                  ", ".join(f"({a}) {np.mean(v):.3g}" for a, v in row.items()), flush=True)
    if args.plot:
        plot(table, args.plot)


def plot(table: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    presets = [p for p in ("rram", "pcm", "rram-stress") if p in table]
    arms = [a for a in ("b", "c", "d", "e") if any(a in table[p] for p in presets)]
    labels = {"b": "(b) deployed", "c": "(c) hardware-aware, deployed", "d": "(d) deployed + in-situ fine-tune",
              "e": "(e) in situ", "e-refresh": "(e) in situ, pairs refreshed before use"}
    ncol = 2 if "pcm_time" in table else 1
    fig, axes = plt.subplots(1, ncol, figsize=(5.5 * ncol, 3.8), squeeze=False)
    ax = axes[0, 0]
    x = np.arange(len(presets))
    width = 0.8 / max(len(arms), 1)
    for k, arm in enumerate(arms):
        m = [np.mean(table[p].get(arm, [np.nan])) for p in presets]
        e = [np.std(table[p].get(arm, [np.nan])) for p in presets]
        ax.bar(x + (k - (len(arms) - 1) / 2) * width, m, width, yerr=e, label=labels[arm], capsize=2)
    ideal = table["ideal"]["a"]
    ax.axhline(np.mean(ideal), color="k", ls="--", lw=1, label="(a) ideal")
    ax.set_yscale("log")
    ax.set_xticks(x, presets)
    ax.set_ylabel("Frechet distance (log)")
    ax.set_title(f"{table['config']}, {table['steps']} steps; mean, std over seeds")
    ax.legend(fontsize=7)
    if ncol == 2:
        ax = axes[0, 1]
        times = list(table["pcm_time"])
        tx = np.arange(len(times))
        for arm in [a for a in ("b", "c", "d", "e", "e-refresh") if a in table["pcm_time"][times[0]]]:
            m = [np.mean(table["pcm_time"][t][arm]) for t in times]
            e = [np.std(table["pcm_time"][t][arm]) for t in times]
            ax.errorbar(tx, m, yerr=e, marker="o", capsize=2, label=labels[arm])
        ax.axhline(np.mean(ideal), color="k", ls="--", lw=1, label="(a) ideal")
        ax.set_xticks(tx, times)
        ax.set_yscale("log")
        ax.set_xlabel("time since programming (drift compensated)")
        ax.set_title("pcm over time")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
