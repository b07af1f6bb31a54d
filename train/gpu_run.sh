#!/usr/bin/env bash
# One training run on a machine that received a copy of this working tree (a GPU lent for minutes).
#
#   bash train/gpu_run.sh PACK_DIR OUT_DIR [CONFIG]
#
# PACK_DIR: a data pack from `python -m train pack-data` (photos/train, maybe styles, manifest.json).
# CONFIG:   train base settings (default train/configs/guided_gpu.json: one H200, about 8 minutes).
# OUT_DIR receives only small files: decoder_part_NN.safetensors (the trained decoders, not the
# frozen encoder; at most 15 MiB each), losses.csv, settings.json, train.log and the last sample grid.
# Merge them at home: python -m train merge OUT_DIR my_model.safetensors
#
# It installs and downloads nothing: the machine's own python and torch, the encoder from the --init
# weights file. The training stops itself after the config's max_minutes (checkpoint first), and a
# `timeout` stops it for certain; either way the last checkpoint is exported. Runs on a CPU too.
#
# Environment: PYTHON (default python), DUALGAN_INIT (default the shipped weights),
# DUALGAN_TRAIN_SECONDS (the timeout, default 500), DUALGAN_RUN_DIR (default a new folder in /tmp).
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: bash train/gpu_run.sh PACK_DIR OUT_DIR [CONFIG]" >&2
    exit 2
fi
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
PACK=$(absolute "$1")
OUT=$(absolute "$2")
CONFIG=$(absolute "${3:-train/configs/guided_gpu.json}")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python}
INIT=${DUALGAN_INIT:-gan_core/assets/dualgan_default.safetensors}
LIMIT=${DUALGAN_TRAIN_SECONDS:-500}
RUN_DIR=${DUALGAN_RUN_DIR:-$(mktemp -d /tmp/dualgan_gpu_run.XXXXXX)}

[ -d "$PACK/photos/train" ] || { echo "error: $PACK/photos/train: no such folder (make the pack with python -m train pack-data)" >&2; exit 2; }
[ -f "$CONFIG" ] || { echo "error: $CONFIG: no such settings file" >&2; exit 2; }
mkdir -p "$OUT"
LOG="$OUT/train.log"
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=15

echo "gpu_run: $(date -u +%Y-%m-%dT%H:%M:%SZ) pack=$(basename "$PACK") config=$(basename "$CONFIG") init=$(basename "$INIT") limit=${LIMIT}s" >"$LOG"
if ! "$PY" -c "import torch, einops, safetensors, tqdm, PIL; c = torch.cuda.is_available(); print('torch', torch.__version__, 'on', torch.cuda.get_device_name() if c else 'the cpu')" >>"$LOG" 2>&1; then
    tail -n 5 "$LOG" >&2
    echo "error: $PY needs torch, einops, safetensors, tqdm and Pillow (nothing is installed here)" >&2
    exit 2
fi
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$LOG" 2>&1 || true; fi

STYLES=()
[ -d "$PACK/styles" ] && STYLES=(--styles "$PACK/styles")
status=0
timeout --kill-after=20 "$LIMIT" "$PY" -m train base --config "$CONFIG" --init "$INIT" --photos "$PACK/photos/train" \
    ${STYLES[@]+"${STYLES[@]}"} --run-dir "$RUN_DIR" --export "" >>"$LOG" 2>&1 || status=$?
case "$status" in
    0) ;;
    124|137) echo "gpu_run: train base was stopped by the ${LIMIT}s timeout; exporting its last checkpoint" >>"$LOG" ;;
    *) echo "gpu_run: train base ended with status $status" >>"$LOG" ;;
esac

if [ ! -f "$RUN_DIR/checkpoint.safetensors" ]; then
    echo "gpu_run: no checkpoint was written" >>"$LOG"
    tail -n 20 "$LOG" >&2
    exit 1
fi
"$PY" -m train export-parts "$RUN_DIR/checkpoint.safetensors" "$OUT" >>"$LOG" 2>&1
cp "$RUN_DIR/losses.csv" "$RUN_DIR/settings.json" "$OUT/"
last_sample=$(ls "$RUN_DIR"/samples_*.png 2>/dev/null | tail -n 1 || true)
[ -z "$last_sample" ] || cp "$last_sample" "$OUT/"
echo "gpu_run: done $(date -u +%H:%M:%SZ)" >>"$LOG"
tail -n 3 "$LOG"
