"""`factlocate trace` (one prompt), `trace-facts` (averages over a fact set) and `layer-range`."""
from __future__ import annotations

from factlocate.cli.common import add_ray_args, ray_options
from factlocate.errors import FactlocateError


def register(sub) -> None:
    p = sub.add_parser("trace", help="causal trace of one prompt: which (token, layer) states carry the fact")
    p.add_argument("--model", default=None, help="model spec (default gemma-3-270m)")
    p.add_argument("--prompt", required=True)
    p.add_argument("--subject", required=True, help="the subject, as it occurs in the prompt")
    p.add_argument("--kind", default="all", choices=["hidden", "mlp", "attn", "all"])
    _run_args(p)
    p.add_argument("--sever", choices=["mlp", "attn"], default=None,
                   help="also write a severed hidden trace (trace_hidden_severed_<kind>.json)")
    p.add_argument("--noise-draws", choices=["same", "reference"], default="same",
                   help="severed traces: reference draws new noise in the second pass, as the original notebook")
    p.add_argument("--replace", action="store_true", help="replace the subject embeddings by noise")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run_trace)

    p = sub.add_parser("trace-facts", help="average causal traces over a fact set (AIE/ATE, figures)")
    p.add_argument("--model", default=None, help="model spec (default gemma-3-270m)")
    p.add_argument("--facts", default=None, help="facts JSON (default: the shipped known_1000.json)")
    p.add_argument("--n", type=int, default=None, help="stop after N correctly answered facts (default: all)")
    p.add_argument("--kinds", default="hidden,mlp,attn", help="comma-separated kinds (default all three)")
    p.add_argument("--sever", default=None,
                   help="also trace the hidden state at the last subject token with these paths severed: "
                        "mlp, attn or mlp,attn (Figure 3)")
    _run_args(p)
    add_ray_args(p)
    p.add_argument("--out", required=True, help="output folder (a rerun resumes)")
    p.set_defaults(func=run_trace_facts)

    p = sub.add_parser("trace-compare", help="how well one fact-set run (e.g. --method atp) reproduces another")
    p.add_argument("--exact", required=True, help="the reference trace-facts folder (e.g. exact grids)")
    p.add_argument("--other", required=True, help="the trace-facts folder to compare with it")
    p.add_argument("--labels", default="exact,other", help="names of the two runs in the report")
    p.add_argument("--replay-verify", type=int, default=None, metavar="K",
                   help="with an --method atp run as --other: also replay atp+verify --top K on the two grids")
    p.add_argument("--out", required=True, help="folder for fidelity.md, fidelity.json and curves.html")
    p.set_defaults(func=run_trace_compare)

    p = sub.add_parser("layer-range", help="suggest MEMIT's layer range and AttnEdit's layer from causal traces")
    p.add_argument("--model", default=None, help="model spec (default gemma-3-270m)")
    p.add_argument("--n", type=int, default=20, help="number of known facts to trace")
    p.add_argument("--width", type=int, default=5, help="number of layers in MEMIT's range")
    p.add_argument("--samples", type=int, default=10)
    p.add_argument("--attention", action="store_true", help="also suggest AttnEdit's layer")
    p.add_argument("--from", dest="from_dir", default=None, metavar="DIR",
                   help="read the traces from a finished trace-facts --sever mlp folder instead of tracing")
    p.set_defaults(func=run_layer_range)


def _run_args(p) -> None:
    from factlocate.tracing import corruption

    p.add_argument("--samples", type=int, default=10, help="corrupted runs per site (default 10)")
    p.add_argument("--noise", default="s3", help="noise: a number, sK, uX, m or tD (default s3)")
    p.add_argument("--window", type=int, default=10, help="layers restored around an mlp/attn site (default 10)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--engine", choices=["batched", "naive"], default="batched")
    p.add_argument("--method", choices=["exact", "atp", "atp+verify", "atp+budget"], default="exact",
                   help="exact restored runs (default), attribution patching, AtP with the top sites run exactly "
                        "(verify: with a bound; budget: a fixed share)")
    p.add_argument("--top", type=int, default=10, help="atp+verify: sites per grid run exactly (default 10)")
    p.add_argument("--budget", type=_budget, default=None,
                   help="atp+budget: share of each grid's cells from the subject on run exactly, one number or "
                        "one per kind as hidden=0.1,mlp=0.3,attn=0.05 (default: that, chosen on dev facts)")
    p.add_argument("--refine", type=int, default=None,
                   help="atp+budget: after the budget, run the cells within this many layers of the best exact "
                        "ones until none is left (default 2; 0: no climb)")
    p.add_argument("--graddrop", action="store_true", help="atp: add AtP*'s GradDrop against cancellation")
    p.add_argument("--corrupt", choices=corruption.names(), default="noise",
                   help="noise on the subject embeddings (default) or symmetric token replacement")
    p.add_argument("--metric", choices=["prob", "logprob", "logit_diff"], default="prob",
                   help="what is read at the last position (default p(answer))")


