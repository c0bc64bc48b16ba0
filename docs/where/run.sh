#!/usr/bin/env bash
# The localisation-vs-editing runs behind docs/where/<model>/ (one heavy job at a time; a rerun resumes).
# SmolLM2: 60 known dev cases (the first 20 were run first; the run extends them, the candidate layers 0-4 first),
# Gemma: 10, each edited at up to 13 / 12 layers, in an order that spreads the layers first (a run stopped for time has a thinned but even grid: notes/where-to-edit.md). STOP_AT (a time,
# e.g. 04:35) stops the SmolLM2 step there and goes on to Gemma; GEMMA_STOP_AT stops Gemma's. WAIT_PID: start once that process has ended.
set -u
cd "$(dirname "$0")/../.."
F=".venv/bin/factlocate"
if [ -n "${WAIT_PID:-}" ]; then while kill -0 "$WAIT_PID" 2>/dev/null; do sleep 10; done; fi
echo "start smollm2 $(date -u +%FT%TZ)"
timeout "$(( $(date -d "${STOP_AT:-23:59}" +%s) - $(date +%s) ))" \
  $F localisation-vs-editing --model smollm2-135m --n 60 --layers 0,2,3,4,1,29,12,24,18,8,6,5,7 --out docs/where/smollm2-135m
echo "end smollm2 $(date -u +%FT%TZ)"
timeout "$(( $(date -d "${GEMMA_STOP_AT:-23:59}" +%s) - $(date +%s) ))" \
  $F localisation-vs-editing --model gemma-3-270m --n 10 --layers 0,17,4,11,2,14,8,6,1,3,5,7 --out docs/where/gemma-3-270m
echo "end gemma $(date -u +%FT%TZ)"
