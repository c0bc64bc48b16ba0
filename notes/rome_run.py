"""ROME on CounterFact rewrites with an embedded model: efficacy, paraphrase and neighbourhood success.

    python notes/rome_run.py --model gemma-3-270m --data ../shared/data/counterfact_rome_format.json --n 25

Each case is edited on the unedited model (as in the paper's CounterFact table).
Success means, with length-normalised NLL from `factlocate.scoring.target_nll`:
  efficacy      NLL(new) < NLL(true) on the rewrite prompt
  paraphrase    the same on each paraphrase prompt
  neighbourhood NLL(true) < NLL(new) on each neighbourhood prompt (a different subject)
Results are written after every case to --out, and a rerun resumes.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from factlocate import load_model, scoring
from factlocate.editors import key_stats, rome
from factlocate.editors.base import EditRequest
from factlocate.generate import generate
from factlocate.io import read_json, to_jsonable, write_json


def success(model, prompts, new, true, want_new=True):
    nll = scoring.target_nll(model, prompts + prompts, [new] * len(prompts) + [true] * len(prompts))
    n_new, n_true = nll[: len(prompts)], nll[len(prompts):]
    return ((n_new < n_true) if want_new else (n_true < n_new)).float().tolist()


def scores(model, rec, req):
    new, true = req.target_new, req.target_true
    return {
        "efficacy": success(model, [req.text], new, true)[0],
        "paraphrase": success(model, rec["paraphrase_prompts"], new, true),
        "neighborhood": success(model, rec["neighborhood_prompts"], new, true, want_new=False),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--data", default="../shared/data/counterfact_rome_format.json")
    ap.add_argument("--n", type=int, default=25)
    ap.add_argument("--out", default=None)
    ap.add_argument("--hparams", nargs="*", default=[])
    args = ap.parse_args()
    import yaml

    overrides = {k: yaml.safe_load(v) for k, v in (x.split("=", 1) for x in args.hparams)}
    torch.manual_seed(0)
    run(load_model(args.model), args.model, rome.load(args.model, overrides), args.data, args.n, args.out)


def run(model, spec, hp, data, n, out=None):
    out_path = Path(out or f"results/rome/counterfact-{spec}.json")
    t = time.perf_counter()
    stats = key_stats.key_stats(model, hp.layer, hp.stats_corpus, hp.stats_tokens, hp.stats_dtype)
    stats_s = time.perf_counter() - t
    records = read_json(data)[:n]
    done = read_json(out_path) if out_path.exists() else {"cases": []}
    if done.get("hparams") not in (None, to_jsonable(rome.dataclasses.asdict(hp))):
        done = {"cases": []}  # different hyperparameters: start over
    seen = {c["case_id"] for c in done["cases"]}
    summary = {"model": spec, "hparams": rome.dataclasses.asdict(hp), "stats_tokens": stats.n_tokens,
               "stats_texts": stats.n_texts, "stats_seconds": stats_s, "cases": done["cases"]}
    for rec in records:
        if rec["case_id"] in seen:
            continue
        rr = rec["requested_rewrite"]
        req = EditRequest(rr["prompt"], rr["subject"], rr["target_new"]["str"], rr["target_true"]["str"],
                          rr["relation_id"], rec["case_id"])
        before = scores(model, rec, req)
        result = rome.compute_edit(model, req, hp, stats=stats)
        with result.applied(model):
            after = scores(model, rec, req)
        case = {"case_id": rec["case_id"], "subject": req.subject, "prompt": req.text, "target_new": req.target_new,
                "target_true": req.target_true, "before": before, "after": after,
                "probs_before": result.probs_before[0], "probs_after": result.probs_after[0],
                "timings": result.timings, "final_loss": result.extra["per_request"][0]["losses"][-1]}
        if not summary["cases"]:  # one before/after generation sample
            p = rec["generation_prompts"][0]
            case["generation"] = {"prompt": p, "before": generate(model, [p], max_length=40, seed=0)[0]}
            with result.applied(model):
                case["generation"]["after"] = generate(model, [p], max_length=40, seed=0)[0]
        summary["cases"].append(case)
        write_json(out_path, summary)
        print(f"case {rec['case_id']}: {req.text} -> {req.target_new}: efficacy {after['efficacy']:.0f}, "
              f"paraphrase {sum(after['paraphrase'])}/{len(after['paraphrase'])}, "
              f"neighbourhood {sum(after['neighborhood'])}/{len(after['neighborhood'])}, "
              f"v* {result.timings['v_star']:.1f}s", flush=True)
    summary["table"] = table(summary)
    write_json(out_path, summary)
    print(json.dumps(summary["table"], indent=1))
    return summary


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def table(summary) -> dict:
    cases = summary["cases"]
    out = {}
    for when in ("before", "after"):
        out[when] = {
            "efficacy": mean([c[when]["efficacy"] for c in cases]),
            "paraphrase": mean([mean(c[when]["paraphrase"]) for c in cases]),
            "neighborhood": mean([mean(c[when]["neighborhood"]) for c in cases]),
        }
    out["n"] = len(cases)
    out["seconds_per_edit"] = mean([sum(v for k, v in c["timings"].items() if k in ("k_bar", "v_star", "update")) for c in cases])
    return out


if __name__ == "__main__":
    main()
