"""The sequential protocol: N edits in batches of B, each batch written on the weights the earlier ones left.

    factlocate eval --sequential --editor memit --batch 100 --edits 1000 --model smollm2-135m --out DIR

Records are taken in file order; a record whose subject and relation were already edited in
this run is skipped (and counted), so no fact is rewritten twice. With `leave_out` ("DATASET:SPLIT",
`--leave-out counterfact-sample:dev`) a record sharing any text with that split's records is not
edited either (`leakage.outside`), so a run reports on none of the cases choices were made on; how
many were left out is in params.json. For each batch:

1. the editor computes its deltas on the current weights (AlphaEdit also gets its running
   state: the null-space projections and the keys of every earlier batch). Context templates
   are generated once, from the unedited weights, and serve every batch, as in the reference
   ROME/MEMIT/AlphaEdit code (which caches them for the process);
2. the deltas stay applied;
3. every `log_every` batches (and after the last) the run records, in `batches/<k>.json`:
   the efficacy of that batch (ES on its rewrite prompts), the efficacy kept on the first
   batch's cases, neighbourhood success on the first `probe_cases` cases' neighbourhood
   prompts, perplexity on a fixed WikiText-2 slice, the known facts still answered as
   before, success judged on the greedy answers of `gen_probe` of the batch's cases, the
   first batch's one-hop questions (with a `portability` file), the Frobenius norm of every
   edited matrix, and the seconds the batch took;
4. `state.safetensors` is rewritten atomically: the accumulated deltas (current minus
   original weights, float64, per edited parameter), the editor's state, and how many
   batches are done. A rerun loads it onto the freshly loaded model and carries on from
   the next batch, so an interrupted run ends with the same final deltas.

After the last batch every edited case is scored on the final weights (ES, EM, PS, PM, NS,
NM, S; GE on the first `gen_cases` cases), one resumable file per case under `final/`; the
weights are then restored and the same cases scored unedited (`unedited/`, the reference row,
cached per model and dataset so that editors on the same cases share it). `done.json` then marks
the run complete: a rerun returns at once, even where `state.safetensors` (tens of MB on a real
model, and not kept in git) is gone.
The editor is read from its declaration (`factlocate.editors.base.Editor`): a stateful editor's
`State` is carried from batch to batch and saved with the deltas (`state`), an editor that takes
context templates gets them once, and the key statistics its hyperparameters ask for are made
from the unedited weights before the first batch. The folder is a `factlocate.runfolder.RunFolder`.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from factlocate import arch
from factlocate.datasets import leakage
from factlocate.datasets.corpus import PERPLEXITY_CORPUS
from factlocate.editors.keyvalue import key_stats
from factlocate.errors import FactlocateError
from factlocate.evaluation.sequential import state
from factlocate.identity import identity
from factlocate.metrics import counterfact as cf_metrics
from factlocate.metrics.perplexity import perplexity, wikitext_slice
from factlocate.metrics.retention import RetentionCache, retention
from factlocate.metrics.success import success
from factlocate.runfolder import RunFolder


@dataclass(frozen=True)
class SequentialParams:
    """The shape of a sequential run (part of params.json, checked on resume)."""

    edits: int
    batch: int
    log_every: int = 1  # batches between measurements (the last batch is always measured)
    probe_cases: int = 20  # neighbourhood success is read on this many cases' neighbourhood prompts
    ppl_tokens: int = 4096  # size of the WikiText-2 slice for perplexity (its held-out end, never C0's text)
    gen_cases: int = 20  # GE is measured on this many edited cases at the end (0: none)
    max_length: int = 100  # generation length for GE, prompt included
    seed: int = 0  # generation seed (case c samples with seed + c)
    gen_probe: int = 10  # per logged batch: this many of its cases judged on their greedy answer (0: none)
    portability: str | None = None  # a one-hop file: the first batch's one-hop questions at every logged point
    leave_out: str | None = None  # "DATASET:SPLIT": records sharing a text with that split's are not edited

    def __post_init__(self):
        for name in ("edits", "batch", "log_every", "probe_cases", "ppl_tokens"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise FactlocateError(f"--{name.replace('_', '-')} must be a positive integer")
        if self.gen_cases < 0:
            raise FactlocateError("--gen-cases must be >= 0")
        if not isinstance(self.gen_probe, int) or self.gen_probe < 0:
            raise FactlocateError("--gen-probe must be >= 0")
        if self.leave_out is not None and self.leave_out.rpartition(":")[2] not in ("dev", "test"):
            raise FactlocateError(f"--leave-out expects DATASET:SPLIT (dev or test), got {self.leave_out!r}")


# A run logged before these fields existed measured neither.
BEFORE = {"gen_probe": 0, "portability": None, "leave_out": None}


def same_run(old: dict, new: dict) -> bool:
    """params.json of a run made before `BEFORE`'s fields existed: the same run when it equals `new` with them as
    they were then."""
    if old == new or "sequential" not in old:
        return old == new
    return {**old, "sequential": {**BEFORE, **old["sequential"]}} == new


def eligible(records: list, params: SequentialParams) -> tuple[list, int]:
    """The records a run may edit: all of them, or with `leave_out` those sharing no text with that split's
    records (the ones choices were made on), and how many were left out."""
    if params.leave_out is None:
        return list(records), 0
    from factlocate import datasets

    spec, _, split = params.leave_out.rpartition(":")
    return leakage.outside(records, datasets.load(spec, allow_download=False).split(split))


def select(records: list, n: int) -> tuple[list, int]:
    """The first `n` records, in file order, that rewrite a (subject, relation) not rewritten before."""
    seen, out, skipped = set(), [], 0
    for r in records:
        key = (r.subject.strip(), r.relation_id or r.prompt)
        if key in seen:
            skipped += 1
            continue
        seen.add(key)
        out.append(r)
        if len(out) == n:
            break
    if len(out) < n:
        raise FactlocateError(f"the dataset has only {len(out)} distinct facts, fewer than --edits {n}")
    return out, skipped


# ---------------------------------------------------------------- measurements


def _generated(model, records) -> float | None:
    """The share of `records` whose greedy answer to the rewrite prompt begins with the new target."""
    from factlocate.metrics import generated

    if not records:
        return None
    answers = generated.greedy_answers(model, [r.rewrite_prompt for r in records])
    return sum(generated.judge(a, r.target_new)["prefix"] for a, r in zip(answers, records)) / len(records)


def _portability(model, hops: list) -> dict | None:
    """KnowEdit's one-hop questions: mean teacher-forced token accuracy and generated (prefix) success."""
    from factlocate.metrics import portability

    if not hops:
        return None
    scores = [portability.score(model, h) for h in hops]
    return {"teacher_forced": sum(x["teacher_forced"] for x in scores) / len(scores),
            "generated": sum(x["generated"]["prefix"] for x in scores) / len(scores), "n": len(scores)}


