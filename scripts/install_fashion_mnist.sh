#!/usr/bin/env bash
# Install Fashion-MNIST (Debian dataset-fashion-mnist, ~30 MB of IDX .gz files in /usr/share/datasets/fashion-mnist),
# the images behind the vision recipes, the composed detection/segmentation scenes and their tests. Idempotent:
# does nothing when the files are there. Without them those tests skip locally and fail when CI=true.
set -euo pipefail
DIR=/usr/share/datasets/fashion-mnist
if [ -f "$DIR/train-images-idx3-ubyte.gz" ] && [ -f "$DIR/t10k-labels-idx1-ubyte.gz" ]; then
  exit 0
fi
bash "$(dirname "$0")/apt_install.sh" "Fashion-MNIST" dataset-fashion-mnist
if [ -d "$DIR" ]; then echo "Fashion-MNIST: $(ls "$DIR" | tr '\n' ' ')"; fi
