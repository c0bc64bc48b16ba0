"""The sequential protocol: N edits in batches of B, each batch written on the weights the earlier ones left.

    factlocate eval --sequential --editor memit --batch 100 --edits 1000 --model smollm2-135m --out DIR

Records are taken in file order; a record whose subject and relation were already edited in
this run is skipped (and counted), so no fact is rewritten twice. For each batch:

1. the editor computes its deltas on the current weights (AlphaEdit also gets its running
   state: the null-space projections and the keys of every earlier batch). Context templates
   are generated once, from the unedited weights, and serve every batch, as in the reference
   ROME/MEMIT/AlphaEdit code (which caches them for the process);
2. the deltas stay applied;
3. every `log_every` batches (and after the last) the run records, in `batches/<k>.json`:
   the efficacy of that batch (ES on its rewrite prompts), the efficacy kept on the first
   batch's cases, neighbourhood success on the first `probe_cases` cases' neighbourhood
   prompts, perplexity on a fixed WikiText-2 slice, the Frobenius norm of every edited
   matrix, and the seconds the batch took;
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
`write_report` puts a summary table and plotly curves (efficacy, specificity, perplexity and
weight norm against the number of edits, one line per editor) beside the editor folders.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from factlocate import arch
from factlocate.editors import key_stats
from factlocate.errors import FactlocateError
from factlocate.identity import identity
from factlocate.io import atomic_path, read_json, write_json, write_text
from factlocate.metrics import counterfact as cf_metrics
from factlocate.metrics import summary as summ
from factlocate.metrics.perplexity import perplexity, wikitext_slice


@dataclass(frozen=True)
class SequentialParams:
    """The shape of a sequential run (part of params.json, checked on resume)."""

    edits: int
    batch: int
    log_every: int = 1  # batches between measurements (the last batch is always measured)
    probe_cases: int = 20  # neighbourhood success is read on this many cases' neighbourhood prompts
    ppl_tokens: int = 4096  # size of the WikiText-2 slice for perplexity
    gen_cases: int = 20  # GE is measured on this many edited cases at the end (0: none)
    max_length: int = 100  # generation length for GE, prompt included
    seed: int = 0  # generation seed (case c samples with seed + c)

    def __post_init__(self):
        for name in ("edits", "batch", "log_every", "probe_cases", "ppl_tokens"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise FactlocateError(f"--{name.replace('_', '-')} must be a positive integer")
        if self.gen_cases < 0:
            raise FactlocateError("--gen-cases must be >= 0")


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


# ---------------------------------------------------------------- state on disk


def _save_state(path: Path, originals: dict, model, editor_state, done: int, seconds: float) -> None:
    from safetensors.torch import save_file

    tensors = {f"delta.{name}": (arch.hf_parameter(model, name).detach().double() - w.double()).cpu()
               for name, w in originals.items()}
    if editor_state is not None:
        tensors.update({f"state.{k}": v.cpu().contiguous() for k, v in editor_state.tensors().items()})
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"batches_done": str(done), "edit_seconds": repr(seconds)})


def _load_state(path: Path, model, originals: dict, state_cls):
    """Apply the saved deltas to the freshly loaded weights; return (batches done, edit seconds, editor state)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        done, seconds = int(meta["batches_done"]), float(meta.get("edit_seconds", 0.0))
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    with torch.no_grad():
        for key, d in tensors.items():
            if key.startswith("delta."):
                name = key[len("delta."):]
                p = arch.hf_parameter(model, name)
                originals.setdefault(name, p.detach().clone())
                p.copy_((originals[name].double() + d.to(p.device)).to(p.dtype))
    state = {k[len("state."):]: v for k, v in tensors.items() if k.startswith("state.")}
    return done, seconds, (state_cls.from_tensors(state) if state and state_cls is not None else None)


def restore(model, originals: dict) -> None:
    """Put the original weights back, bit for bit."""
    with torch.no_grad():
        for name, w in originals.items():
            arch.hf_parameter(model, name).copy_(w)


# ---------------------------------------------------------------- measurements


def success(model, records, group: str) -> float | None:
    """Mean ES (group rewrite), or NS (group neighborhood) over records, from the shared-prompt scorer."""
    from factlocate import scoring

    if group == "rewrite":
        prompts = [r.rewrite_prompt for r in records]
        pairs = [[r.target_new, r.target_true] for r in records]
    else:
        prompts = [p for r in records for p in r.neighborhood_prompts]
        pairs = [[r.target_new, r.target_true] for r in records for _ in r.neighborhood_prompts]
    if not prompts:
        return None
    nll = scoring.shared_prompt_nll(model, prompts, pairs)
    wins = [(new < true) if group == "rewrite" else (true < new) for new, true in nll]
    return sum(wins) / len(wins)


