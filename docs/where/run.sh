#!/usr/bin/env bash
# The localisation-vs-editing runs behind docs/where/<model>/ (one heavy job at a time; a rerun resumes).
set -u
cd "$(dirname "$0")/../.."
F=".venv/bin/factlocate"
echo "start smollm2 $(date -u +%FT%TZ)"
$F localisation-vs-editing --model smollm2-135m --n 20 --layers 0-8,12,18,24,29 --out docs/where/smollm2-135m
echo "end smollm2 $(date -u +%FT%TZ)"
$F localisation-vs-editing --model gemma-3-270m --n 14 --layers 0-8,11,14,17 --out docs/where/gemma-3-270m
echo "end gemma $(date -u +%FT%TZ)"