def _measure(model, batch_records, first_batch, probe, ppl_rows, originals, reference, edited,
             gen_probe: int = 0, hops: list | None = None) -> dict:
    """One logged point. `reference` is the unedited model's known-fact answers; `edited` every record edited so
    far (their subjects' facts are left out of retention); `hops`, the first batch's one-hop questions."""
    kept = retention(model, reference, [(r.subject, r.relation_id) for r in edited])
    return {
        "batch_efficacy": success(model, batch_records, "rewrite"),
        "first_batch_efficacy": success(model, first_batch, "rewrite"),
        "neighbourhood": success(model, probe, "neighborhood"),
        "perplexity": perplexity(model, ppl_rows),
        "retention": kept["retained"], "retention_facts": kept["n_facts"],
        "generated_batch_efficacy": _generated(model, batch_records[:gen_probe]),
        "first_batch_portability": _portability(model, hops or []),
        "norms": {name: float(arch.hf_parameter(model, name).detach().double().norm()) for name in originals},
    }


def first_batch_hops(path: str | None, first_batch: list, limit: int) -> list:
    """The one-hop questions of the first batch's cases that have one (at most `limit`), from a portability file."""
    if not path:
        return []
    from factlocate.io import read_json
    from factlocate.metrics import portability

    hops = portability.one_hop(read_json(path), "counterfact")
    return [hops[r.case_id] for r in first_batch if r.case_id in hops][:limit]


# ---------------------------------------------------------------- the run


