"""`factlocate eval` (CounterFact / zsRE metrics of editors) and `factlocate sweep` (Figure 5)."""
from __future__ import annotations

import sys

from factlocate.cli.common import (add_hparams_args, add_ray_args, hparams_overrides, parse_layers, parse_overrides,
                                   ray_options)
from factlocate.errors import FactlocateError


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate editors on CounterFact or zsRE (Table 1 / Table 2 metrics)")
    p.add_argument("--dataset", default="counterfact-sample",
                   help="counterfact-sample (default: the shipped 400 records), zsre-sample, counterfact or zsre "
                        "(the canonical file, cached or downloaded; an error offline), counterfact:PATH or zsre:PATH")
    p.add_argument("--editor", default="rome",
                   help="editor name, or several separated by commas; 'unedited' evaluates the model only")
    p.add_argument("--model", default=None, help="model spec (default gemma-3-270m)")
    _selection_args(p)
    p.add_argument("--no-generation", action="store_true", help="skip GE and RS (no text generation: much faster)")
    p.add_argument("--max-length", type=int, default=100, help="generation length in tokens, prompt included")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    add_hparams_args(p)
    g = p.add_argument_group("sequential editing (--sequential)")
    g.add_argument("--sequential", action="store_true",
                   help="make --edits edits in batches of --batch, each batch on the weights the earlier ones left")
    g.add_argument("--edits", type=int, default=100, help="number of edits (records from --start, in file order)")
    g.add_argument("--batch", type=int, default=1, help="requests per batch")
    g.add_argument("--log-every", type=int, default=1, help="batches between measurements")
    g.add_argument("--probe-cases", type=int, default=20, help="cases whose neighbourhood is read after each batch")
    g.add_argument("--gen-cases", type=int, default=20, help="edited cases whose generations give GE at the end")
    g.add_argument("--gen-probe", type=int, default=10,
                   help="cases of each logged batch judged on their greedy answer (0: none)")
    g.add_argument("--portability", default=None, metavar="FILE",
                   help="a one-hop file: the first batch's one-hop questions at every logged point")
    g.add_argument("--leave-out", default=None, metavar="DATASET:SPLIT",
                   help="edit no record sharing a text with that split's records, e.g. counterfact-sample:dev "
                        "(the cases choices were made on)")
    g.add_argument("--export", default=None, metavar="DIR",
                   help="after the run, save the model with its final deltas as a Hugging Face folder "
                        "(DIR/<editor> when several editors run)")
    p.add_argument("--overwrite", action="store_true", help="discard earlier results in the editor's folder")
    add_ray_args(p)
    p.add_argument("--no-figures", action="store_true", help="skip distributions.html")
    p.add_argument("--out", required=True, help="output folder (a rerun resumes)")
    p.set_defaults(func=run_eval)

    p = sub.add_parser("eval-report", help="rewrite summary.csv, summary.md and figures of an eval folder")
    p.add_argument("out")
    p.add_argument("--no-figures", action="store_true")
    p.set_defaults(func=run_report)

    p = sub.add_parser("eval-rescore", help="score finished eval runs again from their stored deltas (new columns)")
    p.add_argument("runs", nargs="+", metavar="DIR", help="editor folders of eval runs (OUT/<editor>)")
    p.add_argument("--metric", choices=sorted(RESCORE_METRICS), default="generated",
                   help="generated: success judged on greedy generations (metrics.generated); portability: "
                        "KnowEdit's one-hop questions from --portability FILE (metrics.portability)")
    p.add_argument("--portability", default=None, metavar="FILE",
                   help="the one-hop file (counterfact_portability_gpt4.json or zsre_mend_eval_portability_gpt4.json)")
    p.add_argument("--model", default=None, help="the model the runs were made on (default gemma-3-270m)")
    p.set_defaults(func=run_rescore)

    p = sub.add_parser("sweep", help="edit at every layer and token type and plot ES, PS, NS, S (Figure 5)")
    p.add_argument("--editor", default="rome", help="an editor with layer and fact_token hyperparameters")
    p.add_argument("--model", default=None)
    p.add_argument("--dataset", default="counterfact-sample", help="as for eval --dataset")
    p.add_argument("--tokens", default=None, help="fact-token rules, comma-separated (default: all four)")
    p.add_argument("--other-every", type=int, default=1, metavar="K",
                   help="the rules other than the last subject token at every K-th listed layer only (default 1)")
    p.add_argument("--other-cases", type=int, default=None, metavar="N",
                   help="the rules other than the last subject token on the first N cases only (default: all)")
    p.add_argument("--known", action="store_true",
                   help="take the first --n records the model knows (true target above the new one, teacher-forced)")
    _selection_args(p, default_n=10)
    add_hparams_args(p, layer_help="layers to sweep, e.g. 0-17 or 2,5,8 (default: every layer)")
    add_ray_args(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=run_sweep)


