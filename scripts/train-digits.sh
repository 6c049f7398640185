#!/usr/bin/env bash
# The main job: train the paper's digits model with the default config, then write
# samples and a quality report. Sets itself up first. Extra arguments go to `analogep train`
# (e.g. --steps 200). Re-running resumes an unfinished run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT="${OUT:-runs/digits}"
if [ -f "$OUT/checkpoint.npz" ]; then
  .venv/bin/analogep train --out "$OUT" --resume "$@"
else
  .venv/bin/analogep train --out "$OUT" "$@"
fi
.venv/bin/analogep evaluate "$OUT" --n 1000
echo "samples: $OUT/samples.png  loss curve: $OUT/loss.png  quality report: $OUT/quality.json"