def run(model, dataset, records: list, editor: str, out: str | Path, params: SequentialParams,
        overrides: dict | None = None, hparams_file: str | None = None, progress: bool = True) -> Path:
    """Run (or resume) the sequential protocol for one editor; return its folder. Weights are restored after."""
    from factlocate.evaluation.runner import editor_and_hparams

    declared, hparams = editor_and_hparams(editor, identity(model).spec, overrides, hparams_file=hparams_file)
    if declared is None:
        raise FactlocateError("the sequential protocol edits: choose an editor, not 'unedited'")
    records, left_out = eligible(records, params)
    chosen, skipped = select(records, params.edits)
    folder = RunFolder(Path(out) / editor, group="final").open({
        "model": identity(model).spec, "editor": editor, "hparams": dataclasses.asdict(hparams),
        "dataset": {"kind": dataset.kind, "name": dataset.name, "digest": dataset.digest},
        "sequential": dataclasses.asdict(params), "case_ids": [r.case_id for r in chosen],
        "skipped_repeats": skipped, "perplexity_text": PERPLEXITY_CORPUS,
        **({"left_out": left_out} if params.leave_out else {}),
    }, same=same_run)
    if folder.done:  # complete: the scores are on disk, and the large state file is not needed again
        return folder.path
    fixed = {}
    if declared.takes("templates"):
        from factlocate.editors.keyvalue.context_templates import context_templates

        fixed["templates"] = context_templates(model, hparams.context_template_lengths, hparams.seed)
    batches = [chosen[i : i + params.batch] for i in range(0, len(chosen), params.batch)]
    originals: dict[str, torch.Tensor] = {}
    state_path = folder.path / state.FILE
    key_stats.for_hparams(model, hparams, progress)  # C₀ of the unedited weights, before a resumed run's edits
    reference = RetentionCache(model).answers()  # the unedited answers to the known facts, likewise (cached)
    done, total, editor_state = (state.load(state_path, model, originals, declared.State) if state_path.exists()
                                 else (0, 0.0, None))
    probe, ppl_rows = chosen[: params.probe_cases], wikitext_slice(model, params.ppl_tokens)
    hops = first_batch_hops(params.portability, batches[0], params.probe_cases)
    extra = dict(gen_probe=params.gen_probe, hops=hops)
    try:
        if done == 0:  # the unedited model, for the curves' first point
            folder.write("start", {"edits": 0, **_measure(model, [], batches[0], probe, ppl_rows, {}, reference, [],
                                                           **extra)}, "batches")
        bar = tqdm(total=len(batches), initial=done, desc=f"{editor} sequential", unit="batch", disable=not progress)
        for k in range(done, len(batches)):
            start = time.perf_counter()
            options = {**fixed, **({"state": editor_state} if declared.stateful and editor_state is not None else {})}
            result = declared.compute_edit(model, [r.request() for r in batches[k]], hparams, progress=False,
                                           **options)
            with torch.no_grad():
                for d in result.deltas:
                    p = arch.hf_parameter(model, d.name)
                    originals.setdefault(d.name, p.detach().clone())
                    p.add_(d.delta.to(p.device, p.dtype))
            if declared.stateful:
                editor_state = result.extra.get("state", editor_state)
            seconds = time.perf_counter() - start
            total += seconds
            if (k + 1) % params.log_every == 0 or k == len(batches) - 1:
                log = {"batch": k, "edits": sum(len(b) for b in batches[: k + 1]), "seconds": seconds,
                       "edit_seconds_total": total, "edit_timings": dict(result.timings),  # the editor's steps
                       **_measure(model, batches[k], batches[0], probe, ppl_rows, originals, reference,
                                  [r for b in batches[: k + 1] for r in b], **extra),
                       "original_norms": {n: float(w.double().norm()) for n, w in originals.items()}}
                if "kept_directions" in result.extra:
                    log["kept_directions"] = result.extra["kept_directions"]
                folder.write(f"{k:05d}", log, "batches")
            state.save(state_path, originals, model, editor_state, k + 1, total)
            bar.update()
        bar.close()
        _score_final(model, chosen, folder, params, progress)
    finally:
        state.restore(model, originals)
    _score_unedited(model, dataset, chosen, folder, params, progress)
    folder.finish({"batches": len(batches), "edit_seconds": total})
    return folder.path


def _score_final(model, chosen, folder: RunFolder, params: SequentialParams, progress: bool) -> None:
    todo = folder.todo([r.case_id for r in chosen], "final")
    for r in tqdm([r for r in chosen if r.case_id in set(todo)], desc="final scores",
                  disable=not progress or not todo, leave=False):
        scores = cf_metrics.case_scores(cf_metrics.prompt_nlls(model, r))
        if chosen.index(r) < params.gen_cases and r.generation_prompts:
            gen = cf_metrics.generation_metrics(model, r, params.max_length, 5, params.seed + r.case_id)
            scores["GE"] = gen["ngram_entropy"]
        folder.write(r.case_id, {"case_id": r.case_id, "scores": scores}, "final")


def _score_unedited(model, dataset, chosen, folder: RunFolder, params: SequentialParams, progress: bool) -> None:
    """The same scores on the unedited weights: the table's reference row (cached per model and dataset).

    GE as in `_score_final` (the first `gen_cases` cases, the same seeds); RS is not part of this protocol.
    """
    from factlocate.evaluation.runner import EvalParams, PreCache, evaluate

    todo = set(folder.todo([r.case_id for r in chosen], "unedited"))
    plain = EvalParams(generation=False)
    sampled = EvalParams(max_length=params.max_length, top_k=5, seed=params.seed)
    caches = {p: PreCache(identity(model).key, dataset, p) for p in (plain, sampled)}
    for r in tqdm([r for r in chosen if r.case_id in todo], desc="unedited scores", disable=not progress or not todo,
                  leave=False):
        how = sampled if chosen.index(r) < params.gen_cases and r.generation_prompts else plain
        pre = caches[how].get(r)
        if pre is None:
            pre = evaluate(model, r, how)
            caches[how].put(r, pre)
        scores = {k: v for k, v in pre["scores"].items() if k != "RS"}
        folder.write(r.case_id, {"case_id": r.case_id, "scores": scores}, "unedited")
