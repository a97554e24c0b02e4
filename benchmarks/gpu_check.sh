#!/usr/bin/env bash
# GPU check of the fast path, at most 8 minutes: prints the GPU, the training throughput of the reference-style
# loop and of difair's engine (images/s, ratio), the fast path's achieved TFLOP/s against the card's bf16 peak,
# peak GPU memory, and a short CIFAR-10 run's accuracy and images/s. Goal (issue 5): >= 50,000 training
# images/s for VGG32 at 32x32 on one H100.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        (default OUT_DIR: $OUT if set, else ./gpu-check)
#
# Uses CIFAR-10 from $DIFAIR_DATA or ~/.cache/difair-data (prepared from ../shared when present); without it,
# the throughput is timed on generated noise JPEGs and the short run uses the digits dataset instead.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu-check}}"
mkdir -p "$out"
py="${PYTHON:-python}"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"  # works without an install when the dependencies are there
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }

echo "== GPU"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv || true
"$py" - <<'EOF'
import os, torch
print(f"torch {torch.__version__} cuda {torch.version.cuda} cudnn {torch.backends.cudnn.version()}")
print(f"device {torch.cuda.get_device_name(0)} capability {torch.cuda.get_device_capability(0)}, {os.cpu_count()} CPUs")
EOF

data="${DIFAIR_DATA:-$HOME/.cache/difair-data}"
if [ ! -d "$data/cifar10-jpeg/train" ] && [ -x ../shared/tools/prepare-data ]; then
  ../shared/tools/prepare-data "$data" >/dev/null 2>&1 || true
fi
synthetic=()
dataset=cifar10
if [ ! -d "$data/cifar10-jpeg/train" ]; then
  echo "no CIFAR-10 JPEG tree in $data: timing on noise JPEGs, short run on digits"
  synthetic=(--synthetic-per-class 2000)
  dataset=digits
fi
workers=$(( $(nproc) - 2 ))
[ "$workers" -gt 12 ] && workers=12
[ "$workers" -lt 1 ] && workers=1

echo "== 1. throughput: reference loop vs difair (--fast: precision and channels_last auto, batched augmentation), eager  [$(elapsed) s]"
timeout 200 "$py" benchmarks/train_throughput.py --device cuda --steps 200 --rounds 5 --warmup 20 \
  --workers "$workers" "${synthetic[@]}" --json "$out/throughput.json" || echo "(step 1 failed or timed out)"

echo "== 2. the same with torch.compile  [$(elapsed) s]"
timeout 150 "$py" benchmarks/train_throughput.py --device cuda --steps 200 --rounds 3 --warmup 20 \
  --workers "$workers" --compile "${synthetic[@]}" --json "$out/throughput_compile.json" \
  || echo "(step 2 failed or timed out)"

echo "== 3. a short run: difair on $dataset split 0, 30 epochs, fast settings  [$(elapsed) s]"
rm -rf "$out/run"
timeout 110 "$py" -m difair.cli train --quiet --dataset "$dataset" --split 0 --epochs 30 --out "$out/run" \
  --fast --set accelerator=cuda \
  || echo "(step 3 failed or timed out)"
"$py" - "$out/run" <<'EOF' || true
import json, statistics, sys
from pathlib import Path
run = Path(sys.argv[1])
rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
ips = [r["images_per_s"] for r in rows[1:]] or [rows[0]["images_per_s"]]
print(f"engine images/s over epochs 2..{len(rows)}: median {statistics.median(ips):.0f}, max {max(ips):.0f}")
if (run / "results.json").is_file():
    r = json.loads((run / "results.json").read_text())
    print(f"accuracy {100 * r['closed_set_accuracy']:.2f} %, AUROC {100 * r['auroc']:.2f} %, train {r['train_time_s']} s")
EOF
echo "== done in $(elapsed) s; JSON and the run in $out"
