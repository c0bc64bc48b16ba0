#!/usr/bin/env bash
# The held-out check of issue 52: the layer rules fixed on each model's dev study (docs/where/<model>/) scored on
# known counterfact-sample `test` facts, each swept over every layer (the dev studies' grid) to find its own best
# layer. The first runs swept the ten layers listed first; a rerun edits only the missing (case, layer) cells.
# One heavy job at a time; a rerun resumes. STOP_AT (e.g. 11:40) stops the SmolLM2 step; GEMMA_STOP_AT Gemma's.
# ONLY=smollm2 or ONLY=gemma runs that model's step alone. Gemma's layers run the dev rules' layers first (0, 1, 3, 6).
set -u
cd "$(dirname "$0")/../.."
F=".venv/bin/factlocate"
. docs/stop_at.sh
if [ "${ONLY:-smollm2}" = smollm2 ]; then
echo "start smollm2 test $(date -u +%FT%TZ)"
timeout "$(left "${STOP_AT:-23:59}")" \
  $F localisation-vs-editing --model smollm2-135m --split test --n 30 --layers 0,2,3,4,1,29,12,24,18,8,6,15,21,27,10,5,7,9,11,13,14,16,17,19,20,22,23,25,26,28 \
  --out docs/where/smollm2-135m-test --validate docs/where/smollm2-135m
echo "end smollm2 test $(date -u +%FT%TZ)"
fi
if [ "${ONLY:-gemma}" = gemma ]; then
echo "start gemma test $(date -u +%FT%TZ)"
timeout "$(left "${GEMMA_STOP_AT:-23:59}")" \
  $F localisation-vs-editing --model gemma-3-270m --split test --n 30 --layers 0,1,3,6,2,4,8,11,14,17,5,7,9,10,12,13,15,16 \
  --out docs/where/gemma-3-270m-test --validate docs/where/gemma-3-270m
echo "end gemma test $(date -u +%FT%TZ)"
fi
