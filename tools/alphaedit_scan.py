"""AlphaEdit's null-space threshold and L2 on one batch, against MEMIT: what each setting writes and what it breaks.

    python -m tools.alphaedit_scan --model smollm2-135m --n 100 --thresholds 5e-3,1e-2,2e-2 --l2 10,1,0.1 \
        --out results/alphaedit-scan/smollm2-135m.json

Both thresholds are absolute and the paper's values (2e-2, L2 10) were set on GPT-2 XL, GPT-J and Llama-3
keys, so a new model needs its own. The first `n` CounterFact requests (file order, as the sequential run takes
them) get their targets z once; they depend on the weights and the requests only. Each setting then writes
its update on the unedited weights, is measured and reverted:

* kept: directions in the null space per layer;
* ES: efficacy on the batch's rewrite prompts;
* NS: neighbourhood success on the first `probe` cases;
* ppl: perplexity on the sequential run's WikiText-2 slice;
* ‖ΔW‖: the update's Frobenius norm, summed over the layers.

MEMIT's own update from the same z's is the first row. The JSON keeps every row and the command's settings.

A model without an AlphaEdit config (the usual reason to scan) starts from its MEMIT config: AlphaEdit is
MEMIT plus the null space, so the layers and target settings carry over and only the two thresholds are new.
`--hparams FILE`, `--layer` and `--set KEY=VALUE` work as for `factlocate edit`.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time


def _measure(model, records, probe, ppl_rows) -> dict:
    from factlocate.evaluation.sequential import success
    from factlocate.metrics.perplexity import perplexity

    return {"ES": success(model, records, "rewrite"), "NS": success(model, probe, "neighborhood"),
            "ppl": perplexity(model, ppl_rows)}


def scan_hparams(model_spec: str, overrides: dict, path: str | None = None):
    """AlphaEdit's hyperparameters: `path`, else the model's AlphaEdit config, else its MEMIT config."""
    from factlocate.editors import alphaedit, memit

    if path is None and not alphaedit.HParams.path_for(model_spec).exists():
        memit_path = memit.HParams.path_for(model_spec)
        path = memit_path if memit_path.exists() else None
    return alphaedit.HParams.load(model_spec, overrides, path=path)


def memit_part(hp):
    """MEMIT's hyperparameters with AlphaEdit's shared fields: the reference row edits the same layers."""
    from factlocate.editors import memit

    return memit.HParams(**{f.name: getattr(hp, f.name) for f in dataclasses.fields(memit.HParams)})


def main(argv=None) -> int:
    from factlocate import datasets, load_model
    from factlocate import deltas as deltas_mod
    from factlocate.cli.common import add_hparams_args, hparams_overrides
    from factlocate.editors import alphaedit, context_templates, memit
    from factlocate.evaluation import sequential
    from factlocate.io import write_json
    from factlocate.metrics.perplexity import wikitext_slice

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--dataset", default="counterfact")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--probe", type=int, default=20)
    p.add_argument("--thresholds", default="5e-3,1e-2,2e-2")
    p.add_argument("--l2", default="10,1,0.1")
    p.add_argument("--out", required=True)
    add_hparams_args(p)
    args = p.parse_args(argv)
    thresholds = [float(x) for x in args.thresholds.split(",")]
    l2s = [float(x) for x in args.l2.split(",")]
    overrides = hparams_overrides(args, alphaedit.HParams, alphaedit.NAME)

    def hparams(**changes):
        return scan_hparams(args.model, {"nullspace_threshold": thresholds[0], **overrides, **changes}, args.hparams)

    ds = datasets.load(args.dataset, allow_download=False)
    records, _ = sequential.select(ds.records, args.n)
    requests = [r.request() for r in records]
    probe = records[: args.probe]
    model = load_model(args.model)
    hp = hparams()
    mhp = memit_part(hp)
    templates = context_templates.context_templates(model, hp.context_template_lengths, seed=hp.seed)
    ppl_rows = wikitext_slice(model, 4096)
    t = time.perf_counter()
    zs, _ = memit.compute_targets(model, requests, templates, hp)
    rows = [{"editor": "unedited", **_measure(model, records, probe, ppl_rows)}]
    print(f"targets for {len(requests)} requests: {time.perf_counter() - t:.0f} s", flush=True)

    def record(name: str, deltas, extra: dict) -> None:
        with deltas_mod.applied(model, deltas):
            row = {"editor": name, **extra, **_measure(model, records, probe, ppl_rows),
                   "update_norm": sum(float(d.delta.double().norm()) for d in deltas)}
        rows.append(row)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)

    record("memit", memit.spread(model, requests, templates, zs, mhp, memit.covariance_update(model, mhp))[0], {})
    for threshold in thresholds:
        base = alphaedit.initial_state(model, hparams(nullspace_threshold=threshold), progress=False)
        for l2 in l2s:
            shp = hparams(nullspace_threshold=threshold, L2=l2)
            deltas, _, _ = alphaedit.write_layers(model, requests, templates, zs, shp, base)
            record("alphaedit", deltas, {"threshold": threshold, "L2": l2, "kept": dict(base.kept)})
    command = "python -m tools.alphaedit_scan " + " ".join(sys.argv[1:] if argv is None else argv)
    shared = {k: v for k, v in dataclasses.asdict(hp).items() if k not in ("nullspace_threshold", "L2")}
    write_json(args.out, {"command": command, "model": args.model, "dataset": ds.name, "n": len(records),
                          "probe": len(probe), "hparams": shared, "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
