"""AlphaEdit's null-space threshold and L2 on one batch, against MEMIT: what each setting writes and what it breaks.

    python -m tools.alphaedit_scan --model smollm2-135m --split dev --n 100 --thresholds 5e-3,1e-2,2e-2 \
        --l2 10,1,0.1 --out docs/alphaedit-scan/smollm2-135m-dev.json

Both thresholds are absolute and the paper's values (2e-2, L2 10) were set on GPT-2 XL, GPT-J and Llama-3
keys, so a new model needs its own. The scan chooses, so it reads the dataset's `dev` split only: the first `n`
distinct dev requests (in the split's order) get their targets z once; they depend on the weights and the
requests only. Each setting then writes its update on the unedited weights, is measured and reverted:

* kept: directions in the null space per layer (a threshold below every singular value keeps none: AlphaEdit
  then refuses to edit, and its row, marked `empty_null_space`, measures the unedited weights);
* ES: efficacy on the batch's rewrite prompts;
* NS: neighbourhood success on the first `probe` cases;
* ppl: perplexity on the sequential run's WikiText-2 slice;
* ‖ΔW‖: the update's Frobenius norm, summed over the layers.

MEMIT's own update from the same z's, at MEMIT's λ for the model, is the first row. The JSON keeps every row,
the command's settings, the split and the dataset's digest, and the setting one stated rule chooses (`choose`).
A setting qualifies when it writes the batch about as well as MEMIT and keeps its neighbourhood (ES and NS each
at least MEMIT's minus 0.02). The paper's values stand where they qualify; otherwise the qualifying setting with
the lowest perplexity is chosen, and where none qualifies the paper's values stay, flagged.

A model without an AlphaEdit config (the usual reason to scan) starts from its MEMIT config: AlphaEdit is
MEMIT plus the null space, so the layers and target settings carry over and only the two thresholds are new.
`--hparams FILE`, `--layer` and `--set KEY=VALUE` work as for `factlocate edit`.

The scan resumes: the targets and each finished row are kept in OUT.partial/ until OUT is written, so a rerun
of the same command after a stop computes only the rows still missing.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import shutil
import time
from pathlib import Path

import tools


def _measure(model, records, probe, ppl_rows) -> dict:
    from factlocate.metrics.perplexity import perplexity
    from factlocate.metrics.success import success

    return {"ES": success(model, records, "rewrite"), "NS": success(model, probe, "neighborhood"),
            "ppl": perplexity(model, ppl_rows)}


def scan_hparams(model_spec: str, overrides: dict, path: str | None = None):
    """AlphaEdit's hyperparameters: `path`, else the model's AlphaEdit config, else its MEMIT config."""
    from factlocate.editors.keyvalue import alphaedit, memit

    if path is None and not alphaedit.HParams.path_for(model_spec).exists():
        memit_path = memit.HParams.path_for(model_spec)
        path = memit_path if memit_path.exists() else None
    return alphaedit.HParams.load(model_spec, overrides, path=path)


PER_ROW = ("nullspace_threshold", "L2", "mom2_update_weight")  # set per row, not shared by the rows' targets
PAPER = {"threshold": 2e-2, "L2": 10.0}  # the paper's values, for GPT-2 XL, GPT-J and Llama-3
TOLERANCE = 0.02  # how far below MEMIT's ES and NS a chosen setting may be


def choose(rows: list[dict], tolerance: float = TOLERANCE) -> dict:
    """The setting the config takes (see the module docstring): {"threshold", "L2", "qualified", "rule"}."""
    memit_row = next(r for r in rows if r["editor"] == "memit")
    ok = [r for r in rows if r["editor"] == "alphaedit" and not r.get("empty_null_space")
          and r["ES"] >= memit_row["ES"] - tolerance and r["NS"] >= memit_row["NS"] - tolerance]
    rule = (f"qualifies: ES and NS each at least MEMIT's minus {tolerance}; the paper's values where they qualify, "
            "else the qualifying setting of lowest perplexity, else the paper's values")
    setting = [{"threshold": r["threshold"], "L2": r["L2"]} for r in ok]
    if PAPER in setting or not ok:
        return {**PAPER, "qualified": len(ok), "paper_qualifies": PAPER in setting, "rule": rule}
    best = min(range(len(ok)), key=lambda i: ok[i]["ppl"])
    return {**setting[best], "qualified": len(ok), "paper_qualifies": False, "rule": rule}


def memit_part(hp, model_spec: str, overrides: dict):
    """MEMIT's hyperparameters for the reference row: AlphaEdit's layers and target settings, and MEMIT's own λ.

    AlphaEdit inherits `mom2_update_weight` from MEMIT but never reads it, so AlphaEdit's configs leave it out and
    `hp` then holds the dataclass default, not the model's λ. λ comes from `--set mom2_update_weight=…`, else from
    `hp` where something set it (a MEMIT config the scan started from, or an `--hparams` file), else from the
    model's MEMIT config."""
    from factlocate.editors.keyvalue import memit

    default = memit.HParams.__dataclass_fields__["mom2_update_weight"].default
    lam = overrides.get("mom2_update_weight", hp.mom2_update_weight)
    if "mom2_update_weight" not in overrides and lam == default:
        lam = memit.HParams.load(model_spec, {"layers": hp.layers}).mom2_update_weight
    shared = {f.name: getattr(hp, f.name) for f in dataclasses.fields(memit.HParams)}
    return memit.HParams(**{**shared, "mom2_update_weight": lam})


