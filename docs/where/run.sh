#!/usr/bin/env bash
# The localisation-vs-editing runs behind docs/where/<model>/ (one heavy job at a time; a rerun resumes). They are
# also Figure 5's runs on the report pages (every layer at the last subject token on the same 60 dev cases).
# Done (7 Dec, 00:13): Gemma at 60 known dev cases and all 18 layers; SmolLM2 at 60 and layers 0-8, 10, 12, 15, 18,
# 21, 24, 27, 29, and at 21 cases of layer 9. Next: SmolLM2's other layers (the Gemma step now only re-analyses).
# STOP_AT (a time, e.g. 04:35) stops the Gemma step there and goes on to SmolLM2; SMOLLM_STOP_AT stops SmolLM2's.
# WAIT_PID: start once that process has ended.
# Then MEMIT centred at each layer (its config's width), thinned as the issue allows: the first 30 of the same
# known dev facts, every layer up to the dev trace's peak (3 on both models) plus 4, then the ROME grid's other
# layers; MEMIT_STOP_AT stops these two steps.
set -u
cd "$(dirname "$0")/../.."
F=".venv/bin/factlocate"
. docs/stop_at.sh
if [ -n "${WAIT_PID:-}" ]; then while kill -0 "$WAIT_PID" 2>/dev/null; do sleep 10; done; fi
echo "start gemma $(date -u +%FT%TZ)"
timeout "$(left "${STOP_AT:-23:59}")" \
  $F localisation-vs-editing --model gemma-3-270m --n 60 --layers 0,1,2,3,4,6,8,11,14,17,5,7,9,10,12,13,15,16 \
  --out docs/where/gemma-3-270m
echo "end gemma $(date -u +%FT%TZ)"
timeout "$(left "${SMOLLM_STOP_AT:-23:59}")" \
  $F localisation-vs-editing --model smollm2-135m --n 60 \
  --layers 0,2,3,4,1,29,12,24,18,8,6,15,21,27,10,5,7,9,11,13,14,16,17,19,20,22,23,25,26,28 --out docs/where/smollm2-135m
echo "end smollm2 $(date -u +%FT%TZ)"
for spec in "smollm2-135m 0,1,2,3,4,5,6,7,12,18,24,29" "gemma-3-270m 0,1,2,3,4,5,6,7,8,11,14,17"; do
  set -- $spec
  timeout "$(left "${MEMIT_STOP_AT:-23:59}")" \
    $F localisation-vs-editing --model "$1" --editor memit --n 30 --layers "$2" --out "docs/where/$1-memit"
  echo "end $1 memit $(date -u +%FT%TZ)"
done
