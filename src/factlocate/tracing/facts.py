"""Causal traces averaged over a fact set (the paper's Figure 2, Figure 3 and Appendix B).

Per fact: check the clean top-1 answer against the expected attribute (facts
the model gets wrong are skipped and counted), then trace hidden, mlp and attn
(and optionally a severed hidden trace at the last subject token). Each fact
is written to `DIR/cases/known_<id>.json` as soon as it is done, so a rerun
resumes. `summarize` then averages the grids over token buckets:

    first subject token, middle subject tokens, last subject token,
    first subsequent token, further tokens, last token

AIE (average indirect effect) = mean(score) - mean(low_score) per bucket and
layer; ATE (average total effect) = mean(high_score - low_score); 95% CI =
1.96 * std / sqrt(n facts), std over the bucket's pooled entries (numpy, ddof 0),
as in the original `average_causal_effects` notebook.
"""
from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from factlocate import tokens
from factlocate.errors import FactlocateError
from factlocate.datasets.known_facts import SHIPPED, load_facts
from factlocate.io import read_json, write_json, write_text
from factlocate.runfolder import PARAMS, RunFolder, plain
from factlocate.tracing.core import KINDS, GridSpec, RunSpec, clean_prediction
from factlocate.tracing.noise import resolve_noise
from factlocate.tracing.result import TraceResult
from factlocate.tracing.trace import result_key, trace_kinds

BUCKETS = ("first_subject", "middle_subject", "last_subject", "first_subsequent", "further", "last")


def answer_matches(answer: str, attribute: str) -> bool:
    """Whether the clean top-1 token starts the expected attribute (stripped, case-sensitive)."""
    a = answer.strip()
    return bool(a) and attribute.strip().startswith(a)


@dataclass(frozen=True)
class FactSetSpec:
    """Everything that shapes a fact-set run; saved as DIR/params.json and checked on resume."""

    model: str
    facts: str
    kinds: tuple[str, ...] = KINDS
    sever: tuple[str, ...] = ()  # also trace the hidden state at the last subject token with each of these severed
    window: int = 10
    run: RunSpec = RunSpec()

    def __post_init__(self):
        bad = [k for k in self.kinds if k not in KINDS]
        if bad or not self.kinds:
            raise FactlocateError(f"unknown kinds {bad or self.kinds}: use hidden, mlp, attn")
        object.__setattr__(self, "kinds", tuple(self.kinds))
        sever = self.sever or ()
        sever = tuple(s.strip() for s in sever.split(",")) if isinstance(sever, str) else tuple(sever)
        object.__setattr__(self, "sever", sever)
        if isinstance(self.run, dict):
            object.__setattr__(self, "run", RunSpec.from_dict(self.run))
        for kind in sever or (None,):
            GridSpec("hidden", self.window, kind)  # validates window and sever

    def grids(self) -> list[GridSpec]:
        return [GridSpec(k, self.window) for k in self.kinds]


def trace_fact(model, fact: dict, spec: FactSetSpec, noise, partners: list[dict] | None = None) -> dict:
    """One fact: skip it if the model's answer is wrong, else trace each kind (and the severed path)."""
    ids = tokens.encode(model, fact["prompt"])
    answer_id, _ = clean_prediction(model, ids)
    answer = model.tokenizer.decode([answer_id])
    case = {"known_id": fact["known_id"], "prompt": fact["prompt"], "subject": fact["subject"],
            "attribute": fact["attribute"], "answer": answer}
    if not answer_matches(answer, fact["attribute"]):
        return {**case, "correct_prediction": False}
    swap = dict(partners=partners, relation=fact.get("relation_id"))
    results = trace_kinds(model, fact["prompt"], fact["subject"], spec.grids(), spec.run, noise=noise, **swap)
    case["correct_prediction"] = True
    case["traces"] = {k: r.to_dict() for k, r in results.items()}
    if spec.sever:
        grids = [GridSpec("hidden", spec.window, kind) for kind in spec.sever]
        exact = dataclasses.replace(spec.run, method="exact")  # severed grids are always exact
        severed = trace_kinds(model, fact["prompt"], fact["subject"], grids, exact, noise=noise,
                              token_range="subject_last", **swap)
        case["severed"] = {g.sever: severed[result_key(g)].to_dict() for g in grids}
    return case


def trace_or_skip(model, fact: dict, spec: FactSetSpec, noise, partners: list[dict] | None = None) -> dict:
    """`trace_fact`, with a fact that cannot be traced (its subject not in its prompt, no STR partner) skipped."""
    try:
        return trace_fact(model, fact, spec, noise, partners)
    except FactlocateError as e:
        return {"known_id": fact["known_id"], "correct_prediction": False, "error": str(e)}


