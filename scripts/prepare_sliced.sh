#!/usr/bin/env bash
# Prepare a corpus as K slices run side by side, then merge them: what a cluster does on K machines
# (recipes/cluster/prepare_slurm.sh is the same three steps as a SLURM job array).
#   bash scripts/prepare_sliced.sh K OUT INPUT... [-- extra prepare options, e.g. --tokenizer bpe --vocab-size 8000]
set -euo pipefail
K=$1; OUT=$2; shift 2
INPUTS=(); while [ $# -gt 0 ] && [ "$1" != "--" ]; do INPUTS+=("$1"); shift; done
[ $# -gt 0 ] && shift
FZ=${FROMZERO:-fromzero}
# 1. one tokenizer for every slice, trained on a bounded sample of all the inputs
$FZ prepare "${INPUTS[@]}" --out "$OUT/tokenizer" --tokenizer-only --no-progress "$@"
# 2. the K slices (any order, any machine; a killed slice resumes when its command is run again)
mkdir -p "$OUT/logs"
pids=()
for ((i = 0; i < K; i++)); do
  $FZ prepare "${INPUTS[@]}" --out "$OUT/slice-$i" --slices "$K" --slice "$i" --workers 1 \
    --tokenizer-file "$OUT/tokenizer/tokenizer.json" --no-progress "$@" > "$OUT/logs/slice-$i.log" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
# 3. one manifest over the slices
$FZ prepare merge "$OUT"/slice-* --out "$OUT/merged"
