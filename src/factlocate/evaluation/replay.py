"""Re-run finished items of a run folder and compare them with what the folder holds.

    diff = replay_cases(model, "out/rome", dataset, [18, 212])     # evaluation cases: edit, post, revert, pre
    diff = replay_facts(model, "out/facts", ["3", "17"])           # fact-set traces

Each returns {"items": [...], "max_diff": float, "where": "<item>: <path of the largest difference>"}: the largest
absolute difference over every number both results hold, times and stored-file names left out. The same model,
hyperparameters and seeds should give a difference of 0 (float32, the same machine) or float noise elsewhere.
`factlocate report --verify K` calls these for every section of a page.
"""
from __future__ import annotations

import random
from pathlib import Path

from factlocate.errors import FactlocateError
from factlocate.io import read_json

IGNORED = {"time", "edit_timings", "seconds", "deltas"}  # wall times, and where deltas were stored


def sample(keys: list, k: int, seed: int) -> list:
    """`k` of `keys` chosen at random (all when there are fewer), in a seeded order."""
    keys = sorted(keys, key=str)
    return random.Random(seed).sample(keys, min(k, len(keys)))


def largest_difference(a, b, path: str = "") -> tuple[float, str]:
    """The largest |a - b| over the numbers at the same place in a fresh result `a` and a stored one `b`; a
    structural difference (a stored key the fresh result lacks, another string, another length) counts as
    infinite. A key only the fresh result has is a field added since the stored run, and is not compared."""
    if isinstance(a, bool) or isinstance(b, bool):
        return (0.0, path) if a == b else (float("inf"), path)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)), path
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(b) - IGNORED
        if keys - set(a):
            return float("inf"), f"{path}/{sorted(keys - set(a))}"
        return max((largest_difference(a[k], b[k], f"{path}/{k}") for k in sorted(keys)), default=(0.0, path))
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return float("inf"), f"{path} (length {len(a)} against {len(b)})"
        return max((largest_difference(x, y, f"{path}/{i}") for i, (x, y) in enumerate(zip(a, b))),
                   default=(0.0, path))
    return (0.0, path) if a == b else (float("inf"), path)


def _worst(results: dict) -> dict:
    worst = max(results.items(), key=lambda kv: kv[1][0], default=(None, (0.0, "")))
    return {"items": list(results), "max_diff": worst[1][0], "where": f"{worst[0]}: {worst[1][1]}"}


def replay_cases(model, folder: str | Path, dataset, case_ids: list[int]) -> dict:
    """Run these cases of an evaluation folder again with its recorded editor, hyperparameters and metrics."""
    import dataclasses

    from factlocate.evaluation import runner
    from factlocate.runfolder import plain

    folder = Path(folder)
    params = read_json(folder / "params.json")
    if params["dataset"]["digest"] != dataset.digest:
        raise FactlocateError(f"{folder} was run on dataset digest {params['dataset']['digest']}, not {dataset.digest}")
    module, hparams = runner.editor_and_hparams(params["editor"], params["model"], params["hparams"])
    if hparams is not None:  # every recorded value loads as recorded (fields added since take their defaults)
        now = plain(dataclasses.asdict(hparams))
        changed = sorted(k for k, v in params["hparams"].items() if now.get(k) != v)
        if changed:
            raise FactlocateError(f"{folder}: hyperparameters {changed} no longer load as recorded")
    eval_params = runner.EvalParams(**params["eval"])
    options = runner.prepared(module, model, hparams)
    records = {r.case_id: r for r in dataset.records}
    results = {}
    for case_id in case_ids:
        stored = read_json(folder / "cases" / f"{case_id}.json")
        case = runner.run_case(model, records[case_id], module, hparams, eval_params, None, None, options)
        case.pop(runner.DELTAS, None)
        results[case_id] = largest_difference(plain(case), stored)
    return _worst(results)


def replay_facts(model, folder: str | Path, known_ids: list) -> dict:
    """Trace these facts of a fact-set folder again with its recorded spec and noise."""
    from factlocate.datasets.known_facts import SHIPPED, load_facts
    from factlocate.runfolder import RunFolder, plain
    from factlocate.tracing import facts as fact_set

    folder = RunFolder(folder, prefix="known_")
    params = folder.params()
    spec = fact_set.FactSetSpec(**params["spec"])
    facts = load_facts(None if spec.facts == SHIPPED else spec.facts)
    trace = fact_set.tracer(model, spec, facts, params["noise"].get("sigma"))
    by_id = {str(f["known_id"]): f for f in facts}
    results = {}
    for known_id in known_ids:
        fresh = plain(trace({"fact": by_id[str(known_id)]}))
        results[known_id] = largest_difference(fresh, folder.read(known_id))
    return _worst(results)