def _measure(model, batch_records, first_batch, probe, ppl_rows, originals) -> dict:
    return {
        "batch_efficacy": success(model, batch_records, "rewrite"),
        "first_batch_efficacy": success(model, first_batch, "rewrite"),
        "neighbourhood": success(model, probe, "neighborhood"),
        "perplexity": perplexity(model, ppl_rows),
        "norms": {name: float(arch.hf_parameter(model, name).detach().double().norm()) for name in originals},
    }


# ---------------------------------------------------------------- the run


def run(model, dataset, records: list, editor: str, out: str | Path, params: SequentialParams,
        overrides: dict | None = None, hparams_file: str | None = None, progress: bool = True) -> Path:
    """Run (or resume) the sequential protocol for one editor; return its folder. Weights are restored after."""
    from factlocate.evaluation.runner import _check_params, editor_and_hparams

    module, hparams = editor_and_hparams(editor, identity(model).spec, overrides, hparams_file=hparams_file)
    if module is None:
        raise FactlocateError("the sequential protocol edits: choose an editor, not 'unedited'")
    chosen, skipped = select(records, params.edits)
    folder = Path(out) / editor
    _check_params(folder / "params.json", {
        "model": identity(model).spec, "editor": editor, "hparams": dataclasses.asdict(hparams),
        "dataset": {"kind": dataset.kind, "name": dataset.name, "digest": dataset.digest},
        "sequential": dataclasses.asdict(params), "case_ids": [r.case_id for r in chosen],
        "skipped_repeats": skipped,
    }, overwrite=False)
    finished = folder / "done.json"
    if finished.exists():  # complete: the scores are on disk, and the large state file is not needed again
        return folder
    accepted = inspect.signature(module.compute_edit).parameters
    takes_state = "state" in accepted
    fixed = {}
    if "templates" in accepted and getattr(hparams, "context_template_lengths", None) is not None:
        from factlocate.editors.context_templates import context_templates

        fixed["templates"] = context_templates(model, hparams.context_template_lengths, hparams.seed)
    state_cls = getattr(module, "State", None) if takes_state else None
    batches = [chosen[i : i + params.batch] for i in range(0, len(chosen), params.batch)]
    originals: dict[str, torch.Tensor] = {}
    state_path = folder / "state.safetensors"
    key_stats.for_hparams(model, hparams, progress)  # C₀ of the unedited weights, before a resumed run's edits
    done, total, editor_state = (_load_state(state_path, model, originals, state_cls) if state_path.exists()
                                 else (0, 0.0, None))
    probe, ppl_rows = chosen[: params.probe_cases], wikitext_slice(model, params.ppl_tokens)
    try:
        if done == 0:  # the unedited model, for the curves' first point
            write_json(folder / "batches" / "start.json", {"edits": 0, **_measure(model, [], batches[0], probe,
                                                                                   ppl_rows, {})})
        bar = tqdm(total=len(batches), initial=done, desc=f"{editor} sequential", unit="batch", disable=not progress)
        for k in range(done, len(batches)):
            start = time.perf_counter()
            options = {**fixed, **({"state": editor_state} if takes_state and editor_state is not None else {})}
            result = module.compute_edit(model, [r.request() for r in batches[k]], hparams, progress=False, **options)
            with torch.no_grad():
                for d in result.deltas:
                    p = arch.hf_parameter(model, d.name)
                    originals.setdefault(d.name, p.detach().clone())
                    p.add_(d.delta.to(p.device, p.dtype))
            editor_state = result.extra.get("state", editor_state)
            seconds = time.perf_counter() - start
            total += seconds
            if (k + 1) % params.log_every == 0 or k == len(batches) - 1:
                log = {"batch": k, "edits": sum(len(b) for b in batches[: k + 1]), "seconds": seconds,
                       "edit_seconds_total": total, "edit_timings": dict(result.timings),  # the editor's steps
                       **_measure(model, batches[k], batches[0], probe, ppl_rows, originals),
                       "original_norms": {n: float(w.double().norm()) for n, w in originals.items()}}
                if "kept_directions" in result.extra:
                    log["kept_directions"] = result.extra["kept_directions"]
                write_json(folder / "batches" / f"{k:05d}.json", log)
            _save_state(state_path, originals, model, editor_state, k + 1, total)
            bar.update()
        bar.close()
        _score_final(model, chosen, folder, params, progress)
    finally:
        restore(model, originals)
    _score_unedited(model, dataset, chosen, folder, params, progress)
    write_json(finished, {"batches": len(batches), "edit_seconds": total})
    return folder


