#!/usr/bin/env bash
# Train the default autoencoder for a few minutes on a borrowed GPU machine and bring the weights back.
#
# Made for the project's lent device machines (docs/training.md, "A GPU for a few minutes"): one GPU,
# a bare image with torch, typer, rich and numpy but no PyAV, no network, at most 64 MiB of files sent
# per call beside nothing else, and a few minutes of device time in all. Three phases, one command each:
#
#   here     scripts/device_train.sh pack                  -> .device/whl  (PyAV + constriction wheels)
#                                                             .device/data (training clips, bikes.mp4, LPIPS alex)
#   device   scripts/device_train.sh install   carry .device/whl   -> .device/site (kept while the machine is warm)
#   device   scripts/device_train.sh train     carry .device/data  -> $OUT: model-fp16.safetensors, metrics, log
#
# The wheels and the clips do not fit in one call beside the checkout, so they travel in two calls; the
# second must follow the first before the machine is given back (its warm window is short: send it at once).
# `train` stops itself (SIGTERM: the trainer saves a checkpoint) after TRAIN_S seconds, so a per-call limit
# of 600 s always gets weights back; whatever step it reached, the newest weights go to $OUT as fp16.
#
# Dry run on this machine (CPU, a few steps; `install` itself needs the machine's Python 3.12, so the dry run
# stands an empty .device/site in for it and uses the packages already installed here):
#   PYTHON=.venv/bin/python scripts/device_train.sh pack && mkdir -p .device/site &&
#   OUT=/tmp/dev DEVICE=cpu PRECISION=fp32 BATCH=2 STEPS=3 WORKERS=0 CACHE_MB=0 VAL_EVERY=0 PYTHON=.venv/bin/python \
#     scripts/device_train.sh train
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${DEVICE_DIR:-.device}                                                      # relative to the checkout
PYTHON=${PYTHON:-python3}
TRAIN_CLIPS=(carphone_pristine.mp4 bigbuckbunny.mp4 cityCC0.mpg vtest.avi tree.avi
             cup.mp4 world.mp4 dancer.avi jwpIntro.mp4 psychopy_default.mp4)   # the default model's ten clips
VAL_CLIP=bikes.mp4                                                              # held out
LIMIT_MIB=64                                                                    # what one device call may send

mib() { du -cm "$@" | tail -1 | cut -f1; }

pack() {
    local media=${VIDTWIN_MEDIA:-$($PYTHON -c 'from vidtwin_cli.cache import default_media_dir; print(default_media_dir())')}
    rm -rf "$DIR/whl" "$DIR/data"
    mkdir -p "$DIR/whl" "$DIR/data"
    $PYTHON -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$DIR/whl" "av==$($PYTHON -c 'import av; print(av.__version__)')" \
        "constriction==$($PYTHON -c 'import importlib.metadata as m; print(m.version("constriction"))')"
    for clip in "${TRAIN_CLIPS[@]}" "$VAL_CLIP"; do
        [[ -f $media/$clip ]] || { echo "$media/$clip missing: run python scripts/fetch_media.py --all" >&2; exit 2; }
        cp "$media/$clip" "$DIR/data/"
    done
    $PYTHON -c 'from vidtwin_cli.bench.lpips_weights import lpips_weights_path; print(lpips_weights_path("alex"))' |
        xargs -I{} cp {} "$DIR/data/lpips-alex.safetensors"
    local tree
    tree=$(git ls-files -z | du -cm --files0-from=- | tail -1 | cut -f1)
    for part in whl data; do
        local total=$(( tree + $(mib "$DIR/$part") ))
        echo "call with carry $DIR/$part: ~$total MiB (checkout $tree MiB)"
        (( total <= LIMIT_MIB )) || { echo "over the ${LIMIT_MIB} MiB a call may send" >&2; exit 1; }
    done
}

install() {
    [[ -d $DIR/whl ]] || { echo "no $DIR/whl: run pack here and carry $DIR/whl" >&2; exit 2; }
    $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$DIR/site" "$DIR"/whl/*.whl
    PYTHONPATH=$DIR/site:$PWD $PYTHON -c 'import av, constriction, torch, vidtwin_cli.app
print("ready: torch", torch.__version__, "cuda", torch.cuda.is_available(), "av", av.__version__)'
}

train() {
    : "${OUT:?OUT: the folder whose files come back}"
    local data=$DIR/data run=${RUN:-/tmp/vidtwin-device-run}
    mkdir -p "$OUT"
    [[ -d $DIR/site ]] || { echo "no $DIR/site: the install call did not run on this machine (it went cold?)" >&2; exit 2; }
    export PYTHONPATH=$DIR/site:$PWD PYTHONUNBUFFERED=1
    local args=()
    for clip in "${TRAIN_CLIPS[@]}"; do args+=(--data "$data/$clip"); done
    local init=${INIT:-default}
    [[ -f $data/init.safetensors && -z ${INIT:-} ]] && init=$data/init.safetensors   # carried weights win
    set +e
    timeout -s TERM "${TRAIN_S:-480}" $PYTHON -m vidtwin_cli train ae --preset small --init "$init" "${args[@]}" \
        --val "$data/$VAL_CLIP" --lpips-weights "$data/lpips-alex.safetensors" --out "$run" \
        --steps "${STEPS:-2000}" --batch-size "${BATCH:-32}" --lr "${LR:-2e-4}" --warmup "${WARMUP:-100}" \
        --precision "${PRECISION:-bf16}" --device "${DEVICE:-cuda}" --num-workers "${WORKERS:-8}" --seed "${SEED:-20}" \
        --disc-start 100000 --set objective.lpips_net='"alex"' --set optim.beta1=0.9 --set optim.beta2=0.99 \
        --set data.sample_fps=1000 --set "data.cache_mb=${CACHE_MB:-24000}" \
        --log-every 50 --val-every "${VAL_EVERY:-800}" --checkpoint-every "${CHECKPOINT_EVERY:-200}" --quiet 2>&1 |
        tee "$OUT/train.log"
    local rc=${PIPESTATUS[0]}
    set -e
    echo "trainer exit status $rc (0: finished; 124: stopped at TRAIN_S, its checkpoint saved)"
    local weights=$run/model.safetensors
    [[ -f $weights ]] || weights=$(ls "$run"/checkpoints/step-*.safetensors 2>/dev/null | sort | tail -1)
    [[ -n $weights ]] || { echo "no weights were saved" >&2; exit 1; }
    $PYTHON - "$weights" "$OUT/model-fp16.safetensors" <<'EOF'
import sys
from vidtwin_cli.codec.weights import resolve_model, save_model
save_model(sys.argv[2], resolve_model(sys.argv[1]).model, "fp16")
print("weights", sys.argv[1], "-> fp16", sys.argv[2])
EOF
    cp "$run/metrics.jsonl" "$run/config.json" "$OUT/"
    nvidia-smi --query-gpu=name,memory.used --format=csv > "$OUT/gpu.csv" 2>/dev/null || true
}

case ${1:-} in
    pack|install|train) "$1" ;;
    *) echo "usage: $0 pack|install|train (see the comment at the top)" >&2; exit 2 ;;
esac
