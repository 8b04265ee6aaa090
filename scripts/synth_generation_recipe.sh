#!/usr/bin/env bash
# The CPU recipe of docs/generation.md, end to end:
#   synth-motion videos -> tiny autoencoder -> small class-conditional DiT -> NUM videos per class
#   with CFG 5 and with CFG 1 -> the learning-free direction classifier scores them.
# Every size is an environment variable, so CI can run the same file in seconds:
#   OUT=/tmp/r PER_CLASS=2 TEST_PER_CLASS=2 AE_STEPS=2 DIT_STEPS=2 NUM=1 SAMPLE_STEPS=2 scripts/synth_generation_recipe.sh
# Results: $OUT/summary.json (classifier accuracies and seconds per phase).
set -euo pipefail

OUT=${OUT:-runs/synth-recipe}
PER_CLASS=${PER_CLASS:-64}            # training videos per direction
TEST_PER_CLASS=${TEST_PER_CLASS:-25}  # held-out videos per direction (checks the classifier itself)
AE_STEPS=${AE_STEPS:-800}
DIT_STEPS=${DIT_STEPS:-3000}
NUM=${NUM:-16}                        # generated videos per class and guidance scale
SAMPLE_STEPS=${SAMPLE_STEPS:-50}      # DDIM steps
DEVICE=${DEVICE:-cpu}
THREADS=${THREADS:-0}                 # torch CPU threads for training (0: torch's default)
VIDTWIN=${VIDTWIN:-vidtwin}           # e.g. "python -m vidtwin_cli" without the console script
SIZE=32 FRAMES=6                      # one clip of the tiny autoencoder preset

mkdir -p "$OUT"
declare -A seconds
phase() { seconds[$1]=$(( SECONDS - start )); start=$SECONDS; }
start=$SECONDS

$VIDTWIN datasets synth-motion --out "$OUT/data/train" --per-class "$PER_CLASS" --size $SIZE --frames $FRAMES --seed 0 -q
$VIDTWIN datasets synth-motion --out "$OUT/data/test" --per-class "$TEST_PER_CLASS" --size $SIZE --frames $FRAMES --seed 1 -q
$VIDTWIN datasets check-motion "$OUT/data/test" -q --json > "$OUT/check_real.json"
phase data

# Reconstruction-only objective (no LPIPS, no GAN): enough to carry position and motion.
$VIDTWIN train ae --out "$OUT/ae" --data "$OUT/data/train" --preset tiny --steps "$AE_STEPS" --batch-size 16 \
  --lr 1e-3 --warmup 100 --set objective.perceptual_weight=0 --set objective.disc_factor=0 \
  --checkpoint-every 0 --device "$DEVICE" --threads "$THREADS" -q
phase train_ae

$VIDTWIN train dit --out "$OUT/dit" --data "$OUT/data/train" --labels-from-folders --ae "$OUT/ae/model.safetensors" \
  --preset small --steps "$DIT_STEPS" --batch-size 64 --checkpoint-every 0 --device "$DEVICE" --threads "$THREADS" -q
phase train_dit

for cfg in 5 1; do
  mkdir -p "$OUT/generated-cfg$cfg"
  for class in right left down up; do
    $VIDTWIN generate --dit "$OUT/dit/model.safetensors" --class $class --num "$NUM" --cfg $cfg --steps "$SAMPLE_STEPS" \
      --seed 0 --device "$DEVICE" -o "$OUT/generated-cfg$cfg/$class" -q
  done
  $VIDTWIN datasets check-motion "$OUT/generated-cfg$cfg" -q --json > "$OUT/check_cfg$cfg.json"
  phase "generate_cfg$cfg"
done

python3 - "$OUT" "${seconds[data]}" "${seconds[train_ae]}" "${seconds[train_dit]}" \
  "${seconds[generate_cfg5]}" "${seconds[generate_cfg1]}" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
acc = {name: json.loads((out / f"check_{name}.json").read_text())["accuracy"] for name in ("real", "cfg5", "cfg1")}
phases = dict(zip(["data", "train_ae", "train_dit", "generate_cfg5", "generate_cfg1"], map(int, sys.argv[2:])))
summary = {"classifier_on_held_out_real": acc["real"], "generated_cfg5": acc["cfg5"], "generated_cfg1": acc["cfg1"],
           "seconds": {**phases, "total": sum(phases.values())}}
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
EOF
