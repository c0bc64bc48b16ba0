"""Does localisation tell you where to edit? The data of Hase et al.'s test (NeurIPS 2023).

For each CounterFact case the model knows, two things are recorded at every swept layer:

- the tracing effect at the last subject token (`trace_case`): the true target's probability with the
  hidden state, or the MLP output over a window of 1 or 10 layers, restored in a noised run, minus the
  noised run's probability (Hase et al. trace the true target, whatever the model's top-1);
- the edit outcome of an editor writing the case at that layer (`sweep.run`, key at the last subject token):
  the case's ES, PS, NS and the magnitudes (`outcomes`).

    study = StudySpec(model="smollm2-135m", layers=(0, 1, 2, 4, 8), n=20)
    out = collect(model, dataset, dataset.split("dev"), study, "runs/where")   # resumable
    table = load_table(out)                    # one row per (case, layer), for `metrics.localisation`

"Knows" is CounterFact's own pre-edit check: the true target is more likely than the new one, teacher
forced. The top-1 rule Hase et al. use leaves 7 of the 169 dev cases on either embedded model (see
notes/where-to-edit.md), so it is recorded per case (`top1_known`) rather than used to select.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from factlocate.errors import FactlocateError
from factlocate.identity import identity
from factlocate.io import write_json
from factlocate.runfolder import RunFolder
from factlocate.tracing.core import GridSpec, RunSpec, clean_prediction
from factlocate.tracing.facts import answer_matches

TRACES = ("hidden", "mlp_w1", "mlp_w10")  # the hidden state; the MLP output over 1 layer and over 10 (the paper's)


def grids(n_layers: int) -> dict[str, GridSpec]:
    """The grids of `TRACES`; a model with fewer than 10 layers restores its whole depth for `mlp_w10`."""
    return {"hidden": GridSpec("hidden"), "mlp_w1": GridSpec("mlp", window=1),
            "mlp_w10": GridSpec("mlp", window=min(10, n_layers))}
OUTCOMES = ("ES", "PS", "NS", "S", "rewrite", "paraphrase")


@dataclass(frozen=True)
class StudySpec:
    """What one study runs; saved in OUT/traces/params.json and checked on resume."""

    model: str
    layers: tuple[int, ...]
    n: int  # known cases taken from the records, in order
    editor: str = "rome"
    samples: int = 10
    noise: str = "s3"
    seed: int = 1
    width: int = 1  # a range editor (MEMIT): this many layers centred on each swept layer

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        if not self.layers or len(set(self.layers)) != len(self.layers) or min(self.layers) < 0:
            raise FactlocateError(f"layers must be distinct non-negative layers, got {list(self.layers)}")
        if self.n < 1:
            raise FactlocateError(f"the study needs at least one case, got n={self.n}")
        if not isinstance(self.width, int) or self.width < 1:
            raise FactlocateError(f"width must be a positive number of layers, got {self.width!r}")

    def run_spec(self) -> RunSpec:
        return RunSpec(samples=self.samples, noise=self.noise, seed=self.seed)


def knows(model, records: list) -> list[dict]:
    """Per record: whether the model prefers the true target to the new one, and whether its top-1 is it."""
    from factlocate import tokens
    from factlocate.scoring import target_nll

    prompts = [r.rewrite_prompt for r in records]
    nll = target_nll(model, prompts * 2, [r.target_true for r in records] + [r.target_new for r in records])
    out = []
    for i, r in enumerate(records):
        top1, _ = clean_prediction(model, tokens.encode(model, prompts[i]))
        out.append({"case_id": r.case_id, "prefers_true": bool(nll[i] < nll[i + len(records)]),
                    "top1_known": answer_matches(model.tokenizer.decode([top1]), r.target_true)})
    return out


def known_cases(model, records: list, n: int) -> tuple[list, list[dict]]:
    """The first `n` records the model knows (prefers the true target), and the check for every record read."""
    checks = knows(model, records)
    chosen = [r for r, c in zip(records, checks) if c["prefers_true"]][:n]
    if len(chosen) < n:
        raise FactlocateError(f"only {len(chosen)} of {len(records)} records are known to the model; asked for {n}")
    return chosen, checks


def trace_case(model, record, study: StudySpec) -> dict:
    """The tracing effects of one case at the last subject token, per grid of `TRACES`, one value per layer."""
    from factlocate.tracing.trace import trace_kinds

    keyed = {}
    for name, grid in grids(int(model.cfg.n_layers)).items():  # one call per grid: results are keyed by kind
        result = trace_kinds(model, record.rewrite_prompt, record.subject, [grid], study.run_spec(),
                             token_range="subject_last", answer=record.target_true)
        keyed[name] = next(iter(result.values()))
    first = keyed["hidden"]
    return {"case_id": record.case_id, "high": first.high_score, "low": first.low_score,
            "effects": {k: [float(v) - first.low_score for v in r.scores[0]] for k, r in keyed.items()}}


def collect(model, dataset, records: list, study: StudySpec, out: str | Path, progress: bool = True,
            split: str | None = None, overrides: dict | None = None, edit: bool = True) -> Path:
    """Choose the known cases, trace each and (with `edit`) edit each at every layer; resumable. Returns `out`.

    `overrides` are the editor's hyperparameter overrides (`--set`), the layer excepted."""
    from factlocate.evaluation import sweep

    out = Path(out)
    n_layers = int(model.cfg.n_layers)
    if max(study.layers) >= n_layers:
        raise FactlocateError(f"layer {max(study.layers)} is past the model's {n_layers} layers")
    chosen, checks = known_cases(model, records, study.n)
    traced = {k: v for k, v in dataclasses.asdict(study).items() if k not in ("layers", "n", "editor", "width")}
    folder = RunFolder(out / "traces").open({  # a trace covers every layer: more cases or layers extend the run
        "trace": traced, "grids": {k: dataclasses.asdict(g) for k, g in grids(n_layers).items()},
        "model": identity(model).spec,
        "dataset": {"name": dataset.name, "digest": dataset.digest, **({"split": split} if split else {})}})
    write_json(out / "traces" / "knows.json", checks)
    items = [(str(r.case_id), r) for r in chosen if not folder.has(str(r.case_id))]
    for _ in folder.execute(items, lambda r: trace_case(model, r, study), desc="trace", progress=progress):
        pass
    if not edit:
        return out
    _stats(model, study, overrides or {})
    sweep.run(model, dataset, chosen, study.editor, list(study.layers), ["subject_last"], out / "sweep",
              overrides, progress=progress, split=split, width=study.width)
    return out


