#!/usr/bin/env bash
# Issue 23's measurements in one call of the library's device tool (15 minutes of device
# time a session, a machine start included): the side-by-side step, base and large; a
# kernel profile; compile times. Figures land in $OUT as JSON lines and text.
#
# Here, once (the GPU image has no ml_collections; carry it as a wheel):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux2014_x86_64 -d .whl ml_collections==1.1.0
# Then: device run, carry [".whl"], command "bash bench/gpu_device_run.sh", timeout 600.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv \
  > "$OUT/nvidia-smi.csv" 2>&1
step() { timeout "$1" python3 bench/gpu_step.py --out "$OUT/gpu_step.jsonl" "${@:2}" \
  >> "$OUT/gpu_step.log" 2>&1 || echo "gpu_step $* failed: $?" >> "$OUT/gpu_step.log"; }
# 1. base 32 x 512: XLA and cuDNN attention, gathers by dot (auto) and by scatter
step 280 --shapes base --scan_layers --ours xla,cudnn,cudnn/scatter --hf eager,compile \
  --rounds 3
# 2. large 32 x 512: cuDNN against HF eager
step 150 --shapes large --scan_layers --ours cudnn --hf eager --rounds 2 --no_check
# 3. where the base step's time goes, by kernel
timeout 90 python3 bench/profile_step.py --shape base --batch 32 --seq 512 \
  --dtype bfloat16 --attention cudnn --scan_layers --steps 3 --trace_dir "$OUT/trace" \
  > "$OUT/profile.txt" 2>&1
tail -n 3 "$OUT/gpu_step.log" "$OUT/profile.txt"
