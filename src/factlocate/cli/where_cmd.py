"""`factlocate localisation-vs-editing` (Hase et al.'s test) and `factlocate where-to-edit` (a layer, with evidence)."""
from __future__ import annotations

import sys

from factlocate.cli.common import parse_layers, parse_overrides
from factlocate.errors import FactlocateError


def register(sub) -> None:
    p = sub.add_parser("localisation-vs-editing",
                       help="trace and edit known dev cases at every layer; regress edit success on the trace")
    _study_args(p)
    p.add_argument("--analyse-only", action="store_true", help="only analyse a finished (or partial) run in --out")
    p.add_argument("--validate", default=None, metavar="DEV_OUT",
                   help="with --split test: score the layer rules fixed on the dev study in DEV_OUT on these facts")
    p.set_defaults(func=run_study)

    p = sub.add_parser("where-to-edit", help="recommend an edit layer from dev facts and write a config with the evidence")
    _study_args(p)
    p.add_argument("--strategy", choices=("trace", "sweep"), default="sweep",
                   help="trace: the layer of the largest mean MLP tracing effect (no edits); "
                        "sweep: the layer of the best S over the swept dev cases")
    p.add_argument("--config", required=True, metavar="FILE", help="write the editor's config with the chosen layer here")
    p.set_defaults(func=run_where)


def _study_args(p) -> None:
    p.add_argument("--model", default=None, help="model spec (default gemma-3-270m)")
    p.add_argument("--editor", default="rome", help="an editor with layer and fact_token hyperparameters")
    p.add_argument("--dataset", default="counterfact-sample")
    p.add_argument("--split", choices=("dev", "test"), default="dev", help="choose on dev (default)")
    p.add_argument("--n", type=int, default=60, help="known cases to study (default 60)")
    p.add_argument("--layers", default=None, help="layers to edit, e.g. 0-8,12,16 (default: every layer)")
    p.add_argument("--samples", type=int, default=10, help="noise samples per traced site")
    p.add_argument("--width", type=int, default=None,
                   help="a range editor (memit): layers edited, centred on each swept layer (default: its config's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="editor hyperparameter override")
    p.add_argument("--out", required=True, help="study folder (a rerun resumes; more --n or --layers extend it)")


def _collect(args, edit: bool = True):
    from factlocate import datasets
    from factlocate.evaluation import localisation
    from factlocate.io import check_out_dir
    from factlocate.models import DEFAULT_MODEL, load_model

    overrides = parse_overrides(args.set)
    if {"layer", "layers"} & set(overrides):
        raise FactlocateError("the study sets the layer itself: give layers with --layers, not --set layer")
    check_out_dir(args.out)
    ds = datasets.load(args.dataset, allow_download=False)
    records = ds.split(args.split)
    spec = args.model or DEFAULT_MODEL
    model = load_model(spec)
    layers = parse_layers(args.layers, int(model.cfg.n_layers)) or list(range(int(model.cfg.n_layers)))
    width = args.width or localisation.config_width(args.editor, spec, overrides)
    study = localisation.StudySpec(model=spec, layers=tuple(layers), n=args.n, editor=args.editor, samples=args.samples,
                                   width=width)
    localisation.collect(model, ds, records, study, args.out, split=args.split, overrides=overrides, edit=edit)
    return study


def run_study(args) -> int:
    if args.validate and args.split != "test":
        raise FactlocateError("--validate scores dev-chosen rules on test facts: give --split test")
    if not args.analyse_only:
        _collect(args)
    from factlocate.evaluation import where

    page = where.analyse(args.out)
    if args.validate:
        page += "\n" + where.validation_markdown(where.validate(args.validate, args.out))
    print(page)
    return 0


def run_where(args) -> int:
    from factlocate.evaluation import where

    if args.split != "dev":
        raise FactlocateError("where-to-edit chooses on dev only; run localisation-vs-editing --split test to "
                              "score a choice on test")
    _collect(args, edit=args.strategy == "sweep")  # the trace strategy needs no edits
    choice = where.recommend(args.out, args.strategy, args.editor, args.model, args.config, parse_overrides(args.set))
    print(f"factlocate: layer {choice['layer']} ({args.strategy}); wrote {args.config}", file=sys.stderr)
    return 0
