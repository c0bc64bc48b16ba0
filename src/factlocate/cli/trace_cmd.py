"""`factlocate trace` (one prompt) and `factlocate trace-facts` (averages over a fact set)."""
from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("trace", help="causal trace of one prompt: which (token, layer) states carry the fact")
    p.add_argument("--model", default=None, help="model spec (default gemma-3-270m)")
    p.add_argument("--prompt", required=True)
    p.add_argument("--subject", required=True, help="the subject, as it occurs in the prompt")
    p.add_argument("--kind", default="all", choices=["hidden", "mlp", "attn", "all"])
    _common(p)
    p.add_argument("--sever", choices=["mlp", "attn"], default=None,
                   help="also write a severed hidden trace (trace_hidden_severed_<kind>.json)")
    p.add_argument("--noise-draws", choices=["same", "reference"], default="same",
                   help="severed traces: reference draws new noise in the second pass, as the original notebook")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run_trace)

    p = sub.add_parser("trace-facts", help="average causal traces over a fact set (AIE/ATE, figures)")
    p.add_argument("--model", default=None, help="model spec (default gemma-3-270m)")
    p.add_argument("--facts", default=None, help="facts JSON (default: the shipped known_1000.json)")
    p.add_argument("--n", type=int, default=None, help="stop after N correctly answered facts (default: all)")
    p.add_argument("--kinds", default="hidden,mlp,attn", help="comma-separated kinds (default all three)")
    p.add_argument("--sever", choices=["mlp", "attn"], default=None,
                   help="also trace the hidden state at the last subject token with this path severed")
    _common(p)
    p.add_argument("--out", required=True, help="output folder (a rerun resumes)")
    p.set_defaults(func=run_trace_facts)


def _common(p) -> None:
    p.add_argument("--samples", type=int, default=10, help="corrupted runs per site (default 10)")
    p.add_argument("--noise", default="s3", help="noise: a number, sK, uX, m or tD (default s3)")
    p.add_argument("--replace", action="store_true", help="replace the subject embeddings by noise")
    p.add_argument("--window", type=int, default=10, help="layers restored around an mlp/attn site (default 10)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--engine", choices=["batched", "naive"], default="batched")


def run_trace(args) -> int:
    from factlocate import plots
    from factlocate.models import DEFAULT_MODEL, load_model
    from factlocate.tracing import resolve_noise, trace_kinds

    name = args.model or DEFAULT_MODEL
    kinds = ["hidden", "mlp", "attn"] if args.kind == "all" else [args.kind]
    model = load_model(name)
    noise = resolve_noise(model, args.noise, replace=args.replace)
    options = dict(samples=args.samples, noise=noise, window=args.window, seed=args.seed,
                   engine=args.engine, model_name=name, progress=True)
    results = trace_kinds(model, args.prompt, args.subject, kinds, **options)
    out = Path(args.out)
    for kind, r in results.items():
        r.save(out / f"trace_{kind}.json")
    figures = [plots.trace_heatmaps(results)]
    if args.sever:
        sev = trace_kinds(model, args.prompt, args.subject, ["hidden"], sever=args.sever,
                          noise_draws=args.noise_draws, **options)["hidden"]
        sev.save(out / f"trace_hidden_severed_{args.sever}.json")
        figures.append(plots.trace_heatmap(sev))
    html = plots.save_html(figures, out / "trace.html")
    r = next(iter(results.values()))
    print(f"{r.prompt!r} -> {r.answer!r}: p {r.high_score:.4f} clean, {r.low_score:.4f} corrupted "
          f"(noise {r.noise['spec']}, level {r.noise_level if r.noise_level is not None else r.noise['family']})")
    for kind, res in results.items():
        t, l = divmod(int(res.scores.argmax()), res.n_layers)
        print(f"  {kind:<6} best restore: token {res.input_tokens[res.positions[t]]!r} layer {l} -> p {res.scores.max():.4f}")
    print(f"results: {out}/trace_<kind>.json")
    print(f"figure: {html}")
    return 0


def run_trace_facts(args) -> int:
    from factlocate import plots
    from factlocate.models import DEFAULT_MODEL, load_model
    from factlocate.tracing.facts import FactRunParams, load_facts, run_facts

    name = args.model or DEFAULT_MODEL
    facts = load_facts(args.facts)  # validate before the slow model load
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    params = FactRunParams(model=name, facts=args.facts or "known_1000.json", kinds=kinds, sever=args.sever,
                           samples=args.samples, noise=args.noise, window=args.window, seed=args.seed,
                           engine=args.engine)
    if args.replace:
        from factlocate.errors import FactlocateError

        raise FactlocateError("--replace is for single traces; fact-set runs add noise")
    model = load_model(name)
    out = Path(args.out)
    summary = run_facts(model, out, params, n=args.n, facts=facts)
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