def _score_final(model, chosen, folder: Path, params: SequentialParams, progress: bool) -> None:
    cases = folder / "final"
    todo = [r for r in chosen if not (cases / f"{r.case_id}.json").exists()]
    for i, r in enumerate(tqdm(todo, desc="final scores", disable=not progress or not todo, leave=False)):
        scores = cf_metrics.case_scores(cf_metrics.prompt_nlls(model, r))
        if chosen.index(r) < params.gen_cases and r.generation_prompts:
            gen = cf_metrics.generation_metrics(model, r, params.max_length, 5, params.seed + r.case_id)
            scores["GE"] = gen["ngram_entropy"]
        write_json(cases / f"{r.case_id}.json", {"case_id": r.case_id, "scores": scores})


@contextlib.contextmanager
def final_weights(model, folder: str | Path):
    """The model with a run's accumulated deltas applied, as the run left them; restored bit for bit after."""
    state_path = Path(folder) / "state.safetensors"
    if not state_path.exists():
        raise FactlocateError(f"{folder} holds no sequential state (state.safetensors)")
    originals: dict[str, torch.Tensor] = {}
    _load_state(state_path, model, originals, None)
    try:
        yield model
    finally:
        restore(model, originals)


def _score_unedited(model, dataset, chosen, folder: Path, params: SequentialParams, progress: bool) -> None:
    """The same scores on the unedited weights: the table's reference row (cached per model and dataset).

    GE as in `_score_final` (the first `gen_cases` cases, the same seeds); RS is not part of this protocol.
    """
    from factlocate.evaluation.runner import EvalParams, PreCache, evaluate

    cases = folder / "unedited"
    todo = [r for r in chosen if not (cases / f"{r.case_id}.json").exists()]
    plain = EvalParams(generation=False)
    sampled = EvalParams(max_length=params.max_length, top_k=5, seed=params.seed)
    caches = {p: PreCache(identity(model).key, dataset, p) for p in (plain, sampled)}
    for r in tqdm(todo, desc="unedited scores", disable=not progress or not todo, leave=False):
        how = sampled if chosen.index(r) < params.gen_cases and r.generation_prompts else plain
        pre = caches[how].get(r)
        if pre is None:
            pre = evaluate(model, r, how)
            caches[how].put(r, pre)
        scores = {k: v for k, v in pre["scores"].items() if k != "RS"}
        write_json(cases / f"{r.case_id}.json", {"case_id": r.case_id, "scores": scores})


def final_deltas(folder: str | Path) -> dict[str, torch.Tensor]:
    """The accumulated deltas of a sequential run (float64), by HF parameter name."""
    from safetensors import safe_open

    with safe_open(str(Path(folder) / "state.safetensors"), framework="pt") as f:
        return {k[len("delta."):]: f.get_tensor(k) for k in f.keys() if k.startswith("delta.")}


# ---------------------------------------------------------------- report


def load_runs(out: str | Path) -> list[dict]:
    runs = []
    for params_path in sorted(Path(out).glob("*/params.json")):
        params = read_json(params_path)
        if "sequential" not in params:
            continue
        folder = params_path.parent
        logs = [read_json(p) for p in sorted((folder / "batches").glob("*.json"))]
        logs.sort(key=lambda x: x["edits"])
        finals = [read_json(p)["scores"] for p in sorted((folder / "final").glob("*.json"))]
        unedited = [read_json(p)["scores"] for p in sorted((folder / "unedited").glob("*.json"))]
        runs.append({"name": folder.name, "params": params, "logs": logs, "final": finals, "unedited": unedited})
    return runs


