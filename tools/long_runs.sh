#!/usr/bin/env bash
# The long real runs behind notes/atp.md and the report pages, one job at a time, in order.
#
#     nohup tools/long_runs.sh > docs/runs.log 2>&1 &
#
# Every step resumes: a finished step returns in seconds, an unfinished one fills in what is
# missing. The first failing step stops the script (later steps read its output). The outputs live
# in tracked folders (docs/report/<model>/, docs/atp/<model>/, docs/alphaedit-scan/) so that a
# partial run survives a fresh clone once committed. Each step's wall time is appended to
# docs/runs-times.txt with its command. Kill with: pkill -f tools/long_runs.sh; pkill -f factlocate
#
# What does not survive a fresh machine, and is therefore made in the session that uses it:
# MEND/KE checkpoints (the cache; 130-170 MB each) and an unfinished sequential run's state file.
# A sequential run therefore starts only if its estimate fits before UNTIL (a `date -d` time, e.g.
# UNTIL=14:15; unset: no limit); one that does not fit is skipped, and the resumable steps after it run.
# Decisions are taken by a person between steps, and gate a model's editing steps:
# ROME's edit layer from Figure 5 (configs/rome/<model>.yaml names docs/report/<model>/sweep) and,
# where a model has no AlphaEdit config, its null-space threshold from docs/alphaedit-scan/<model>.json.
# That scan edits MEMIT's layers, so it waits for MEMIT's range from the trace (configs/memit/<model>.yaml
# names docs/report/<model>/facts; `factlocate layer-range --from docs/report/<model>/facts`).
set -uo pipefail
cd "$(dirname "$0")/.."
FL=.venv/bin/factlocate
PY=.venv/bin/python
DATA=../shared/data
SEQ_DATA="counterfact:src/factlocate/data/counterfact_sample.json+$DATA/counterfact_portability_gpt4.json"
TIMES=docs/runs-times.txt

step() {  # step <command...>: run it, log its wall time and exit status with the command
    local t0=$SECONDS
    echo "=== $(date -u +%FT%TZ) $*"
    "$@"
    local rc=$?
    echo "$(date -u +%FT%TZ) rc=$rc $((SECONDS - t0))s $*" >> "$TIMES"
    [ "$rc" -eq 0 ] || { echo "=== stopped: that step failed (rc=$rc)"; exit "$rc"; }
}

# Figure 5's layers per model, in one place since a changed setting makes a done section run again: every third
# layer (6 of Gemma's 18, 10 of SmolLM2's 30), as a sweep cell takes about 4-7 min on the 2-core machine.
declare -A SWEEP_LAYERS=([gemma-3-270m]=0,3,6,9,12,15 [smollm2-135m]=0,3,6,9,12,15,18,21,24,27)

# The sequential runs per model (editor:edits:batch:log_every), sized so that each run, scoring included, ends
# within one 3-hour working session (its state file is not in git), with their estimated minutes on this machine.
# SmolLM2's runs took 96 min (MEMIT, on a fresh machine, key statistics included), 74 min (AlphaEdit) and 54 min
# (ROME; notes/report.md). Gemma edits about 1.5 times slower per case (Table 1), so it gets 300 batched edits, and
# its ROME estimate is SmolLM2's measured 54 min times 1.5.
declare -A SEQ_RUNS=([smollm2-135m]=memit:500:100:1,alphaedit:500:100:1,rome:100:1:10
                     [gemma-3-270m]=memit:300:100:1,alphaedit:300:100:1,rome:100:1:10)
declare -A SEQ_MINUTES=([smollm2-135m:memit]=100 [smollm2-135m:alphaedit]=100 [smollm2-135m:rome]=50
                        [gemma-3-270m:memit]=100 [gemma-3-270m:alphaedit]=100 [gemma-3-270m:rome]=85)

report() {  # report <model> <sections> [--editors LIST]: the full settings every time, so sections stay done
    local m=$1 sections=$2
    shift 2
    step $FL report --model "$m" --out "docs/report/$m" --sweep-layers "${SWEEP_LAYERS[$m]}" \
        --sequential-dataset "$SEQ_DATA" --sequential "${SEQ_RUNS[$m]}" --only "$sections" "$@"
}

fits() {  # fits <minutes>: true if that long from now ends before UNTIL (always, without UNTIL)
    [ -z "${UNTIL:-}" ] || [ $(( $(date +%s) + $1 * 60 )) -le "$(date -d "$UNTIL" +%s)" ]
}

