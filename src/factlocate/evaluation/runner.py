"""The evaluation protocol: edit, evaluate "post", restore exactly, evaluate "pre".

For each case the editor computes its deltas from the original weights; the
metrics run with the deltas applied ("post"), the deltas are reverted
(bit-exactly, see `factlocate.deltas`), and the unedited metrics ("pre") are
read from a cache keyed by model and dataset, or computed and cached.

Layout of an output folder (one sub-folder per editor, so several editors sit
side by side in one report):

    OUT/<editor>/params.json         model, dataset, hyperparameters, evaluation settings
    OUT/<editor>/cases/<case_id>.json  {"case_id", "requested_rewrite", "time", "post", "pre", "deltas"}
    OUT/<editor>/deltas/<case_id>.safetensors  the case's weight deltas as low-rank factors (`deltas.low_rank`),
                                     where the editor's update is low-rank (ROME's, MEMIT's and AlphaEdit's
                                     are; fine-tuning's are not, and the case says so);
                                     a metric added later scores the run from them without editing again
                                     (`evaluation.rescore`)

Each case file is written atomically as soon as the case finishes, so a rerun
with the same parameters resumes where an interrupted run stopped (`factlocate.runfolder`).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from factlocate.errors import FactlocateError
from factlocate.identity import identity
from factlocate.io import read_json, write_json
from factlocate.metrics import counterfact as cf_metrics
from factlocate.metrics import zsre as zsre_metrics
from factlocate.runfolder import RunFolder

UNEDITED = "unedited"
DELTAS = "_deltas"  # the key under which run_case hands a case's deltas to the writer
METRICS_VERSION = 1  # bump when a metric's definition changes: invalidates the pre-edit cache


@dataclass(frozen=True)
class EvalParams:
    """How cases are evaluated (shared by pre and post, part of every cache key)."""

    generation: bool = True  # GE and RS need sampled generations (CounterFact only)
    max_length: int = 100  # generation length in tokens, counting the prompt
    top_k: int = 5
    seed: int = 0  # generation seed; case c samples with seed + c

    def __post_init__(self):
        if self.max_length < 2:
            raise FactlocateError(f"max_length must be at least 2, got {self.max_length}")
        if self.top_k < 1:
            raise FactlocateError(f"top_k must be at least 1, got {self.top_k}")


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def record_digest(record) -> str:
    return _digest(dataclasses.asdict(record))


def evaluate(model, record, params: EvalParams, reference=None) -> dict:
    """Every metric of one record on the model as it is now; per-case scores under "scores"."""
    if record.kind == "zsre":
        out = zsre_metrics.token_correct(model, record)
        out["scores"] = zsre_metrics.case_scores(out)
        return out
    out = cf_metrics.prompt_nlls(model, record)
    scores = cf_metrics.case_scores(out)
    if params.generation and record.generation_prompts:
        gen = cf_metrics.generation_metrics(
            model, record, params.max_length, params.top_k, params.seed + record.case_id, reference
        )
        out.update(gen)
        scores["GE"], scores["RS"] = gen["ngram_entropy"], gen["reference_score"]
    out["scores"] = scores
    return out


class PreCache:
    """Pre-edit metrics per case, stored under the cache folder per model identity, dataset and settings."""

    def __init__(self, model_key: str, dataset, params: EvalParams, root: Path | None = None):
        from factlocate.models import cache_dir

        key = _digest([dataset.digest, dataclasses.asdict(params), METRICS_VERSION])
        self.folder = (root or cache_dir() / "eval-pre") / model_key / f"{dataset.name}-{key}"

    def get(self, record) -> dict | None:
        path = self.folder / f"{record.case_id}.json"
        if not path.exists():
            return None
        entry = read_json(path)
        return entry["pre"] if entry.get("record") == record_digest(record) else None

    def put(self, record, pre: dict) -> None:
        write_json(self.folder / f"{record.case_id}.json", {"record": record_digest(record), "pre": pre})


def prepared(editor, model, hparams) -> dict:
    """The editor's once-per-run work on the unedited weights (its declared `prepare`), as compute_edit inputs."""
    return editor.prepare(model, hparams) if editor is not None and editor.prepare is not None else {}


def run_case(model, record, editor, hparams, params: EvalParams, pre_cache: PreCache | None, reference=None,
             options: dict | None = None) -> dict:
    """One case under the protocol: edit, post, revert, pre. `editor` None means unedited.

    `options` (from `prepared`) are passed to the editor; without them it does that work itself."""
    request = record.request()
    case = {"case_id": record.case_id, "requested_rewrite": dataclasses.asdict(request), "time": {}}
    if editor is not None:
        t0 = time.perf_counter()
        result = editor.compute_edit(model, [request], hparams, progress=False, **(options or {}))
        t1 = time.perf_counter()
        with result.applied(model):
            case["post"] = evaluate(model, record, params, reference)
        case["time"] = {"edit": t1 - t0, "post": time.perf_counter() - t1}
        case["edit_timings"] = dict(result.timings)  # the editor's own breakdown (one-time costs included)
        case[DELTAS] = result.deltas  # stored beside the case file by `run` (`keep_deltas`), not in it
    t2 = time.perf_counter()
    pre = pre_cache.get(record) if pre_cache else None
    if pre is None:
        pre = evaluate(model, record, params, reference)
        if pre_cache:
            pre_cache.put(record, pre)
    case["pre"] = pre
    case["time"]["pre"] = time.perf_counter() - t2
    return case


