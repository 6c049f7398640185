#!/usr/bin/env bash
# The main job: train the paper's digits model with the default config, then write
# samples and a quality report. Sets itself up first. Extra arguments go to `analogep train`
# (e.g. --steps 200; --out DIR trains and evaluates DIR). Re-running resumes an unfinished run.
set -euo pipefail
OUT="${OUT:-}"
ARGS=()
while [ $# -gt 0 ]; do  # --out is this script's: the run folder it trains, resumes and evaluates
  case "$1" in
    --out) [ $# -ge 2 ] || { echo "error: --out needs a folder" >&2; exit 2; }; OUT="$2"; shift 2 ;;
    --out=*) OUT="${1#--out=}"; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
set -- ${ARGS[@]+"${ARGS[@]}"}
if [ -n "$OUT" ]; then OUT="$(realpath -m -- "$OUT")"; fi  # relative to where the script was called from
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/digits}"
bash scripts/setup.sh
if [ -f "$OUT/checkpoint.npz" ]; then
  .venv/bin/analogep train --out "$OUT" --resume "$@"
else
  .venv/bin/analogep train --out "$OUT" "$@"
fi
.venv/bin/analogep evaluate "$OUT" --n 1000
echo "samples: $OUT/samples.png  loss curve: $OUT/loss.png  quality report: $OUT/quality.json"
