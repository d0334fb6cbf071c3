#!/usr/bin/env bash
# GPU vs CPU on this machine, through culturecode's own training and pre-labelling code (under 8 minutes):
# one fine-tuning epoch on 1k segments and pre-labelling throughput at 100k segments (benchmarks/gpu_check.py).
#
#   benchmarks/gpu_check.sh                    # the full check (needs an NVIDIA GPU for the GPU half)
#   benchmarks/gpu_check.sh --tiny             # a quick run of the script itself, CPU is enough
#   benchmarks/gpu_check.sh --json out.json    # also write the figures to a file
#
# PYTHON picks the interpreter (default: the project's .venv, else python3); it needs culturecode installed
# with a CUDA build of torch for the GPU figures.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
exec timeout 480 "$PY" benchmarks/gpu_check.py "$@"
