#!/usr/bin/env bash
# The long real runs behind notes/atp.md and the report pages, one job at a time, in order.
#
#     nohup tools/long_runs.sh > docs/runs.log 2>&1 &
#
# Every step resumes: a finished step returns in seconds, an unfinished one fills in what is
# missing. The first failing step stops the script (later steps read its output). The outputs live
# in tracked folders (docs/report/<model>/, docs/atp/<model>/) so that a partial run survives a
# fresh clone once committed. Each step's wall time is appended to
# docs/runs-times.txt with its command. Kill with: pkill -f tools/long_runs.sh; pkill -f factlocate
set -uo pipefail
cd "$(dirname "$0")/.."
FL=.venv/bin/factlocate
PY=.venv/bin/python
SEQ_DATA="counterfact:src/factlocate/data/counterfact_sample.json+../shared/data/counterfact_portability_gpt4.json"
TIMES=docs/runs-times.txt

step() {  # step <command...>: run it, log its wall time and exit status with the command
    local t0=$SECONDS
    echo "=== $(date -u +%FT%TZ) $*"
    "$@"
    local rc=$?
    echo "$(date -u +%FT%TZ) rc=$rc $((SECONDS - t0))s $*" >> "$TIMES"
    [ "$rc" -eq 0 ] || { echo "=== stopped: that step failed (rc=$rc)"; exit "$rc"; }
}

# Figure 5's layers per model (every second of Gemma's 18, every third of SmolLM2's 30): one place, since a
# changed setting makes a done section run again.
declare -A SWEEP_LAYERS=([gemma-3-270m]=0,2,4,6,8,10,12,14,16 [smollm2-135m]=0,3,6,9,12,15,18,21,24,27)

report() {  # report <model> <sections>: the full settings every time, so sections stay done
    step $FL report --model "$1" --out "docs/report/$1" --sweep-layers "${SWEEP_LAYERS[$1]}" \
        --sequential-dataset "$SEQ_DATA" --only "$2"
}

atp_chain() {  # notes/atp.md's comparison on one model, against the report's Figure 2 fact set
    local m=$1 exact="docs/report/$1/facts" d="docs/atp/$1"
    step $FL trace-facts --model "$m" --n 100 --method atp --out "$d/atp"
    step $FL trace-compare --exact "$exact" --other "$d/atp" --labels exact,atp --replay-verify 10 \
        --out "$d/fidelity-atp"
    step $FL trace-facts --model "$m" --n 10 --method atp+verify --top 10 --out "$d/verify"
    step $FL trace-compare --exact "$exact" --other "$d/verify" --labels exact,atp+verify \
        --out "$d/fidelity-verify"
    step $PY -m tools.atp_replay_check --exact "$exact" --atp "$d/atp" --verify "$d/verify" --top 10 \
        --out "$d/replay-check.json"
}

make -s install
report gemma-3-270m fig2
atp_chain gemma-3-270m
report smollm2-135m fig2
atp_chain smollm2-135m
report smollm2-135m fig1,fig5
report gemma-3-270m fig1,fig5
echo "=== $(date -u +%FT%TZ) all steps done"