def _baselines(runs: list[dict]) -> list[tuple[str, list[dict], dict | None]]:
    """One unedited row per distinct set of cases: (label, scores, start log)."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        if run["unedited"] and len(run["unedited"]) == len(run["params"]["case_ids"]):
            groups.setdefault(tuple(sorted(run["params"]["case_ids"])), []).append(run)
    out = []
    for group in groups.values():
        start = next((x for x in group[0]["logs"] if x["edits"] == 0), None)
        out.append((f"unedited ({', '.join(r['name'] for r in group)} cases)", group[0]["unedited"], start))
    return out


def write_report(out: str | Path) -> str:
    """summary.md / summary.json and curves.html for every sequential run under `out`."""
    runs = load_runs(out)
    if not runs:
        raise FactlocateError(f"{out} holds no sequential runs")
    lines = ["# Sequential editing", "",
             "Final metrics x100 over every edited case, on the weights after the last batch (95% CI); the "
             "unedited rows score the same cases on the weights as loaded.", "",
             "| editor | edits | batch | S | ES | PS | NS | EM | PM | NM | GE | perplexity (start -> end) | "
             "edit seconds |", "|---|---:|---:|" + "---:|" * 10]
    rows = []
    for run in runs:
        s = summ.summarize(run["final"], "counterfact")
        seq = run["params"]["sequential"]
        start = next((x for x in run["logs"] if x["edits"] == 0), None)
        end = run["logs"][-1] if run["logs"] else None
        ppl = f"{start['perplexity']:.2f} -> {end['perplexity']:.2f}" if start and end else "n/a"
        seconds = max((x.get("edit_seconds_total", 0.0) for x in run["logs"]), default=0.0)
        cells = [summ.cell(s[c]) for c in ("S", "ES", "PS", "NS", "EM", "PM", "NM", "GE")]
        lines.append(f"| {run['name']} | {len(run['final'])} | {seq['batch']} | " + " | ".join(cells) +
                     f" | {ppl} | {seconds:.0f} |")
        rows.append({"editor": run["name"], "edits": len(run["final"]), "batch": seq["batch"],
                     **{c: (None if s[c] is None else round(s[c][0], 4)) for c in ("S", "ES", "PS", "NS", "GE")}})
    for label, scores, start in _baselines(runs):
        s = summ.summarize(scores, "counterfact")
        cells = [summ.cell(s[c]) for c in ("S", "ES", "PS", "NS", "EM", "PM", "NM", "GE")]
        ppl = f"{start['perplexity']:.2f}" if start else "n/a"
        lines.append(f"| {label} | {len(scores)} | | " + " | ".join(cells) + f" | {ppl} | |")
        rows.append({"editor": label, "edits": 0, "cases": len(scores), "batch": None,
                     **{c: (None if s[c] is None else round(s[c][0], 4)) for c in ("S", "ES", "PS", "NS", "GE")}})
    for run in runs:
        lines += ["", *trajectory(run)]
    md = "\n".join(lines) + "\n"
    write_text(Path(out) / "summary.md", md)
    write_json(Path(out) / "summary.json", rows)
    write_text(Path(out) / "curves.html", curves(runs).to_html(include_plotlyjs=True, full_html=True))
    return md


def _norm_totals(logs: list[dict]) -> list[float | None]:
    """Sum of the edited matrices' Frobenius norms per log; the unedited log has none, so the originals stand in."""
    first = next((log["original_norms"] for log in logs if log.get("original_norms")), {})
    return [sum(n.values()) if n else None for n in (log.get("norms") or first for log in logs)]


def trajectory(run: dict) -> list[str]:
    """One run's logged batches as a markdown table: the damage curves' numbers, with each batch's edit time."""

    def fmt(value, spec):
        return "" if value is None else format(value, spec)

    lines = [f"## {run['name']}: after each logged batch", "",
             "| edits | edit s, latest batch | efficacy, latest batch | efficacy kept, batch 1 | neighbourhood (probe) | "
             "WikiText-2 ppl | sum of edited norms |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for log, norm in zip(run["logs"], _norm_totals(run["logs"])):
        cells = [str(log["edits"]), fmt(log.get("seconds"), ".0f"), fmt(log.get("batch_efficacy"), ".3f"),
                 fmt(log.get("first_batch_efficacy"), ".3f"), fmt(log.get("neighbourhood"), ".3f"),
                 fmt(log.get("perplexity"), ".2f"), fmt(norm, ".1f")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def curves(runs: list[dict]):
    """Efficacy, specificity, perplexity and total edited-matrix norm against the number of edits."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = [("batch_efficacy", "efficacy of the latest batch"), ("first_batch_efficacy", "efficacy kept on batch 1"),
              ("neighbourhood", "neighbourhood success (probe)"), ("perplexity", "WikiText-2 perplexity"),
              ("norm", "Frobenius norm of the edited matrices")]
    # Two rows of three, the sixth cell holding the legend: one row of five is wider than most screens.
    fig = make_subplots(rows=2, cols=3, subplot_titles=[t for _, t in panels], horizontal_spacing=0.08,
                        vertical_spacing=0.16)
    for j, run in enumerate(runs):
        logs = run["logs"]
        x = [log["edits"] for log in logs]
        color = f"hsl({(j * 97) % 360},60%,45%)"
        for i, (key, _) in enumerate(panels):
            row, col = divmod(i, 3)
            y = _norm_totals(logs) if key == "norm" else [log.get(key) for log in logs]
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=run["name"], legendgroup=run["name"],
                                     showlegend=i == 0, line=dict(color=color)), row=row + 1, col=col + 1)
            fig.update_xaxes(title_text="edits", row=row + 1, col=col + 1)
            if key not in ("perplexity", "norm"):  # rates on one scale, so that a 0.98-1.00 wobble looks like one
                fig.update_yaxes(range=[0, 1.05], row=row + 1, col=col + 1)
            else:  # logarithmic: a collapsed run (perplexity in the thousands) must not flatten the others
                fig.update_yaxes(type="log", row=row + 1, col=col + 1)
    fig.update_layout(title="Sequential editing: damage as edits accumulate", height=700, width=1150,
                      legend=dict(x=0.72, y=0.38, xanchor="left", yanchor="top"))
    return fig

