"""`factlocate edit` (any registered editor) and `factlocate stats` (ROME's key statistics)."""
from __future__ import annotations

import dataclasses
import json

from factlocate.cli.common import add_hparams_args, add_ray_args, load_hparams, parse_layers, ray_options
from factlocate.errors import FactlocateError


def register(sub) -> None:
    p = sub.add_parser("edit", help="rewrite a fact with an editor (rome, memit, ft, ...)")
    p.add_argument("--model", default=None, help="model spec (default gemma-3-270m)")
    p.add_argument("--editor", default="rome", help="editor name (see factlocate.editors.EDITORS)")
    p.add_argument("--subject", help="the subject, e.g. 'Danielle Darrieux'")
    p.add_argument("--prompt", help="a template with {} for the subject, or a prompt containing the subject")
    p.add_argument("--target", help="the new target, e.g. English")
    p.add_argument("--target-true", default=None, help="the current answer, to show its probability")
    p.add_argument("--requests", default=None, help="JSON list of {prompt, subject, target_new[, target_true]} "
                   "or CounterFact records (edited one after another, or as a batch for memit)")
    add_hparams_args(p)
    p.add_argument("--stats", default=None, help="key statistics file to use (factlocate stats --out)")
    p.add_argument("--templates", default=None, help="JSON list of context templates to use")
    p.add_argument("--seed", type=int, default=0, help="seed for torch and for generation")
    p.add_argument("--generate", action="store_true", help="print seeded generations before and after the edit")
    p.add_argument("--gen-prompt", action="append", default=None, help="generation prompt (repeatable; default the edit prompt)")
    p.add_argument("--gen-length", type=int, default=40, help="generation length in tokens, prompt included")
    p.add_argument("--save-deltas", default=None, metavar="FILE", help="save the weight deltas (safetensors)")
    p.add_argument("--export", default=None, metavar="DIR", help="save the edited model as a Hugging Face folder")
    p.add_argument("--out", default=None, metavar="FILE", help="write probabilities, timings and hparams as JSON")
    p.set_defaults(func=run_edit)

    p = sub.add_parser("stats", help="compute and cache ROME's key statistics (MLP key second moment)")
    p.add_argument("--model", default=None)
    p.add_argument("--layer", "--layers", dest="layers", type=str, required=True,
                   help="layer(s), e.g. 5, 3,4,5 or 3-8 (several in one pass)")
    p.add_argument("--corpus", default=None, help="wikitext2 (shipped, default), hf:wikitext-103, hf:wikipedia, a file or folder")
    p.add_argument("--tokens", type=int, default=200_000, help="token budget (the paper: about 100M)")
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    p.add_argument("--max-text-tokens", type=int, default=1024, help="truncate each text to this many tokens")
    p.add_argument("--out", default=None, help="write the statistics here instead of the cache (one layer)")
    p.add_argument("--spectrum", default=None, metavar="T1,T2,...",
                   help="also print, per layer, how many directions of C0 fall below each threshold and their "
                        "share of its trace (to choose AlphaEdit's nullspace_threshold)")
    add_ray_args(p)
    p.set_defaults(func=run_stats)


def read_requests(path: str) -> list:
    """Edit requests from a JSON list of plain requests or CounterFact records."""
    from factlocate.editors.base import EditRequest
    from factlocate.io import read_json

    rows = read_json(path)
    if isinstance(rows, dict):
        rows = [rows]
    out = []
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise FactlocateError(f"{path}: request {i} is not an object")
        rr = r.get("requested_rewrite", r)
        tn, tt = rr.get("target_new"), rr.get("target_true")
        tn = tn.get("str") if isinstance(tn, dict) else tn
        tt = tt.get("str") if isinstance(tt, dict) else tt
        missing = [k for k, v in (("prompt", rr.get("prompt")), ("subject", rr.get("subject")), ("target_new", tn)) if not v]
        if missing:
            raise FactlocateError(f"{path}: request {i} lacks {', '.join(missing)}")
        out.append(EditRequest.from_text(rr["prompt"], rr["subject"], tn, target_true=tt,
                                         relation_id=rr.get("relation_id"), case_id=r.get("case_id")))
    if not out:
        raise FactlocateError(f"{path} holds no requests")
    return out


def _requests(args) -> list:
    from factlocate.editors.base import EditRequest

    if args.requests:
        return read_requests(args.requests)
    missing = [f"--{k}" for k in ("subject", "prompt", "target") if not getattr(args, k)]
    if missing:
        raise FactlocateError(f"give {', '.join(missing)} (or --requests FILE)")
    return [EditRequest.from_text(args.prompt, args.subject, args.target, target_true=args.target_true)]


def _options(args, editor) -> dict:
    """Editor-specific inputs, passed only when given and only to editors that declare them."""
    for key in ("stats", "templates"):
        if getattr(args, key) and not editor.takes(key):
            raise FactlocateError(f"editor {editor.NAME} does not take --{key}")
    options = {}
    if args.stats:
        from factlocate.editors.keyvalue import key_stats

        options["stats"] = key_stats.load(args.stats)
    if args.templates:
        from factlocate.editors.keyvalue.context_templates import load_templates

        options["templates"] = load_templates(args.templates)
    return options


