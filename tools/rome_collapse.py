"""Which ROME edits break the model: each request of a stretch of the sequential run, edited alone on the unedited weights.

    python -m tools.rome_collapse --model smollm2-135m --dataset counterfact-sample --start 50 --stop 60 \
        --out results/seq/smollm2-135m/rome-collapse.json

The sequential ROME run logs every 10 edits, so a jump in perplexity or weight norm names a stretch of 10
requests, not the request. Each request of that stretch (the run's selection, in its order) is edited alone,
twice: with the original code's keys (the plain prompt's k in the right vector) and with `consistent_keys`
(the template-averaged k̄ there too, the choice Gupta et al. 2024, "Rebuilding ROME", argue removes the
collapsing edits). Per request and variant it records:

* ‖ΔW‖: the update's Frobenius norm;
* k·u: the right vector's denominator (a small one inflates the update);
* cos(k, k̄): how far the plain prompt's key lies from the averaged one;
* ES: the request's rewrite-prompt success; ppl: perplexity on the sequential run's WikiText-2 slice.

Every edit is reverted before the next; the JSON keeps the rows and the command.
"""
from __future__ import annotations

import argparse

import tools


def main(argv=None) -> int:
    import torch
    from tqdm.auto import tqdm

    from factlocate import datasets, load_model
    from factlocate.editors.keyvalue import context_templates, rome
    from factlocate.evaluation import sequential
    from factlocate.io import write_json
    from factlocate.metrics.perplexity import perplexity, wikitext_slice
    from factlocate.metrics.success import success

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--dataset", default="counterfact-sample")
    p.add_argument("--start", type=int, required=True, help="first request (0-based, in the run's order)")
    p.add_argument("--stop", type=int, required=True, help="one past the last request")
    p.add_argument("--ppl-tokens", type=int, default=4096)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    ds = datasets.load(args.dataset, allow_download=False)
    records, _ = sequential.select(ds.records, args.stop)
    model = load_model(args.model)
    ppl_rows = wikitext_slice(model, args.ppl_tokens)
    base_ppl = perplexity(model, ppl_rows)
    hp = rome.load(args.model)
    templates = context_templates.context_templates(model, hp.context_template_lengths, hp.seed)  # both variants
    rows = []
    for consistent in (False, True):
        hp = rome.load(args.model, {"consistent_keys": consistent})
        for i in tqdm(range(args.start, args.stop), desc=f"consistent_keys={consistent}"):
            record = records[i]
            result = rome.compute_edit(model, record.request(), hp, templates=templates, progress=False)
            extra = result.extra["per_request"][0]
            k, k_bar, u = extra["k"], extra["k_bar"], extra["u"]
            with result.applied(model):
                row = {"request": i, "case_id": record.case_id, "subject": record.subject,
                       "consistent_keys": consistent,
                       "update_norm": float(result.deltas[0].delta.double().norm()),
                       "k_dot_u": float(torch.dot(k, u)),
                       "cos_k_kbar": float(torch.nn.functional.cosine_similarity(k, k_bar, dim=0)),
                       "ES": success(model, [record], "rewrite"),
                       "ppl": perplexity(model, ppl_rows)}
            rows.append(row)
            tqdm.write(str({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}))
    command = tools.command("rome_collapse", argv)
    write_json(args.out, {"command": command, "model": args.model, "dataset": ds.name, "unedited_ppl": base_ppl,
                          "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    tools.run("rome_collapse", main)
