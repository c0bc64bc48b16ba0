"""Real runs behind notes/editors.md: every editor on the same CounterFact rewrites, and
MEMIT's batch edit against ROME applied one fact after another.

    python notes/editors_run.py table --model smollm2-135m --n 50 --out results/editors
    python notes/editors_run.py batch --model smollm2-135m --n 100 --out results/editors

`table` evaluates each editor case by case with the evaluation runner (resumable);
`batch` edits the first N facts at once with MEMIT and sequentially with ROME, then
scores every fact on the final weights. Both print markdown tables.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

DATA = "counterfact:/work/shared/data/counterfact_rome_format.json"
EDITORS = ("ft", "ft-l", "rome", "memit", "attn-edit", "ft-w", "kn")


def _hmean(xs):
    xs = [x for x in xs if x is not None]
    return len(xs) / sum(1 / x for x in xs) if xs and all(x > 0 for x in xs) else 0.0


def summarise(scores: list[dict]) -> dict:
    out = {}
    for k in ("ES", "PS", "NS", "EM", "PM", "NM"):
        vals = [s[k] for s in scores if s.get(k) is not None]
        out[k] = 100 * sum(vals) / len(vals) if vals else float("nan")
    out["S"] = _hmean([out["ES"], out["PS"], out["NS"]])
    out["n"] = len(scores)
    return out


def row(name, s, extra=""):
    return (f"| {name} | {s['n']} | {s['S']:.1f} | {s['ES']:.1f} | {s['PS']:.1f} | {s['NS']:.1f} | "
            f"{s['EM']:.1f} | {s['PM']:.1f} | {s['NM']:.1f} |{extra}")


HEADER = "| editor | n | S | ES | PS | NS | EM | PM | NM |{}\n|---|---|---|---|---|---|---|---|---|{}"


def table(args):
    from factlocate import datasets, load_model
    from factlocate.evaluation import runner

    model = load_model(args.model)
    ds = datasets.load(DATA)
    records = ds.select(0, args.n)
    params = runner.EvalParams(generation=False)
    lines = [HEADER.format(" s/edit |", "---|")]
    pre_done = False
    for editor in args.editors.split(","):
        t = time.time()
        try:
            folder = runner.run(model, ds, records, editor, args.out, params, progress=True)
        except Exception as e:  # keep going: one editor's failure must not stop the others
            print(f"{editor}: failed: {e!r}", flush=True)
            continue
        cases = [json.loads((folder / "cases" / f"{r.case_id}.json").read_text()) for r in records]
        if not pre_done:
            lines.append(row("unedited", summarise([c["pre"]["scores"] for c in cases]), " |"))
            pre_done = True
        secs = sum(c["time"].get("edit", 0) for c in cases) / len(cases)
        lines.append(row(editor, summarise([c["post"]["scores"] for c in cases]), f" {secs:.1f} |"))
        print("\n".join(lines), flush=True)
        print(f"{editor} took {time.time() - t:.0f} s", flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"table-{args.model}-{args.n}.md").write_text("\n".join(lines) + "\n")


def _scores(model, records):
    from factlocate.metrics import counterfact as cf

    return [cf.case_scores(cf.prompt_nlls(model, r)) for r in records]


def batch(args):
    from factlocate import datasets, load_model
    from factlocate import deltas as deltas_mod
    from factlocate.editors import get
    from factlocate.editors.base import load_hparams

    model = load_model(args.model)
    edited = datasets.load(DATA).select(0, args.n)
    requests = [r.request() for r in edited]
    records = edited[: args.score_n or args.n]  # every fact is edited; these are scored
    lines = [HEADER.format(" edit time (s) |", "---|")]
    pre = _scores(model, records)
    lines.append(row("unedited", summarise(pre), " |"))
    per_fact = {}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for name in args.editors.split(","):
        mod = get(name)
        overrides = {k: v for k, v in (kv.split("=", 1) for kv in args.set if kv.startswith(name + ":"))}
        overrides = {k.split(":", 1)[1]: json.loads(v) for k, v in overrides.items()}
        hp = load_hparams(mod.HParams, name, args.model, overrides)
        print(f"{name}: {hp}", flush=True)
        t = time.time()
        if name == "memit":
            result = mod.compute_edit(model, requests, hp, progress=True)
            applied = result.deltas
            deltas_mod.apply(model, applied)
            done = len(requests)
        else:  # one fact after another, each edit computed on the weights edited so far
            applied, done = [], 0
            for i, req in enumerate(requests):
                if time.time() - t > args.max_seconds:
                    break
                res = mod.compute_edit(model, [req], hp, progress=False)
                deltas_mod.apply(model, res.deltas)
                applied += res.deltas
                done = i + 1
                print(f"{name} sequential {done}/{len(requests)} {time.time() - t:.0f} s", flush=True)
        secs = time.time() - t
        try:
            per_fact[name] = _scores(model, records[:done])
        finally:
            deltas_mod.revert(model, applied)
        label = f"{name} ({'batch' if name == 'memit' else 'sequential'}, {done} edits)"
        lines.append(row(label, summarise(per_fact[name]), f" {secs:.0f} |"))
        print("\n".join(lines), flush=True)
    # the same facts for every editor: restrict to the facts the slowest editor reached
    k = min(len(v) for v in per_fact.values())
    if k < len(records):
        lines.append(f"| *on the first {k} facts only:* | | | | | | | | | |")
        lines.append(row("unedited", summarise(pre[:k]), " |"))
        for name, v in per_fact.items():
            lines.append(row(name, summarise(v[:k]), " |"))
    json.dump({"pre": pre, **per_fact}, open(Path(args.out) / f"batch-{args.model}-{args.n}.json", "w"))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"batch-{args.model}-{args.n}.md").write_text("\n".join(lines) + "\n")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["table", "batch"])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--editors", default=None)
    p.add_argument("--out", default="results/editors")
    p.add_argument("--max-seconds", type=float, default=float("inf"), help="batch: time budget of a sequential run")
    p.add_argument("--score-n", type=int, default=None, help="batch: score only the first K edited facts")
    p.add_argument("--set", action="append", default=[], metavar="EDITOR:KEY=JSON", help="batch: hparam override")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)")
    args = p.parse_args()
    args.editors = args.editors or (",".join(EDITORS) if args.what == "table" else "memit,rome")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    (table if args.what == "table" else batch)(args)


if __name__ == "__main__":
    main()