def _selection_args(p, default_n: int = 100) -> None:
    p.add_argument("--start", type=int, default=0, help="first record (in file order)")
    p.add_argument("--n", type=int, default=default_n, help=f"number of records (default {default_n})")
    p.add_argument("--cases", default=None, help="file of case ids (JSON list or one per line) instead of --start/--n")
    p.add_argument("--split", choices=["dev", "test"], default=None,
                   help="take the records of a shipped split (choose on dev, report on test); --start/--n within it")


def _records(args):
    from factlocate import datasets

    ds = datasets.load(args.dataset)
    if ds.note:
        print(f"factlocate: {ds.note}", file=sys.stderr)
    if args.split:
        if args.cases:
            raise FactlocateError("give --split or --cases, not both")
        records = ds.split(args.split)
        if args.start >= len(records):
            raise FactlocateError(f"--start {args.start} is past the end of the {args.split} split ({len(records)})")
        return ds, records[args.start: None if args.n is None else args.start + args.n]
    ids = datasets.read_case_ids(args.cases) if args.cases else None
    return ds, ds.select(args.start, args.n, ids)


def _all_records(args, ds) -> list:
    """Every record --known may choose from: the split's (or the file's) from --start on."""
    if args.cases:
        raise FactlocateError("--known chooses the cases itself: give --split or --start, not --cases")
    return (ds.split(args.split) if args.split else ds.records)[args.start:]


def run_eval(args) -> int:
    from factlocate import editors
    from factlocate.evaluation import report, runner
    from factlocate.io import check_out_dir
    from factlocate.models import DEFAULT_MODEL, load_model

    names = [e.strip() for e in args.editor.split(",") if e.strip()]
    if not names:
        raise FactlocateError("--editor is empty")
    tuned = args.set or args.layers or args.hparams
    if tuned and len(names) > 1:
        raise FactlocateError("--set, --layer and --hparams apply to one editor: run the editors separately")
    overrides = {}
    if tuned and names[0] != runner.UNEDITED:
        overrides = hparams_overrides(args, editors.get(names[0]).HParams, names[0])
    params = runner.EvalParams(
        generation=not args.no_generation, max_length=args.max_length, top_k=args.top_k, seed=args.seed
    )
    spec = args.model or DEFAULT_MODEL
    for name in names:  # fail on an unknown editor or bad hyperparameters before loading data or the model
        runner.editor_and_hparams(name, spec, overrides, hparams_file=args.hparams)
    check_out_dir(args.out)
    if args.sequential:
        return _run_sequential(args, names, overrides)
    ds, records = _records(args)
    reference = None
    if params.generation and ds.kind == "counterfact":
        from factlocate.metrics.consistency import canonical_reference

        reference, reason = canonical_reference()
        if reference is None:
            print(f"factlocate: RS is unavailable ({reason})", file=sys.stderr)
    options = ray_options(args)
    if options is None:
        model = load_model(spec)
        for name in names:
            runner.run(model, ds, records, name, args.out, params, overrides, reference, overwrite=args.overwrite,
                       hparams_file=args.hparams, split=args.split)
    else:
        from factlocate.distributed import workers

        with workers(options, spec) as pool:
            for name in names:
                runner.run(None, ds, records, name, args.out, params, overrides, reference,
                           overwrite=args.overwrite, hparams_file=args.hparams, pool=pool, model_spec=spec,
                           split=args.split)
    print(report.write_summary(args.out, figures=not args.no_figures))
    print(f"wrote {args.out}/summary.md, summary.csv" + ("" if args.no_figures else ", distributions.html"))
    return 0


def _run_sequential(args, names: list[str], overrides: dict) -> int:
    from pathlib import Path

    from factlocate import datasets, deltas
    from factlocate.evaluation import sequential
    from factlocate.models import DEFAULT_MODEL, load_model

    if args.overwrite:
        raise FactlocateError("--overwrite is not supported with --sequential: use another --out")
    params = sequential.SequentialParams(
        edits=args.edits, batch=args.batch, log_every=args.log_every, probe_cases=args.probe_cases,
        gen_cases=0 if args.no_generation else args.gen_cases, max_length=args.max_length, seed=args.seed,
        gen_probe=args.gen_probe, portability=args.portability, leave_out=args.leave_out)
    ds = datasets.load(args.dataset)
    if ds.kind != "counterfact":
        raise FactlocateError("--sequential uses CounterFact records: pass --dataset counterfact-sample, counterfact or counterfact:PATH")
    if ds.note:
        print(f"factlocate: {ds.note}", file=sys.stderr)
    records = (ds.split(args.split) if args.split else ds.records)[args.start:]
    sequential.select(sequential.eligible(records, params)[0], params.edits)  # too few facts: fail before loading
    model = load_model(args.model or DEFAULT_MODEL)
    for name in names:
        folder = sequential.run(model, ds, records, name, args.out, params, overrides, args.hparams)
        if args.export:
            with sequential.final_weights(model, folder):
                where = deltas.export(model, Path(args.export) / name if len(names) > 1 else args.export)
            print(f"exported {name}'s edited model to {where}")
    print(sequential.write_report(args.out))
    print(f"wrote {args.out}/summary.md, summary.json, curves.html")
    return 0