class Checkpoint:
    """OUT.partial/, a run folder (`factlocate.runfolder`): the targets (safetensors) and one item per row
    measured so far, so a stopped scan resumes. Its params.json holds what the targets and rows depend on; a
    rerun with anything else refuses to mix them. The folder is removed once OUT is written.
    """

    def __init__(self, out: Path, key: dict):
        from factlocate.runfolder import RunFolder

        self.run = RunFolder(out.with_name(out.name + ".partial"), group="rows").open(key)

    def targets(self, compute):
        from safetensors.torch import load_file, save_file

        from factlocate.io import atomic_path

        path = self.run.path / "targets.safetensors"
        if path.exists():
            return load_file(str(path))["zs"]
        zs = compute()
        with atomic_path(path) as tmp:
            save_file({"zs": zs.detach().cpu().contiguous()}, str(tmp))
        return zs

    def row(self, label: dict, measure) -> dict:
        """The row labelled `label` (editor, threshold, L2): from an earlier call, else `measure()`."""
        from factlocate.io import to_jsonable

        key = "-".join(f"{k}={v}" for k, v in to_jsonable(label).items())
        if self.run.has(key):
            return self.run.read(key)
        row = to_jsonable({**label, **measure()})
        self.run.write(key, row)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
        return row

    def remove(self) -> None:
        shutil.rmtree(self.run.path, ignore_errors=True)


def main(argv=None) -> int:
    from factlocate import datasets, load_model
    from factlocate import deltas as deltas_mod
    from factlocate.cli.common import add_hparams_args, hparams_overrides
    from factlocate.datasets.corpus import PERPLEXITY_CORPUS
    from factlocate.editors.keyvalue import alphaedit, context_templates, memit
    from factlocate.errors import FactlocateError
    from factlocate.evaluation import sequential
    from factlocate.io import write_json
    from factlocate.metrics.perplexity import wikitext_slice

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--dataset", default="counterfact-sample")
    p.add_argument("--split", default="dev", help="dev only: the scan chooses, so it never reads test cases")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--probe", type=int, default=20)
    p.add_argument("--thresholds", default="5e-3,1e-2,2e-2")
    p.add_argument("--l2", default="10,1,0.1")
    p.add_argument("--out", required=True)
    add_hparams_args(p)
    args = p.parse_args(argv)
    if args.split != "dev":
        raise FactlocateError("the scan chooses the threshold: it reads the dev split only")
    thresholds = [float(x) for x in args.thresholds.split(",")]
    l2s = [float(x) for x in args.l2.split(",")]
    overrides = hparams_overrides(args, alphaedit.HParams, alphaedit.NAME)

    def hparams(**changes):
        return scan_hparams(args.model, {"nullspace_threshold": thresholds[0], **overrides, **changes}, args.hparams)

    ds = datasets.load(args.dataset, allow_download=False)
    records, _ = sequential.select(ds.split(args.split), args.n)
    requests = [r.request() for r in records]
    probe = records[: args.probe]
    hp = hparams()
    mhp = memit_part(hp, args.model, overrides)
    shared = {k: v for k, v in dataclasses.asdict(hp).items() if k not in PER_ROW}
    saved = Checkpoint(Path(args.out), {"model": args.model, "dataset": ds.name, "digest": ds.digest,
                                        "split": args.split, "case_ids": [r.case_id for r in records],
                                        "probe": len(probe), "hparams": shared})
    model = load_model(args.model)
    templates = context_templates.context_templates(model, hp.context_template_lengths, seed=hp.seed)
    ppl_rows = wikitext_slice(model, 4096)
    t = time.perf_counter()
    zs = saved.targets(lambda: memit.compute_targets(model, requests, templates, hp)[0])
    print(f"targets for {len(requests)} requests: {time.perf_counter() - t:.0f} s", flush=True)

    def measure_with(deltas) -> dict:
        with deltas_mod.applied(model, deltas):
            return {**_measure(model, records, probe, ppl_rows),
                    "update_norm": sum(float(d.delta.double().norm()) for d in deltas)}

    rows = [saved.row({"editor": "unedited"}, lambda: _measure(model, records, probe, ppl_rows))]
    rows.append(saved.row({"editor": "memit", "mom2_update_weight": mhp.mom2_update_weight}, lambda: measure_with(
        memit.spread(model, requests, templates, zs, mhp, memit.covariance_update(model, mhp))[0])))
    bases = {}  # threshold -> its projections, made once and only if one of its rows is still to do

    def write(threshold: float, l2: float) -> dict:
        if threshold not in bases:
            try:
                bases[threshold] = alphaedit.initial_state(model, hparams(nullspace_threshold=threshold),
                                                           progress=False)
            except FactlocateError as e:  # an empty null space: AlphaEdit refuses to write (a zero update)
                print(f"threshold {threshold:g}: {e}", flush=True)
                bases[threshold] = None
        if bases[threshold] is None:
            return {"kept": {str(layer): 0 for layer in hp.layers}, "empty_null_space": True, **measure_with([])}
        deltas, _, _ = alphaedit.write_layers(model, requests, templates, zs,
                                              hparams(nullspace_threshold=threshold, L2=l2), bases[threshold])
        return {"kept": dict(bases[threshold].kept), **measure_with(deltas)}

    for threshold in thresholds:
        for l2 in l2s:
            rows.append(saved.row({"editor": "alphaedit", "threshold": threshold, "L2": l2},
                                  functools.partial(write, threshold, l2)))
    command = tools.command("alphaedit_scan", argv)
    write_json(args.out, {"command": command, "model": args.model, "dataset": ds.name, "digest": ds.digest,
                          "split": args.split, "case_ids": [r.case_id for r in records], "n": len(records),
                          "perplexity_text": PERPLEXITY_CORPUS, "stats_text": hp.stats_corpus,
                          "probe": len(probe), "hparams": shared, "rows": rows, "choice": choose(rows)})
    saved.remove()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    tools.run("alphaedit_scan", main)
