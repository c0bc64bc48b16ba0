#!/usr/bin/env bash
# The held-out check of issue 52: the layer rules fixed on each model's dev study (docs/where/<model>/) scored on
# known counterfact-sample `test` facts, each swept over the dev study's layers to find its own best layer.
# One heavy job at a time; a rerun resumes. STOP_AT (e.g. 11:40) stops the SmolLM2 step; GEMMA_STOP_AT Gemma's.
set -u
cd "$(dirname "$0")/../.."
F=".venv/bin/factlocate"
echo "start smollm2 test $(date -u +%FT%TZ)"
timeout "$(( $(date -d "${STOP_AT:-23:59}" +%s) - $(date +%s) ))" \
  $F localisation-vs-editing --model smollm2-135m --split test --n 30 --layers 0,2,3,4,1,29,12,24,18,8 \
  --out docs/where/smollm2-135m-test --validate docs/where/smollm2-135m
echo "end smollm2 test $(date -u +%FT%TZ)"
timeout "$(( $(date -d "${GEMMA_STOP_AT:-23:59}" +%s) - $(date +%s) ))" \
  $F localisation-vs-editing --model gemma-3-270m --split test --n 30 --layers 0,17,4,11,2,14,8,6,1,3 \
  --out docs/where/gemma-3-270m-test --validate docs/where/gemma-3-270m
echo "end gemma test $(date -u +%FT%TZ)"
