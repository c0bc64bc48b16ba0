"""New columns without new edits: score a finished evaluation run again from its stored deltas.

    rescore(model, dataset, "results/eval/cf/rome", "generated", generated.record_scores)

Each case of the run whose deltas were stored (`runner.keep_deltas`: low-rank factors beside the case file)
gets the metric twice, with the deltas applied ("post") and on the weights as loaded ("pre"); the scores
go to `<run>/extra-<name>/<case_id>.json`, written as each case finishes (a rerun resumes). Cases without
stored deltas (runs made before they were kept, or editors whose update is not low-rank) are listed as
skipped. The rebuilt deltas equal the originals to float32 rounding, so a metric the run already holds
comes out the same to that rounding (tested).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from factlocate import deltas as deltas_mod
from factlocate.errors import FactlocateError
from factlocate.runfolder import RunFolder


def rescore(model, dataset, run_folder: str | Path, name: str, metric: Callable, progress: bool = True) -> dict:
    """{"scored": case ids scored (now or before), "skipped": case ids without stored deltas, "unscorable": case
    ids the metric does not apply to (it returned None)}."""
    run = RunFolder(Path(run_folder))
    if not (run.path / "params.json").exists():
        raise FactlocateError(f"{run.path} holds no evaluation run (no params.json)")
    by_id = {r.case_id: r for r in dataset.records}
    scored, skipped, unscorable = [], [], []
    cases = run.items("cases")
    for path in tqdm(cases, desc=f"rescore {name}", disable=not progress or not cases, leave=False):
        case = run.read(path.stem, "cases")
        key, stored = case["case_id"], case.get("deltas")
        if not stored or not stored.endswith(".safetensors") or key not in by_id:
            skipped.append(key)
            continue
        if not run.has(key, f"extra-{name}"):
            record = by_id[key]
            pre = metric(model, record)
            if pre is None:  # the metric does not apply to this record (no one-hop question, say)
                unscorable.append(key)
                continue
            with deltas_mod.applied(model, deltas_mod.load_low_rank(run.path / stored)):
                post = metric(model, record)
            run.write(key, {"case_id": key, "post": post, "pre": pre}, f"extra-{name}")
        scored.append(key)
    return {"scored": scored, "skipped": skipped, "unscorable": unscorable}
