"""`factlocate tune`: an editor's hyperparameters chosen on dev cases, with the evidence (`evaluation/tune.py`)."""
from __future__ import annotations

import sys

from factlocate.cli.common import _value, parse_overrides
from factlocate.errors import FactlocateError


def register(sub) -> None:
    p = sub.add_parser("tune", help="search an editor's hyperparameters on dev cases; write a config with the evidence")
    p.add_argument("--model", default=None, help="model spec (default gemma-3-270m)")
    p.add_argument("--editor", required=True, help="a registered editor (factlocate models --editors)")
    p.add_argument("--dataset", default="counterfact-sample")
    p.add_argument("--split", default="dev", help="dev only: a search never sees the test cases")
    p.add_argument("--n", type=int, default=20, help="dev cases per point (default 20)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="values to try (repeat per hyperparameter; default: the shipped configs/tune/<editor>.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a hyperparameter every point shares (e.g. layer=1 on a model with no shipped config)")
    p.add_argument("--extend", type=int, default=None, metavar="K",
                   help="points tried beyond an edge the choice lies on, per hyperparameter (default 2; 0: none)")
    p.add_argument("--out", required=True, help="search folder (a rerun resumes; a larger --n extends it)")
    p.add_argument("--config", default=None, metavar="FILE", help="write the editor's config with the chosen values")
    p.set_defaults(func=run_tune)


def parse_grid(items: list[str]) -> dict:
    grid = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise FactlocateError(f"--grid expects KEY=V1,V2,..., got {item!r}")
        grid[key.strip()] = [_value(v) for v in values.split(",")]
    return grid


def run_tune(args) -> int:
    from factlocate import datasets
    from factlocate.evaluation import tune
    from factlocate.io import check_out_dir
    from factlocate.models import DEFAULT_MODEL, load_model

    if args.split != tune.SPLIT:
        raise FactlocateError("tune chooses on dev only: the test split is for reporting")
    spec = tune.TuneSpec(args.editor, parse_grid(args.grid) or tune.default_grid(args.editor), args.n,
                         parse_overrides(args.set), tune.EXTEND if args.extend is None else args.extend)
    check_out_dir(args.out)
    ds = datasets.load(args.dataset, allow_download=False)
    records = ds.split(tune.SPLIT)
    model = load_model(args.model or DEFAULT_MODEL)
    tune.run(model, ds, records, spec, args.out)
    result = tune.analyse(args.out)
    print(tune.markdown(result))
    if args.config:
        tune.write_config(args.out, args.config)
        print(f"factlocate: {result['chosen']}; wrote {args.config}", file=sys.stderr)
    return 0
