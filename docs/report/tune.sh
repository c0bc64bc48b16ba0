#!/usr/bin/env bash
# The pages' tuning sections run ahead of the regeneration: each is the section's own command (`factlocate tune`
# into DIR/tuning/<editor>, a resumable folder), so `make report` later finds them done. One heavy job at a time.
# MODELS (default both), STOP_AT (a time, e.g. 11:50) stops the step running then, WAIT_PID: start once that
# process has ended.
set -u
cd "$(dirname "$0")/../.."
F=".venv/bin/factlocate"
. docs/stop_at.sh
if [ -n "${WAIT_PID:-}" ]; then while kill -0 "$WAIT_PID" 2>/dev/null; do sleep 10; done; fi
for model in ${MODELS:-smollm2-135m gemma-3-270m}; do
  for editor in ft ft-l kn; do
    echo "start $model $editor $(date -u +%FT%TZ)"
    timeout "$(left "${STOP_AT:-23:59}")" \
      $F tune --model "$model" --editor "$editor" --dataset counterfact-sample --n 20 \
      --out "docs/report/$model/tuning/$editor"
    rc=$?
    if [ "$rc" = 124 ]; then echo "stopped at STOP_AT: $model $editor $(date -u +%FT%TZ)"; exit 0; fi
    if [ "$rc" != 0 ]; then echo "failed ($rc): $model $editor $(date -u +%FT%TZ)"; fi
  done
done
echo "end $(date -u +%FT%TZ)"
