#!/usr/bin/env bash
# Train the DiT that `vidtwin generate` uses when no --dit is given, for the bundled autoencoder:
#   synth-motion videos at the autoencoder's clip size -> `train dit --ae default` -> fp16 copy ->
#   NUM samples per class -> the learning-free direction classifier scores them -> installed as
#   vidtwin_cli/data/dit-synth-motion.safetensors (the package's default DiT).
# A DiT is tied to the autoencoder whose latents it learned: rerun this whenever the bundled
# autoencoder (vidtwin_cli/data/vidtwin-small.safetensors) changes. About 15 minutes on one CPU thread.
# Every size is an environment variable; a smoke run in about a minute, written elsewhere:
#   OUT=/tmp/d DEST=/tmp/d/dit.safetensors PER_CLASS=4 STEPS=5 NUM=1 SAMPLE_STEPS=2 MIN_ACCURACY=0 scripts/train_default_dit.sh
# Prints (and writes to $OUT/summary.json) the classifier's accuracy on the generated videos.
set -euo pipefail

OUT=${OUT:-runs/default-dit}
DEST=${DEST:-vidtwin_cli/data/dit-synth-motion.safetensors}
AE=${AE:-default}                     # the autoencoder the DiT is for
PER_CLASS=${PER_CLASS:-64}            # training videos per direction
STEPS=${STEPS:-1000}
BATCH=${BATCH:-64}
PRESET=${PRESET:-small}
NUM=${NUM:-16}                        # generated videos per class for the accuracy check
SAMPLE_STEPS=${SAMPLE_STEPS:-50}      # DDIM steps
CFG=${CFG:-5}
THREADS=${THREADS:-1}
MIN_ACCURACY=${MIN_ACCURACY:-0.9}     # below it nothing is installed
VIDTWIN=${VIDTWIN:-vidtwin}           # e.g. "python -m vidtwin_cli" without the console script
export OMP_NUM_THREADS=$THREADS

mkdir -p "$OUT"
declare -A seconds
phase() { seconds[$1]=$(( SECONDS - start )); start=$SECONDS; }
start=$SECONDS

# One clip of the autoencoder: its tile size and frame count.
read -r FRAMES SIZE < <($VIDTWIN info --model "$AE" --json |
  python3 -c 'import json, sys; c = json.load(sys.stdin)["clip_shape"]; print(c[1], c[2])')

rm -rf "$OUT/data" "$OUT/run" "$OUT/generated" && mkdir -p "$OUT/generated"
$VIDTWIN datasets synth-motion --out "$OUT/data" --per-class "$PER_CLASS" --size "$SIZE" --frames "$FRAMES" --seed 0 -q
phase data

$VIDTWIN train dit --out "$OUT/run" --data "$OUT/data" --labels-from-folders --ae "$AE" --preset "$PRESET" \
  --steps "$STEPS" --batch-size "$BATCH" --checkpoint-every 0 --device cpu --threads "$THREADS" -q
phase train_dit

# fp16 storage halves the file; the accuracy below is measured on exactly the file that is installed.
python3 -c 'import sys; from vidtwin_cli.generation.weights import store_dit; store_dit(sys.argv[1], sys.argv[2], "fp16")' \
  "$OUT/run/model.safetensors" "$OUT/dit.safetensors"

for class in right left down up; do
  $VIDTWIN generate --dit "$OUT/dit.safetensors" --class $class --num "$NUM" --cfg "$CFG" --steps "$SAMPLE_STEPS" \
    --seed 0 --device cpu -o "$OUT/generated/$class" -q
done
$VIDTWIN datasets check-motion "$OUT/generated" -q --json > "$OUT/check.json"
phase generate

python3 - "$OUT" "$DEST" "$MIN_ACCURACY" "$STEPS" "$PER_CLASS" "$NUM" "$CFG" \
  "${seconds[data]}" "${seconds[train_dit]}" "${seconds[generate]}" <<'EOF'
import hashlib, json, os, shutil, sys
from pathlib import Path
out, dest, min_accuracy = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
steps, per_class, num, cfg = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
check = json.loads((out / "check.json").read_text())
phases = dict(zip(["data", "train_dit", "generate"], map(int, sys.argv[8:])))
dit = out / "dit.safetensors"
summary = {"accuracy": check["accuracy"], "per_class": check["per_class"], "generated_per_class": num, "cfg": cfg,
           "steps": steps, "training_videos_per_class": per_class, "bytes": dit.stat().st_size,
           "file_sha256": hashlib.sha256(dit.read_bytes()).hexdigest(),
           "seconds": {**phases, "total": sum(phases.values())}, "installed": None}
if check["accuracy"] >= min_accuracy:
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(dit, tmp)
    os.replace(tmp, dest)
    summary["installed"] = str(dest)
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
if summary["installed"] is None:
    sys.exit(f"accuracy {check['accuracy']:.3f} is below MIN_ACCURACY={min_accuracy}; {dest} left as it was")
EOF
