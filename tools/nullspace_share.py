"""How much of a batch's keys AlphaEdit's null space can write through, per edited layer.

    python -m tools.nullspace_share --model gemma-3-270m --n 100 --out docs/alphaedit-scan/gemma-3-270m-key-share.json

AlphaEdit's update only sees P k, the part of each edit key k inside the null space of C₀ (the directions
ordinary text barely uses). Where the edit keys lie mostly outside it, the update must be larger to write the
same residual through what is left. For the first `n` CounterFact requests (the sequential run's first batch
and the scan's), at the model's AlphaEdit settings (`--hparams`, `--layer`, `--set` as for `factlocate edit`):

* kept: directions in the null space, of d_mlp;
* key_share: ||P k||² / ||k||² over the batch's keys (MEMIT's keys, `memit.layer_keys`): median, min, max;
* key_norm: the median ||k||;
* trace_share: tr(P C₀) / tr(C₀), the share of ordinary text's key energy inside the null space, which an
  update can still reach.

Everything is read on the unedited weights. The JSON keeps the rows and the command.
"""
from __future__ import annotations

import argparse

import tools


def layer_row(cov, keys, threshold: float) -> dict:
    """The null space of `cov` at `threshold` and how much of `keys` [d_mlp, N] and of `cov` lies in it."""
    from factlocate.editors.keyvalue import alphaedit

    cov, keys = cov.double(), keys.double()
    p, kept = alphaedit.projection(cov, threshold)
    share = (p @ keys).norm(dim=0) ** 2 / keys.norm(dim=0) ** 2
    (_, _, trace_share), = alphaedit.spectrum(cov, [threshold])
    return {"kept": kept, "d_mlp": int(cov.shape[0]),
            "key_share": {"median": float(share.median()), "min": float(share.min()), "max": float(share.max())},
            "key_norm": float(keys.norm(dim=0).median()), "trace_share": trace_share}


def main(argv=None) -> int:
    from factlocate import datasets, load_model
    from factlocate.cli.common import add_hparams_args, hparams_overrides
    from factlocate.editors.keyvalue import alphaedit, context_templates, key_stats, memit
    from factlocate.evaluation import sequential
    from factlocate.io import write_json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--dataset", default="counterfact-sample")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--out", required=True)
    add_hparams_args(p)
    args = p.parse_args(argv)
    hp = alphaedit.HParams.load(args.model, hparams_overrides(args, alphaedit.HParams, alphaedit.NAME), args.hparams)
    records, _ = sequential.select(datasets.load(args.dataset, allow_download=False).records, args.n)
    requests = [r.request() for r in records]
    model = load_model(args.model)
    stats = key_stats.for_hparams(model, hp)
    templates = context_templates.context_templates(model, hp.context_template_lengths, seed=hp.seed)
    rows = []
    for layer in hp.layers:
        keys = memit.layer_keys(model, requests, templates, layer, hp.fact_token)  # [d_mlp, N]
        rows.append({"layer": layer, **layer_row(stats[layer].cov, keys, hp.nullspace_threshold)})
        share = rows[-1]["key_share"]
        print(f"layer {layer}: kept {rows[-1]['kept']}/{rows[-1]['d_mlp']}, keys' share {share['median']:.3f} "
              f"(min {share['min']:.3f}), C0's trace share {rows[-1]['trace_share']:.4f}", flush=True)
    write_json(args.out, {"command": tools.command("nullspace_share", argv), "model": args.model,
                          "n": len(requests), "threshold": hp.nullspace_threshold, "layers": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    tools.run("nullspace_share", main)
