#!/bin/sh
# Compile and train a real network on the simulated Trainer chip, in one command:
#
#   examples/train_digits.sh
#
# digits_cnn (a small CNN exported by PyTorch to ONNX) is compiled for fp16 storage with dynamic
# magnitude pruning ramped to 90% sparsity over the first half of 300 steps (SGD lr 0.1, momentum
# 0.9, batch 32), then trained on the simulator on the first 1500 handwritten digits and evaluated
# on the remaining 297. Outputs go to target/train_digits/ (or $OUT): the binary, the JSON report,
# the trained weights (.npz, ONNX initializer names) and the test logits (.npy).
set -eu
cd "$(dirname "$0")/.."
out=${OUT:-target/train_digits}
mkdir -p "$out"
trainer() { cargo run --quiet --bin trainer -- "$@"; }
trainer compile tests/data/digits_cnn.onnx --precision fp16 --sparsity 0.9 --schedule ramp:0.5 \
  --batch 32 --lr 0.1 --momentum 0.9 --steps 300 -o "$out/digits_cnn.tbin"
trainer run "$out/digits_cnn.tbin" --data tests/data/digits_x.npy --labels tests/data/digits_y.npy \
  --train-rows 1500 --steps 300 --report "$out/report.json" --save-weights "$out/weights.npz" \
  --save-logits "$out/logits.npy"