RESCORE_METRICS = {"generated": "factlocate.metrics.generated:record_scores",
                   "portability": None}  # made from --portability FILE (metrics.portability.record_metric)


def run_rescore(args) -> int:
    import importlib
    from pathlib import Path

    from factlocate import datasets
    from factlocate.evaluation import rescore
    from factlocate.io import read_json
    from factlocate.models import DEFAULT_MODEL, load_model

    spec = args.model or DEFAULT_MODEL
    runs = []
    for folder in args.runs:
        params_path = Path(folder) / "params.json"
        if not params_path.is_file():
            raise FactlocateError(f"{folder} holds no eval run (no params.json): give OUT/<editor> folders")
        params = read_json(params_path)
        if params["model"] != spec:
            raise FactlocateError(f"{folder} was made on {params['model']}, not {spec}: pass --model")
        runs.append((folder, params))
    if args.metric == "portability":
        from factlocate.metrics import portability

        if not args.portability:
            raise FactlocateError("--metric portability needs --portability FILE (a KnowEdit one-hop file)")
        kinds = {p["dataset"]["kind"] for _, p in runs}
        if len(kinds) != 1:
            raise FactlocateError("rescore runs of one dataset kind at a time for portability")
        kind = kinds.pop()
        metric = portability.record_metric(portability.one_hop(read_json(args.portability), kind), kind)
    else:
        module, _, name = RESCORE_METRICS[args.metric].partition(":")
        metric = getattr(importlib.import_module(module), name)
    model = load_model(spec)
    for folder, params in runs:
        ds = datasets.load(params["dataset"]["name"], allow_download=False)
        if ds.digest != params["dataset"]["digest"]:
            raise FactlocateError(f"{folder} was made on {params['dataset']['name']} with digest "
                                  f"{params['dataset']['digest']}; the file here has {ds.digest}")
        done = rescore.rescore(model, ds, folder, args.metric, metric)
        print(f"{folder}: {len(done['scored'])} cases scored into extra-{args.metric}/, "
              f"{len(done['skipped'])} without stored deltas, {len(done['unscorable'])} the metric does not cover")
    return 0


def run_report(args) -> int:
    from factlocate.evaluation import report

    print(report.write_summary(args.out, figures=not args.no_figures))
    return 0


def run_sweep(args) -> int:
    from factlocate import editors
    from factlocate.evaluation import sweep
    from factlocate.io import check_out_dir
    from factlocate.models import DEFAULT_MODEL, load_model

    overrides = parse_overrides(args.set)
    sweep.cell_overrides(editors.get(args.editor), 0, "subject_last", overrides)  # fail before loading
    check_out_dir(args.out)
    ds, records = _records(args)
    token_rules = [t.strip() for t in args.tokens.split(",")] if args.tokens else None
    spec = args.model or DEFAULT_MODEL
    options = ray_options(args)
    if args.known and options is not None:
        raise FactlocateError("--known reads the model here: run it without --ray")
    if options is None:
        model = load_model(spec)
        n_layers = int(model.cfg.n_layers)
        layers = parse_layers(args.layers, n_layers) or list(range(n_layers))
        if args.known:
            from factlocate.evaluation import localisation

            records, _ = localisation.known_cases(model, _all_records(args, ds), args.n)
        result = sweep.run(model, ds, records, args.editor, layers, token_rules, args.out, overrides,
                           hparams_file=args.hparams, split=args.split,
                           cells=sweep.grid_cells(layers, token_rules, args.other_every), other_cases=args.other_cases)
    else:
        from factlocate.distributed import workers

        with workers(options, spec) as pool:
            n_layers = pool.info()["n_layers"]
            layers = parse_layers(args.layers, n_layers) or list(range(n_layers))
            result = sweep.run(None, ds, records, args.editor, layers, token_rules, args.out, overrides,
                               hparams_file=args.hparams, pool=pool, model_spec=spec, split=args.split,
                               cells=sweep.grid_cells(layers, token_rules, args.other_every),
                               other_cases=args.other_cases)
    print(result)
    print(f"wrote {args.out}/sweep.md, sweep.csv, sweep.html")
    return 0
