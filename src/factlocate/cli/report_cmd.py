"""`factlocate report`: the paper's figures and tables remade on one model, on one page."""
from __future__ import annotations

from factlocate.errors import FactlocateError


def register(sub) -> None:
    p = sub.add_parser("report", help="remake the paper's figures and tables on one model: DIR/index.html "
                                      "(resumable; a rerun only fills what is missing)")
    p.add_argument("--model", default=None, help="model spec (default gemma-3-270m)")
    p.add_argument("--settings", default=None, metavar="FILE",
                   help="a committed settings file (configs/report/<model>.yaml) instead of the flags below; the "
                        "page shows the file and this command")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--facts", type=int, default=100, help="known facts for Figures 2 and 3 (default 100)")
    p.add_argument("--samples", type=int, default=10, help="noise samples per trace (default 10)")
    p.add_argument("--sweep-cases", type=int, default=10, help="CounterFact cases per sweep cell (default 10)")
    p.add_argument("--sweep-layers", default=None, help="layers for Figure 5, e.g. 0-29 or 0,3,6 (default every)")
    p.add_argument("--eval-cases", type=int, default=100, help="cases per editor in Tables 1 and 2 (default 100)")
    p.add_argument("--no-generation", action="store_true", help="Table 2 without GE (much faster)")
    p.add_argument("--counterfact", default="counterfact-sample", help="CounterFact spec, as for eval --dataset")
    p.add_argument("--zsre", default="zsre-sample", help="zsRE spec, as for eval --dataset")
    p.add_argument("--sequential-dataset", default="counterfact-sample",
                   help="CounterFact spec with enough records for the sequential runs (1,000 edits)")
    p.add_argument("--sequential", default=None,
                   help="sequential runs as editor:edits:batch:log_every,... (default memit:1000:100:1,"
                        "alphaedit:1000:100:1,rome:200:1:10)")
    p.add_argument("--editors", default=None,
                   help="only these editors in Tables 1-2 and Figure 6, e.g. mend,mend-cf,mend-zsre (their results "
                        "stay for a later run with every editor; default: all)")
    p.add_argument("--only", default=None,
                   help="compute only these sections, e.g. fig2 or fig2,fig5 (the page is still written whole; "
                        "sections: fig2, fig1, fig5, training, table1, table2, fig6, sequential)")
    p.add_argument("--verify", type=int, default=None, metavar="K",
                   help="instead of building: re-run K random cases or facts of every section of the page in --out, "
                        "print each section's largest difference (exit 1 if one exceeds 1e-4)")
    p.add_argument("--findings", action="store_true",
                   help="instead of building: test the paper's findings on the page in --out (no model needed); "
                        "writes DIR/findings.json and findings.md")
    p.add_argument("--verify-seed", type=int, default=0, help="seed of --verify's choice of cases")
    p.set_defaults(func=run_report)


def _sequential(text: str | None):
    if text is None:
        return None
    runs = []
    for item in text.split(","):
        parts = item.strip().split(":")
        if len(parts) != 4 or not all(p.isdigit() for p in parts[1:]):
            raise FactlocateError(f"--sequential takes editor:edits:batch:log_every items, got {item!r}")
        runs.append((parts[0], *map(int, parts[1:])))
    return tuple(runs)


def run_report(args) -> int:
    if args.verify is not None:
        return run_verify(args)
    if args.findings:
        from factlocate.paper import findings

        print(findings.markdown(findings.write(args.out)))
        return 0
    from factlocate import editors
    from factlocate.cli.common import parse_layers
    from factlocate.io import check_out_dir
    from factlocate.models import DEFAULT_MODEL
    from factlocate.paper import ReportSettings, build
    from factlocate.paper.settings import editor_subset
    from factlocate.paper.settings import load as load_settings

    options = dict(model=args.model or DEFAULT_MODEL, facts=args.facts, samples=args.samples,
                   sweep_cases=args.sweep_cases, eval_cases=args.eval_cases, generation=not args.no_generation,
                   counterfact=args.counterfact, zsre=args.zsre, sequential_dataset=args.sequential_dataset)
    if args.sweep_layers:
        options["sweep_layers"] = tuple(parse_layers(args.sweep_layers))
    if args.editors:
        options.update(editor_subset([e.strip() for e in args.editors.split(",")]))
    runs = _sequential(args.sequential)
    if runs is not None:
        options["sequential"] = runs
    settings = ReportSettings(**options) if args.settings is None else load_settings(args.settings)
    if args.settings and args.model and args.model != settings.model:
        raise FactlocateError(f"--model {args.model} contradicts {args.settings} (model {settings.model})")
    for name in {e for e in settings.counterfact_editors + settings.zsre_editors if e != "unedited"}:
        editors.get(name)  # an unknown editor fails before any work
    only = tuple(x.strip() for x in args.only.split(",")) if args.only else None
    path = build(settings, check_out_dir(args.out), only=only, settings_file=args.settings)
    print(f"wrote {path}")
    return 0


def run_verify(args) -> int:
    from pathlib import Path

    from factlocate.paper import verify

    if args.verify < 1:
        raise FactlocateError(f"--verify takes a positive number of cases per section, got {args.verify}")
    if not (Path(args.out) / "settings.json").is_file():
        raise FactlocateError(f"{args.out} holds no report (no settings.json): build it first")
    results = verify.verify(args.out, args.verify, args.verify_seed)
    return 0 if all(verify.passed(r) for r in results.values()) else 1
