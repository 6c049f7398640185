"""Study: does EP train when the devices write their own update (train.update: substrate,
issue 19)? Digital rule against substrate mode at equal training points, and the
substrate's sensitivity to BL, beta, the pulse step, per point against groups, and the way
the phases' difference is formed (docs/results/substrate.md). Not a test.

Every arm trains `--config` (default examples/tiny.yaml) for `--steps` steps of its batch on
devices (default: ideal devices with 8-bit levels, |W| = 1 spanning the window), samples
`--n` digits on the devices it trained and judges them as `evaluate` does; the record's
diagnostics (update cosine, norm ratio, saturated probabilities, devices at the window
edge, coincidences per device per point) are averaged over the run. Runs go to OUT/<arm>;
the table is printed and written to OUT/substrate.json; `--plot` draws the loss curves.

    .venv/bin/python studies/substrate_study.py --steps 80 --seeds 0 1 2 --out runs/substrate --plot docs/figures/substrate_loss.png
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

FINITE = {"preset": "ideal", "bits": 8, "w_max": 1.0}
SUB = {"update": "substrate", "substrate": {"group_size": 8, "lr": 0.03, "bl": 31, "difference": "held"}}
DIGITAL = {"update": "digital"}

# arm name -> (train changes, devices, gradep changes); seeds apply to the first two arms only
ARMS: dict[str, tuple[dict, dict, dict]] = {
    "digital (Adam, accumulate)": (DIGITAL, FINITE, {}),
    "substrate (held, group 8)": (SUB, FINITE, {}),
    "substrate two trains": ({**SUB, "substrate": {**SUB["substrate"], "difference": "two_trains"}}, FINITE, {}),
    "substrate two trains beta x4": ({**SUB, "substrate": {**SUB["substrate"], "difference": "two_trains"}}, FINITE,
                                     {"beta": 5e-3}),
    "substrate per point": ({**SUB, "substrate": {**SUB["substrate"], "group_size": 1}}, FINITE, {}),
    "substrate BL 1": ({**SUB, "substrate": {**SUB["substrate"], "bl": 1}}, FINITE, {}),
    "substrate BL 7": ({**SUB, "substrate": {**SUB["substrate"], "bl": 7}}, FINITE, {}),
    "substrate BL 127": ({**SUB, "substrate": {**SUB["substrate"], "bl": 127}}, FINITE, {}),
    "substrate beta x4": (SUB, FINITE, {"beta": 5e-3}),
    "substrate 6 bits": (SUB, {**FINITE, "bits": 6}, {}),
    "substrate 10 bits": (SUB, {**FINITE, "bits": 10}, {}),
    "substrate lr x0.3": ({**SUB, "substrate": {**SUB["substrate"], "lr": 0.01}}, FINITE, {}),
    "digital rram": (DIGITAL, {"preset": "rram", "wire_resistance": 0.0}, {}),
    "substrate rram": (SUB, {"preset": "rram", "wire_resistance": 0.0}, {}),
    "digital pcm": (DIGITAL, {"preset": "pcm", "wire_resistance": 0.0}, {}),
    "substrate pcm": (SUB, {"preset": "pcm", "wire_resistance": 0.0}, {}),
}
SEEDED = ("digital (Adam, accumulate)", "substrate (held, group 8)")
DIAGNOSTICS = ("update_cos", "update_cos_expected", "update_ratio", "p_sat", "at_gmax", "coincidences_per_device_point")


def run_arm(config: str, steps: int, n: int, out: str, name: str, seed: int) -> dict:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    warnings.simplefilter("ignore")
    from analogep import api
    from analogep.config import load_spec
    from analogep.training.checkpoint import load_checkpoint

    train, devices, gradep = ARMS[name]
    spec = load_spec(config)
    train = {**train, "steps": steps, "seed": seed}
    if "substrate" in train:
        train["substrate"] = {**train["substrate"], "seed": seed}
    spec = spec.replace(model={"seed": seed}, train=train, devices={**devices, "seed": seed},
                        **({"gradep": gradep} if gradep else {}))
    folder = Path(out) / f"{name.replace(' ', '_').replace('(', '').replace(')', '').replace(',', '')}-s{seed}"
    result = api.train(spec, folder, resume="auto")
    ckpt = load_checkpoint(folder / "checkpoint.npz")
    q = api.evaluate(api.sample(spec, ckpt.params, n=n, device_state=ckpt.devices)).to_dict()
    recs = result.records
    row = {"arm": name, "seed": seed, "loss_curve": [r["loss"] for r in recs],
           "final_loss": float(np.mean([r["loss"] for r in recs[-5:]])),
           "frechet": q["frechet"], "classes": q["classes_covered"], "confidence": q["confidence"],
           "pulses_total": recs[-1].get("pulses_total")}
    for k in DIAGNOSTICS:
        vals = [r[k] for r in recs if k in r]
        if vals:
            row[k] = float(np.mean(vals))
            row[k + "_last10"] = float(np.mean(vals[-10:]))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="examples/tiny.yaml")
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--n", type=int, default=500, help="samples judged per arm")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="/tmp/analogep-substrate")
    parser.add_argument("--only", nargs="*", help="arms to run (names of ARMS)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--plot", help="loss-curve figure")
    args = parser.parse_args()
    jobs = []
    for name in args.only or ARMS:
        for seed in (args.seeds if name in SEEDED else args.seeds[:1]):
            jobs.append((args.config, args.steps, args.n, args.out, name, seed))
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(run_arm, *zip(*jobs)))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "substrate.json").write_text(json.dumps(rows, indent=1))
    print(f"{'arm':32s} {'seeds':>5s} {'loss':>13s} {'frechet':>15s} {'classes':>7s} {'cos':>6s} {'ratio':>6s} "
          f"{'p_sat':>6s} {'edge':>6s} {'coinc/dev/pt':>12s}")
    for name in dict.fromkeys(r["arm"] for r in rows):
        g = [r for r in rows if r["arm"] == name]
        m = lambda k: (np.mean([r[k] for r in g]), np.std([r[k] for r in g])) if k in g[0] else (np.nan, np.nan)  # noqa: E731
        print(f"{name:32s} {len(g):5d} {m('final_loss')[0]:6.3f}±{m('final_loss')[1]:5.3f} "
              f"{m('frechet')[0]:7.2f}±{m('frechet')[1]:6.2f} {m('classes')[0]:7.1f} {m('update_cos')[0]:6.3f} "
              f"{m('update_ratio')[0]:6.3f} {m('p_sat')[0]:6.3f} {m('at_gmax')[0]:6.3f} "
              f"{m('coincidences_per_device_point')[0]:12.3f}")
    if args.plot:
        plot(rows, args.plot, args)


def plot(rows: list[dict], path: str, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name in dict.fromkeys(r["arm"] for r in rows):
        if name not in SEEDED and name not in ("substrate two trains", "substrate per point"):
            continue
        curves = np.array([r["loss_curve"] for r in rows if r["arm"] == name])
        mean = curves.mean(axis=0)
        steps = np.arange(1, mean.size + 1)
        line, = ax.plot(steps, mean, label=f"{name} ({curves.shape[0]} seed{'s' if curves.shape[0] > 1 else ''})")
        if curves.shape[0] > 1:
            ax.fill_between(steps, curves.min(axis=0), curves.max(axis=0), color=line.get_color(), alpha=0.2)
    ax.set_yscale("log")
    ax.set_xlabel("training step (batch of the config)")
    ax.set_ylabel("flow-matching loss (mean (v - u)^2)")
    ax.set_title(f"{Path(args.config).name}: digital rule vs on-substrate update (8-bit ideal devices)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
