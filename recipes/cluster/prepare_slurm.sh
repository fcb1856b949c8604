#!/usr/bin/env bash
# A SLURM job array that prepares a large corpus on K nodes, then merges the slices.
# Submit from a shared file system (the inputs, the output folder and the venv are visible to every node):
#
#   K=16 OUT=/shared/prepared/fineweb IN=/shared/raw/fineweb/  bash recipes/cluster/prepare_slurm.sh
#
# Step 1 trains the shared tokenizer on one node; step 2 is the array (task I prepares slice I of K: a
# contiguous share of the input files; a preempted task resumes from its last complete shard when SLURM
# requeues it); step 3 runs after every task succeeded and writes one manifest over the slices.
# A Kubernetes Indexed Job is the same: run step 2 with --slice "$JOB_COMPLETION_INDEX".
set -euo pipefail
: "${K:?number of slices}" "${OUT:?output folder}" "${IN:?input files or folder}"
FZ=${FROMZERO:-.venv/bin/fromzero}
OPTS=${OPTS:---tokenizer bpe --vocab-size 32000}

tok=$(sbatch --parsable --job-name=fz-tokenizer --cpus-per-task=8 --mem=16G \
  --wrap "$FZ prepare $IN --out $OUT/tokenizer --tokenizer-only --no-progress $OPTS")
array=$(sbatch --parsable --job-name=fz-slices --dependency=afterok:"$tok" --array=0-$((K - 1)) --requeue \
  --cpus-per-task=16 --mem=8G \
  --wrap "$FZ prepare $IN --out $OUT/slice-\$SLURM_ARRAY_TASK_ID --slices $K --slice \$SLURM_ARRAY_TASK_ID \
          --tokenizer-file $OUT/tokenizer/tokenizer.json --no-progress $OPTS")
sbatch --job-name=fz-merge --dependency=afterok:"$array" --cpus-per-task=1 --mem=4G \
  --wrap "$FZ prepare merge $OUT/slice-* --out $OUT/merged"
echo "submitted: tokenizer $tok, slices $array (array of $K), merge after them; then point data.prepared at $OUT/merged"
