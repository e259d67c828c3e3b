#!/usr/bin/env bash
# The GPU checks in one run of under 10 minutes: the test suite first, then the figures the GPU targets name
# (training time and loss of the default config, names' test loss in 60 s, characters/s, names/s). Each part
# has a time limit, so that a slow part cannot starve the next; they add up to 590 s.
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
part() {  # part SECONDS TITLE: a heading, and the limit that the commands which follow share
    limit=$1
    deadline=$((SECONDS + limit))
    echo "== $2 (at most ${limit} s)"
}
limited() {  # each command gets what its part has left
    timeout "$((deadline > SECONDS ? deadline - SECONDS : 1))" "$@" || echo "(exit $?; 124: stopped at the ${limit} s limit)"
}

echo "== machine"
"$python" -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"

if [ -z "$quick" ]; then
    part 150 "tests"
    limited "$python" -m pytest -q -p no:cacheprovider 2>&1 | tail -15
fi

budget=(); [ -n "$quick" ] && budget=(--set train.epochs=2)
part 45 "dinogen train (default config, batch auto), then its validation loss"
time limited "$python" -m dinogen train -q -o "$work/default" --device "$device" "${budget[@]}"
dinogen info "$work/default" --format json | "$python" -c "import json,sys; d=json.load(sys.stdin); print('steps', d['step'], 'best val loss', d['best_val_loss'])"
tail -1 "$work/default/metrics.jsonl"  # elapsed: seconds of training, start-up excluded

seconds=60; seeds=(0 1 2); [ -n "$quick" ] && { seconds=5; seeds=(0); }
part 75 "names: test loss of best.pt within $seconds s, seed 0 (it stops at 14 epochs)"
limited "$python" benchmarks/quality.py --device "$device" --names "$names" --budget "$seconds" --seeds 0 \
    | grep -v "^ "

part 210 "names with model.ensemble=4: test loss of best.pt within $seconds s, seeds ${seeds[*]}"
limited "$python" benchmarks/quality.py --device "$device" --names "$names" --budget "$seconds" --seeds "${seeds[@]}" \
    --set model.ensemble=4 | grep -v "^ "

repeats=2; [ -n "$quick" ] && repeats=1
part 80 "speed: training rows (chars/s) at the batch auto picks, and sampling (names/s)"
limited "$python" benchmarks/train_speed.py --device "$device" --precision bf16 --repeats "$repeats" --names "$names" \
    ${quick:+--quick}
limited "$python" benchmarks/sample_speed.py --device "$device" --repeats "$repeats" --checkpoint "$work/default" \
    ${quick:+--quick}

count=1000000; [ -n "$quick" ] && count=20000
part 30 "dinogen sample -n $count -o FILE"
time limited "$python" -m dinogen sample "$work/default" -n "$count" --seed 0 --device "$device" -o "$work/names.txt"
wc -l < "$work/names.txt"