def config_width(editor: str, model_spec: str, overrides: dict) -> int:
    """A range editor's number of layers in its config (1 for a single-layer editor, or without a config)."""
    from factlocate import editors

    module = editors.get(editor)
    if "layers" not in {f.name for f in dataclasses.fields(module.HParams)}:
        return 1
    try:
        return len(module.load_hparams(model_spec, overrides).layers)
    except FactlocateError:
        return 1


def _stats(model, study: StudySpec, overrides: dict) -> None:
    """Every swept layer's key statistics in one pass over the corpus (the sweep would make one pass per layer)."""
    from factlocate.editors.keyvalue import key_stats
    from factlocate.evaluation import runner

    from factlocate import editors
    from factlocate.evaluation import sweep

    n_layers = int(model.cfg.n_layers)
    cell = sweep.cell_overrides(editors.get(study.editor), study.layers[0], "subject_last", overrides, study.width,
                                n_layers)
    _, hparams = runner.editor_and_hparams(study.editor, identity(model).spec, cell)
    request = hparams.stats_request() if hparams is not None else None
    if request is not None:  # every layer an edit writes: the swept ones, or each range centred on them
        from factlocate.tracing.layer_range import centred

        layers = sorted({j for layer in study.layers for j in centred(layer, study.width, n_layers)})
        key_stats.key_stats(model, layers, corpus=request.corpus, tokens_budget=request.tokens, dtype=request.dtype)