sequential() {  # sequential <model>: each unfinished run alone, if it fits before UNTIL; once all are done,
                # the section at the full settings (which only renders)
    local m=$1 run editor missing=0
    decided "$m" || return 0
    for run in ${SEQ_RUNS[$m]//,/ }; do
        editor=${run%%:*}
        [ -f "docs/report/$m/sequential/$editor/done.json" ] && continue
        if fits "${SEQ_MINUTES[$m:$editor]}"; then
            report "$m" sequential --sequential "$run"  # the last --sequential wins
        else
            echo "=== $m: sequential $run (about ${SEQ_MINUTES[$m:$editor]} min) does not fit before $UNTIL"
            missing=1
        fi
    done
    [ "$missing" -eq 1 ] || report "$m" sequential
}

atp_chain() {  # notes/atp.md's comparison on one model, against the report's Figure 2 fact set
    local m=$1 exact="docs/report/$1/facts" d="docs/atp/$1"
    [ -f "$d/replay-check.json" ] && return 0  # the chain's last output: all done (saves loading the model 4 times)
    step $FL trace-facts --model "$m" --n 100 --method atp --out "$d/atp"
    step $FL trace-compare --exact "$exact" --other "$d/atp" --labels exact,atp --replay-verify 10 \
        --out "$d/fidelity-atp"
    step $FL trace-facts --model "$m" --n 10 --method atp+verify --top 10 --out "$d/verify"
    step $FL trace-compare --exact "$exact" --other "$d/verify" --labels exact,atp+verify \
        --out "$d/fidelity-verify"
    step $PY -m tools.atp_replay_check --exact "$exact" --atp "$d/atp" --verify "$d/verify" --top 10 \
        --out "$d/replay-check.json"
}

alphaedit_scan() {  # the null-space threshold scan behind a model's AlphaEdit config, kept in a tracked file; made
                   # where that file is missing (resumes from OUT.partial/). A config made from it is a person's choice.
    local m=$1 out="docs/alphaedit-scan/$1.json"
    [ -f "$out" ] && return 0
    if ! grep -q "docs/report/$m/facts" "src/factlocate/configs/memit/$m.yaml"; then  # it edits MEMIT's layers
        echo "=== $m: the scan waits for MEMIT's range from the trace (configs/memit/$m.yaml, docs/report/$m/facts)"
        return 0
    fi
    step $PY -m tools.alphaedit_scan --model "$m" --dataset "$SEQ_DATA" --n 100 --out "$out"
}

decided() {  # decided <model>: both decisions above are in the configs; else say which is missing
    local m=$1
    if ! grep -q "docs/report/$m/sweep" "src/factlocate/configs/rome/$m.yaml"; then
        echo "=== $m: editing waits for ROME's layer from Figure 5 (configs/rome/$m.yaml, docs/report/$m/sweep)"
        return 1
    fi
    if [ ! -f "src/factlocate/configs/alphaedit/$m.yaml" ]; then
        echo "=== $m: editing waits for an AlphaEdit config (from docs/alphaedit-scan/$m.json)"
        return 1
    fi
}

rows_done() {  # rows_done <model> <mend|ke>: the report holds all three variants' rows (Tables 1-2, Figure 6)
               # at the report's default of 100 cases per editor (the queue passes no --eval-cases)
    local d=docs/report/$1 e=$2 f
    for f in "$d/counterfact/$e" "$d/counterfact/$e-cf" "$d/zsre/$e" "$d/zsre/$e-zsre"; do
        [ "$(find "$f/cases" -name '*.json' 2>/dev/null | wc -l)" -ge 100 ] || return 1
    done
    [ -f "$d/curie/$e.json" ] && [ -f "$d/curie/$e-cf.json" ]
}

hypernets() {  # hypernets <model> <mend|ke>: train the three variants, then their rows, in one session
    local m=$1 e=$2
    # The checkpoints live in the cache, not in git: on a fresh machine, retrain only for missing rows.
    rows_done "$m" "$e" && return 0
    step $FL train-editor --editor "$e" --model "$m" --data "wikitext:$DATA/wiki.valid.tokens"
    step $FL train-editor --editor "$e" --model "$m" --data "cf:$DATA/counterfact-train.json"
    step $FL train-editor --editor "$e" --model "$m" --data "zsre:$DATA/zsre_mend_train-1k.json"
    report "$m" table1,table2,fig6 --editors "$e,$e-cf,$e-zsre"
}

make -s install
# The sequential runs first, as each must end within the session that starts it; then the rest, which resume
# from their committed case files whenever a session ends.
sequential smollm2-135m
sequential gemma-3-270m

report gemma-3-270m fig2
atp_chain gemma-3-270m
report smollm2-135m fig2
atp_chain smollm2-135m
report smollm2-135m fig1,fig5
report gemma-3-270m fig1,fig5
editing() {  # editing <model>: the tables and MEND/KE, once the model's decisions are taken. Once the tables hold
             # every editor, each call is answered by them (a finished section covers a call for fewer editors)
    local m=$1
    decided "$m" || return 0
    report "$m" table1,table2,fig6 --editors unedited,rome,memit,alphaedit,ft,ft-l,kn
    hypernets "$m" mend
    hypernets "$m" ke
    report "$m" table1,table2,fig6  # every editor: the rows above are reused
}

alphaedit_scan gemma-3-270m  # remade on 2 Dec: the first one read C0 made mid-edit (notes/editors.md)
editing smollm2-135m
editing gemma-3-270m
alphaedit_scan smollm2-135m  # the first run's JSON was not kept; remade on 3 Dec
echo "=== $(date -u +%FT%TZ) all steps done"