def _same_spec(old: dict, new: dict) -> bool:
    """The same run: equal specs (a folder keeps the noise it measured first)."""
    spec = dict(old.get("spec") or {})
    if spec.get("sever") is None or isinstance(spec.get("sever"), str):  # saved when one severed kind was a string
        spec["sever"] = [spec["sever"]] if spec.get("sever") else []
    spec["run"] = plain(asdict(RunSpec.from_dict(spec.get("run", {}))))  # fields added since: their defaults
    return spec == new["spec"]


def _open(model, spec: FactSetSpec, facts: list[dict], out: Path, pool=None) -> tuple[RunFolder, dict]:
    """The run's folder and its noise description (sigma measured once, kept in DIR/params.json)."""
    folder = RunFolder(out, prefix="known_")
    saved = folder.path / PARAMS
    if saved.exists():
        noise = read_json(saved)["noise"]
    elif pool is None:
        noise = resolve_noise(model, spec.run.noise, subjects=[f["subject"] for f in facts]).describe()
    else:
        subjects = [f["subject"] for f in facts]
        (_, noise), = pool.map("noise", [("noise", {"noise": spec.run.noise, "subjects": subjects})], desc="noise")
    return folder.open({"spec": asdict(spec), "noise": noise}, same=_same_spec), noise


def run_facts(model, out: str | Path, spec: FactSetSpec, n: int | None = None,
              facts: list[dict] | None = None, progress: bool = True, pool=None) -> dict:
    """Trace facts until `n` are traced (skipped ones do not count), resuming from DIR/cases.

    Facts are handed out in file order, as many at a time as could still be needed (n minus those
    traced), here or on the workers of a Ray `pool` (`factlocate.distributed`; `model` may then be
    None): either way exactly the facts a one-at-a-time run would trace are traced, and the summary
    averages the first `n` correctly answered facts in file order.
    """
    if n is not None and (not isinstance(n, int) or n < 1):
        raise FactlocateError(f"--n must be a positive number of facts to trace, got {n!r}")
    out = Path(out)
    facts = facts if facts is not None else load_facts(None if spec.facts == SHIPPED else spec.facts)
    folder, described = _open(model, spec, facts, out, pool)
    target = len(facts) if n is None else n
    run_one = None if pool is not None else tracer(model, spec, facts, described.get("sigma"))
    partners = facts if spec.facts != SHIPPED else None  # workers load the shipped ones
    bar = tqdm(total=target, desc="trace-facts", disable=not progress or pool is not None)
    while True:
        correct, missing = _progress(folder, facts, target)
        bar.n = min(correct, target)
        bar.refresh()
        if correct >= target or not missing:
            break
        items = [(f["known_id"], {"fact": f, "spec": asdict(spec), "sigma": described.get("sigma"),
                                  "partners": partners}) for f in missing]
        for _ in folder.execute(items, run_one, pool=pool, task="trace_fact", desc="trace-facts",
                                bar=bar if pool is None else None):
            pass
    bar.close()
    return summarize(out, [f["known_id"] for f in facts], n=target)


def tracer(model, spec: FactSetSpec, facts: list[dict], sigma):
    """How this process traces one item: the fact set's noise, measured once."""
    noise = resolve_noise(model, spec.run.noise, subjects=[f["subject"] for f in facts], sigma=sigma)
    return lambda item: trace_or_skip(model, item["fact"], spec, noise, facts)


def _progress(folder: RunFolder, facts: list[dict], target: int) -> tuple[int, list[dict]]:
    """(correct facts on disk, counted until the target or the first fact not on disk; the facts a one-at-a-time
    run would certainly trace next). Walking in file order and counting every missing fact as if it will be
    answered correctly, the missing facts met before the count reaches `target` are all needed."""
    correct, certain, missing = 0, 0, []
    for f in facts:
        if certain >= target:
            break
        if folder.has(f["known_id"]):
            hit = bool(folder.read(f["known_id"]).get("correct_prediction"))
            certain += hit
            correct += hit and not missing
        else:
            missing.append(f)
            certain += 1
    return correct, missing


def _bucket_rows(r: TraceResult) -> dict[str, np.ndarray]:
    """The original's buckets: each maps to [k, n_layers] rows of the grid."""
    s = np.asarray(r.scores)
    first_e, first_a = r.subject_range
    last_e, last_a = first_a - 1, len(s) - 1
    return {
        "first_subject": s[first_e][None],
        "middle_subject": s[first_e + 1 : last_e],
        "last_subject": s[last_e][None],
        "first_subsequent": s[first_a][None],
        "further": s[first_a + 1 : last_a],
        "last": s[last_a][None],
    }


def _ci(values: np.ndarray, n: int) -> np.ndarray:
    return 1.96 * values.std(axis=0) / np.sqrt(max(n, 1))