def _fmt(p) -> str:
    return "    -   " if p is None else f"{p:.4f}"


def run_edit(args) -> int:
    import torch

    from factlocate import deltas
    from factlocate.editors import get
    from factlocate.generate import generate
    from factlocate.io import write_json
    from factlocate.models import DEFAULT_MODEL, load_model

    editor = get(args.editor)
    spec = args.model or DEFAULT_MODEL
    requests = _requests(args)
    hparams = load_hparams(editor, spec, args)
    options = _options(args, editor)
    torch.manual_seed(args.seed)
    model = load_model(spec)

    gen_prompts = args.gen_prompt or list(dict.fromkeys(r.text for r in requests))
    if args.generate:
        before = generate(model, gen_prompts, max_length=args.gen_length, seed=args.seed)

    result = editor.compute_edit(model, requests, hparams, **options)

    print(f"{editor.NAME} on {spec}: {len(requests)} request(s)")
    print(f"{'prompt':<50} {'target':<20} {'p(new) before':>13} {'after':>8} {'p(true) before':>14} {'after':>8}")
    for r, b, a in zip(requests, result.probs_before, result.probs_after):
        print(f"{r.text[:50]:<50} {r.target_new[:20]:<20} {_fmt(b.get('new')):>13} {_fmt(a.get('new')):>8} "
              f"{_fmt(b.get('true')):>14} {_fmt(a.get('true')):>8}")
    print("time (s): " + ", ".join(f"{k} {v:.2f}" for k, v in result.timings.items()))

    if args.generate:
        with result.applied(model):
            after = generate(model, gen_prompts, max_length=args.gen_length, seed=args.seed)
        for p, b, a in zip(gen_prompts, before, after):
            print(f"\n[{p}]\n  before: {b}\n  after:  {a}")
    if args.save_deltas:
        print(f"saved deltas to {result.save(args.save_deltas)}")
    if args.export:
        with result.applied(model):
            print(f"exported the edited model to {deltas.export(model, args.export)}")
    if args.out:
        summary = {
            "model": spec, "editor": editor.NAME, "hparams": result.hparams, "seed": args.seed,
            "requests": [dataclasses.asdict(r) for r in requests],
            "probs_before": result.probs_before, "probs_after": result.probs_after, "timings": result.timings,
        }
        if args.generate:
            summary["generations"] = [{"prompt": p, "before": b, "after": a} for p, b, a in zip(gen_prompts, before, after)]
        write_json(args.out, summary)
        print(f"wrote {args.out}")
    return 0


def run_stats(args) -> int:
    from factlocate.datasets.corpus import DEFAULT_CORPUS, corpus_texts
    from factlocate.editors.keyvalue import key_stats, key_stats_ray
    from factlocate.models import DEFAULT_MODEL, load_model

    layers = parse_layers(args.layers)
    if args.out and len(layers) != 1:
        raise FactlocateError("--out takes a single --layer")
    thresholds = _thresholds(args.spectrum) if args.spectrum else None
    if args.tokens < 1:
        raise FactlocateError(f"--tokens must be positive, got {args.tokens}")
    corpus = args.corpus or DEFAULT_CORPUS
    key_stats.check_corpus(corpus)  # before the model loads
    if not corpus.startswith("hf:") and corpus != DEFAULT_CORPUS:
        corpus_texts(corpus)  # fail fast on a bad path
    options = ray_options(args)
    if options is None:
        model = load_model(args.model or DEFAULT_MODEL)
        from factlocate import arch

        for layer in layers:
            arch.check_layer(model, layer)
        out = key_stats.key_stats(model, layers, corpus, args.tokens, args.dtype, args.max_text_tokens, path=args.out)
    else:
        from factlocate.distributed import workers

        with workers(options, args.model or DEFAULT_MODEL) as pool:
            n_layers = pool.info()["n_layers"]
            parse_layers(args.layers, n_layers)  # range check
            out = key_stats_ray.key_stats_on(pool, layers, corpus, args.tokens, args.dtype, args.max_text_tokens,
                                         path=args.out)
    for layer, s in out.items():
        path = args.out or key_stats.stats_path(s.meta)
        print(json.dumps({"layer": layer, "path": str(path), "tokens": s.n_tokens, "texts": s.n_texts,
                          "corpus": s.meta.corpus, "dtype": s.meta.dtype,
                          "tokens_per_second": round(s.tokens_per_second, 1)}))
    if thresholds:
        _print_spectrum(out, thresholds)
    return 0


def _thresholds(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",")]
    except ValueError:
        raise FactlocateError(f"--spectrum takes numbers separated by commas, got {text!r}") from None


def _print_spectrum(stats: dict, values: list[float]) -> None:
    from factlocate.editors.keyvalue import alphaedit

    print("layer  " + "  ".join(f"below {t:g}: directions (share of trace)" for t in values))
    for layer, s in stats.items():
        cells = [f"{n} ({share:.1e})" for _, n, share in alphaedit.spectrum(s.cov, values)]
        print(f"{layer:>5}  " + "  ".join(cells))
