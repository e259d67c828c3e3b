#!/usr/bin/env bash
# The GPU checks in one run of a few minutes: the test suite first, then the figures the GPU targets name
# (training time and loss of the default config, names' test loss in 60 s, characters/s, names/s).
#
#   bash benchmarks/gpu_check.sh NAMES_FILE            # NAMES_FILE: a copy of ../shared/data/names.txt
#   DEVICE=cpu QUICK=1 bash benchmarks/gpu_check.sh ../shared/data/names.txt   # rehearsal without a GPU
set -uo pipefail
names=${1:?give the names file (a copy of ../shared/data/names.txt)}
device=${DEVICE:-cuda}
quick=${QUICK:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
TIMEFORMAT="wall %R s"
python=${PYTHON:-python3}
dinogen() { "$python" -m dinogen "$@"; }

echo "== machine"
"$python" -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"

echo "== tests"
if [ -z "$quick" ]; then "$python" -m pytest -q -p no:cacheprovider 2>&1 | tail -15; fi

budget=(); [ -n "$quick" ] && budget=(--set train.epochs=2)
for batch in auto 64; do  # auto: train.gpu_batch_size on a GPU; 64: the CPU's batch
    echo "== dinogen train (default config, batch $batch), then its validation loss"
    time "$python" -m dinogen train -q -o "$work/default-$batch" --device "$device" "${budget[@]}" \
        --set train.batch_size=$batch
    dinogen info "$work/default-$batch" --format json | "$python" -c "import json,sys; d=json.load(sys.stdin); print('steps', d['step'], 'best val loss', d['best_val_loss'])"
    tail -1 "$work/default-$batch/metrics.jsonl"  # elapsed: seconds of training, start-up excluded
done

echo "== names: test loss of best.pt within 60 s, seeds 0 1 2"
seconds=60; seeds=(0 1 2); [ -n "$quick" ] && { seconds=5; seeds=(0); }
"$python" benchmarks/quality.py --device "$device" --names "$names" --budget "$seconds" --seeds "${seeds[@]}" | tail -8

echo "== speed: training rows (chars/s) and sampling (names/s)"
repeats=3; [ -n "$quick" ] && repeats=1
"$python" benchmarks/speed.py --device "$device" --precision bf16 --repeats "$repeats" --names "$names" \
    --checkpoint "$work/default-auto" --skip-memory --skip-startup --skip-ddp --skip-busy ${quick:+--quick}

echo "== speed: training rows at batch 4,096 (what the chip can do; names lose quality at such batches)"
"$python" benchmarks/speed.py --device "$device" --precision bf16 --repeats "$repeats" --names "$names" \
    --batch-size 4096 --skip-sample --skip-memory --skip-startup --skip-ddp --skip-busy ${quick:+--quick}

echo "== dinogen sample -n 1000000 -o FILE"
count=1000000; [ -n "$quick" ] && count=20000
time "$python" -m dinogen sample "$work/default-auto" -n "$count" --seed 0 \
    --device "$device" -o "$work/names.txt"
wc -l < "$work/names.txt"