def editor_and_hparams(name: str, model_spec: str, overrides: dict | None = None, module=None,
                       hparams_file: str | None = None):
    """The editor's declaration (None for unedited) and its hyperparameters from the shipped configs."""
    if name == UNEDITED:
        if overrides or hparams_file:
            raise FactlocateError("the unedited model takes no hyperparameters")
        return None, None
    from factlocate import editors

    module = module or editors.get(name)
    return module, module.load_hparams(model_spec, overrides, path=hparams_file)


def run(
    model, dataset, records: list, editor: str, out: str | Path, params: EvalParams | None = None,
    overrides: dict | None = None, reference=None, module=None, overwrite: bool = False,
    progress: bool = True, pre_cache: bool = True, folder_name: str | None = None, hparams_file: str | None = None,
    pool=None, model_spec: str | None = None, split: str | None = None,
) -> Path:
    """Evaluate `editor` ("unedited" for none) on `records`, resuming finished cases.

    Returns the editor's folder. `module` replaces the registered editor module
    (any object with HParams and compute_edit); `folder_name` defaults to `editor`.
    With a Ray `pool` (`factlocate.distributed`) the cases run on its workers and this
    process only writes the case files; `model` may then be None (give `model_spec`). `split` names the
    dataset split the records come from (`datasets.splits`); it is recorded with the dataset.
    """
    params = params or EvalParams()
    spec = identity(model).spec if model is not None else model_spec
    if pool is not None and module is not None:
        raise FactlocateError("a Ray run evaluates registered editors only (factlocate.editors.EDITORS)")
    module, hparams = editor_and_hparams(editor, spec, overrides, module, hparams_file)
    path = Path(out) / (folder_name or editor)
    folder = RunFolder(path).open({
        "model": spec,
        "editor": editor,
        "hparams": dataclasses.asdict(hparams) if hparams is not None else None,
        "dataset": {"kind": dataset.kind, "name": dataset.name, "digest": dataset.digest,
                    **({"split": split} if split else {})},
        "eval": dataclasses.asdict(params),
        "metrics_version": METRICS_VERSION,
    }, overwrite=bool(overwrite), same=functools.partial(named_split, path, dataset, split))
    todo = [r for r in records if not folder.has(r.case_id)]
    items = [(r.case_id, {"record": r, "editor": editor if module is not None else None, "hparams": hparams,
                          "params": params, "dataset": dataset.ref(), "pre_cache": pre_cache,
                          "reference": reference}) for r in todo]
    if pool is None and todo:
        cache = PreCache(identity(model).key, dataset, params) if pre_cache else None
        options = prepared(module, model, hparams)

        def run_one(item: dict) -> dict:
            return run_case(model, item["record"], module, hparams, params, cache, reference, options)
    else:
        run_one = None
    bar = tqdm(total=len(records), initial=len(records) - len(todo), desc=f"{editor} on {dataset.name}",
               unit="case", disable=not progress or pool is not None, dynamic_ncols=True)
    with bar:
        for _ in folder.execute(items, run_one, pool=pool, task="eval_case", desc=f"{editor} on {dataset.name}",
                                bar=bar if pool is None else None, keep=functools.partial(keep_deltas, folder)):
            pass
    return folder.path


def named_split(path: Path, dataset, split: str | None, old: dict, new: dict) -> bool:
    """A run made before splits were named is the same run as one naming its split, when every case it holds
    belongs to that split: the parameters then differ only in the recorded split."""
    if old == new:
        return True
    if split is None or "split" in old.get("dataset", {}):
        return False
    unnamed = {**new, "dataset": {k: v for k, v in new["dataset"].items() if k != "split"}}
    from factlocate.datasets import splits

    held = {int(p.stem) for p in (path / "cases").glob("*.json")}
    return old == unnamed and held <= set(splits.case_ids(dataset, split))


def keep_deltas(folder: RunFolder, key, case: dict) -> dict:
    """Store a case's deltas beside its file as low-rank factors; the case records where, or why not."""
    from factlocate import deltas as deltas_mod

    found = case.pop(DELTAS, None)
    if found is not None:
        path = folder.path / "deltas" / f"{key}.safetensors"
        case["deltas"] = f"deltas/{key}.safetensors" if deltas_mod.save_low_rank(found, path) else "not low-rank"
    return case