def summarize(out: str | Path, known_ids: list | None = None, n: int | None = None, write: bool = True) -> dict:
    """Average the saved cases of DIR: AIE per kind, bucket and layer, ATE, severed effects.

    With `known_ids` (the fact set in file order) and `n`, the cases are those of the
    first `n` correctly answered facts in that order, and the facts skipped before them.
    """
    out = Path(out)
    paths = sorted((out / "cases").glob("known_*.json"), key=lambda p: int(p.stem.split("_")[1]))
    cases = [read_json(p) for p in paths]
    if known_ids is not None:
        by_id = {c["known_id"]: c for c in cases}
        cases, correct = [], 0
        for i in known_ids:
            if i not in by_id or (n is not None and correct >= n):
                break
            cases.append(by_id[i])
            correct += bool(by_id[i].get("correct_prediction"))
    good = [c for c in cases if c.get("correct_prediction")]
    for c in good:  # cases saved when a run had one severed kind hold its result directly
        if "scores" in c.get("severed", {}):
            c["severed"] = {c["severed"]["grid"]["sever"]: c["severed"]}
    summary = {"n_traced": len(good), "n_skipped": len(cases) - len(good), "kinds": {}, "severed": None}
    if not good:
        if write:
            write_json(out / "summary.json", summary)
        return summary
    for kind in good[0]["traces"]:
        results = [TraceResult.from_dict(c["traces"][kind]) for c in good]
        low = np.array([r.low_score for r in results])
        high = np.array([r.high_score for r in results])
        pooled = {b: [] for b in BUCKETS}
        for r in results:
            for b, rows in _bucket_rows(r).items():
                if len(rows):
                    pooled[b].append(rows)
        n = len(results)
        buckets = {}
        for b in BUCKETS:
            if not pooled[b]:
                continue
            v = np.concatenate(pooled[b])
            buckets[b] = {"mean": v.mean(0), "aie": v.mean(0) - low.mean(), "ci95": _ci(v, n), "n_rows": len(v)}
        summary["kinds"][kind] = {
            "n": n, "low_score": low.mean(), "high_score": high.mean(),
            "ate": (high - low).mean(), "ate_ci95": _ci(high - low, n)[()], "buckets": buckets,
            "best_last_subject_layer": int(np.argmax(buckets["last_subject"]["aie"])),
            "best_last_subject_aie": float(np.max(buckets["last_subject"]["aie"])),
            "best_last_token_layer": int(np.argmax(buckets["last"]["aie"])),
            "best_last_token_aie": float(np.max(buckets["last"]["aie"])),
        }
    if all("severed" in c for c in good) and "hidden" in good[0]["traces"]:
        base = np.stack([_bucket_rows(TraceResult.from_dict(c["traces"]["hidden"]))["last_subject"][0] for c in good])
        low = np.array([c["traces"]["hidden"]["low_score"] for c in good])
        summary["severed"] = {"n": len(good), "aie_unsevered": base.mean(0) - low.mean(),
                              "ci95_unsevered": _ci(base, len(good)), "by_kind": {}}
        for kind in good[0]["severed"]:
            sev = np.stack([np.asarray(c["severed"][kind]["scores"])[0] for c in good])
            summary["severed"]["by_kind"][kind] = {"aie": sev.mean(0) - low.mean(), "ci95": _ci(sev, len(good))}
    if write:
        write_json(out / "summary.json", summary)
        write_text(out / "summary.csv", summary_csv(summary))
    return summary


def summary_csv(summary: dict) -> str:
    """One row per (kind, bucket, layer) with AIE and CI; ATE rows have an empty layer."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["kind", "bucket", "layer", "aie", "ci95", "mean_score", "n_facts"])
    for kind, k in summary["kinds"].items():
        w.writerow([kind, "ATE", "", f"{k['ate']:.6f}", f"{k['ate_ci95']:.6f}", f"{k['high_score']:.6f}", k["n"]])
        for b, v in k["buckets"].items():
            for layer, (a, c, m) in enumerate(zip(v["aie"], v["ci95"], v["mean"])):
                w.writerow([kind, b, layer, f"{a:.6f}", f"{c:.6f}", f"{m:.6f}", k["n"]])
    sev = summary.get("severed")
    if sev:
        rows = [("hidden_unsevered", sev["aie_unsevered"], sev["ci95_unsevered"])]
        rows += [(f"hidden_severed_{kind}", v["aie"], v["ci95"]) for kind, v in sev["by_kind"].items()]
        for label, aie, ci in rows:
            for layer, (a, c) in enumerate(zip(aie, ci)):
                w.writerow([label, "last_subject", layer, f"{a:.6f}", f"{c:.6f}", "", sev["n"]])
    return buf.getvalue()