def _budget(text: str) -> float | dict:
    """--budget: 0.3, or hidden=0.1,mlp=0.3,attn=0.05."""
    import argparse

    try:
        if "=" not in text:
            return float(text)
        return {k.strip(): float(v) for k, v in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share or kind=share,...; got {text!r}") from None


def _run_spec(args):
    from factlocate.tracing import RunSpec

    return RunSpec(samples=args.samples, noise=args.noise, replace=getattr(args, "replace", False),
                   seed=args.seed, engine=args.engine, method=args.method, corrupt=args.corrupt,
                   metric=args.metric, top=args.top, graddrop=args.graddrop,
                   **{k: v for k, v in (("budget", args.budget), ("refine", args.refine)) if v is not None})


def run_trace(args) -> int:
    from factlocate import plots
    from factlocate.io import check_out_dir
    from factlocate.models import DEFAULT_MODEL, load_model
    from factlocate.tracing import GridSpec, trace_kinds

    name = args.model or DEFAULT_MODEL
    run = _run_spec(args)
    kinds = ["hidden", "mlp", "attn"] if args.kind == "all" else [args.kind]
    grids = [GridSpec(k, args.window) for k in kinds]
    severed = GridSpec("hidden", args.window, args.sever, args.noise_draws) if args.sever else None
    out = check_out_dir(args.out)  # before the model loads: nothing computed is lost to a bad --out
    model = load_model(name)
    results = trace_kinds(model, args.prompt, args.subject, grids, run, progress=True)
    for key, r in results.items():
        r.save(out / f"trace_{key}.json")
    figures = [plots.trace_heatmaps(results)]
    if severed:
        (key, sev), = trace_kinds(model, args.prompt, args.subject, [severed], run, progress=True).items()
        sev.save(out / f"trace_{key}.json")
        figures.append(plots.trace_heatmap(sev))
    html = plots.save_html(figures, out / "trace.html")
    r = next(iter(results.values()))
    level = r.noise_level if r.noise_level is not None else r.noise["family"]
    print(f"{r.prompt!r} -> {r.answer!r}: p {r.high_score:.4f} clean, {r.low_score:.4f} corrupted "
          f"(noise {r.noise['spec']}, level {level})")
    for kind, res in results.items():
        t, l = divmod(int(res.scores.argmax()), res.n_layers)
        token = res.input_tokens[res.positions[t]]
        print(f"  {kind:<6} best restore: token {token!r} layer {l} -> {res.metric} {res.scores.max():.4f}")
    print(f"results: {out}/trace_<kind>.json")
    print(f"figure: {html}")
    return 0


def run_trace_facts(args) -> int:
    from factlocate import plots
    from factlocate.datasets.known_facts import SHIPPED, load_facts
    from factlocate.io import check_out_dir
    from factlocate.models import DEFAULT_MODEL, load_model
    from factlocate.tracing.facts import FactSetSpec, run_facts

    name = args.model or DEFAULT_MODEL
    if args.n is not None and args.n < 1:
        raise FactlocateError(f"--n must be at least 1 (facts to trace), got {args.n}")
    facts = load_facts(args.facts)  # validate before the slow model load
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    spec = FactSetSpec(model=name, facts=args.facts or SHIPPED, kinds=kinds, sever=args.sever,
                       window=args.window, run=_run_spec(args))
    out = check_out_dir(args.out)
    options = ray_options(args)
    if options is None:
        summary = run_facts(load_model(name), out, spec, n=args.n, facts=facts)
    else:
        from factlocate.distributed import workers

        with workers(options, name) as pool:
            summary = run_facts(None, out, spec, n=args.n, facts=facts, pool=pool)
    print(f"traced {summary['n_traced']} facts, skipped {summary['n_skipped']} the model answers differently")
    if summary["n_traced"]:
        figures = [plots.average_heatmaps(summary), plots.average_lines(summary)]
        if summary.get("severed"):
            figures.append(plots.severed_bars(summary))
        html = plots.save_html(figures, out / "summary.html")
        for kind, k in summary["kinds"].items():
            print(f"  {kind:<6} ATE {k['ate']:.4f} ± {k['ate_ci95']:.4f}; best AIE at last subject token "
                  f"{k['best_last_subject_aie']:.4f} (layer {k['best_last_subject_layer']}), at last token "
                  f"{k['best_last_token_aie']:.4f} (layer {k['best_last_token_layer']})")
        print(f"summary: {out}/summary.csv, {out}/summary.json")
        print(f"figures: {html}")
    return 0


def run_trace_compare(args) -> int:
    from factlocate.tracing import fidelity

    labels = tuple(x.strip() for x in args.labels.split(","))
    if len(labels) != 2:
        raise FactlocateError("--labels takes two names, e.g. exact,atp")
    print(fidelity.write(args.exact, args.other, args.out, labels, args.replay_verify))
    return 0


def run_layer_range(args) -> int:
    from factlocate.tracing import layer_range
    from factlocate.models import load_model

    if args.n < 1:
        raise FactlocateError("--n must be at least 1")
    if args.from_dir:
        gap, eff, n = layer_range.from_fact_set(args.from_dir)
        if args.attention and eff is None:
            raise FactlocateError(f"{args.from_dir} has no attention traces: drop --attention")
        print(f"from {args.from_dir}: {n} known facts")
    else:
        model = load_model(args.model)
        pairs = layer_range.facts(args.n)
        gap = layer_range.severed_gap(model, pairs, samples=args.samples)
    print("layer  gap(ordinary - MLP severed)")
    for l, g in enumerate(gap):
        print(f"{l:5d}  {g:+.4f}")
    print(f"memit layers: {layer_range.best_window(gap, args.width)}")
    if args.attention:
        if not args.from_dir:
            eff = layer_range.attention_effect(model, pairs, samples=args.samples)
        print("layer  attention effect at the last token")
        for l, e in enumerate(eff):
            print(f"{l:5d}  {e:+.4f}")
        print(f"attn-edit layer: {layer_range.centre_layer(eff)}")
    return 0
