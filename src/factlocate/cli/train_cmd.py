"""`factlocate train-editor`: train MEND or KE for a model (resumable)."""
from __future__ import annotations

from pathlib import Path

from factlocate.errors import FactlocateError


def register(sub) -> None:
    p = sub.add_parser("train-editor", help="train a hypernetwork editor (mend, ke) on cf, zsre or wikitext data")
    p.add_argument("--editor", required=True, help="a trained editor: mend or ke")
    p.add_argument("--model", default=None, help="model spec (default gemma-3-270m)")
    p.add_argument("--data", required=True, metavar="KIND:PATH",
                   help="cf:counterfact-train.json, zsre:zsre_mend_train-1k.json or wikitext:wiki.valid.tokens")
    p.add_argument("--steps", type=int, default=None, help="Adam steps (default from the config)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a hyperparameter")
    p.add_argument("--out", default=None,
                   help="checkpoint folder (default: where `factlocate edit --editor <variant>` looks)")
    p.set_defaults(func=run_train)

    r = sub.add_parser("train-report", help="training curves of trained editors (from their checkpoint folders)")
    r.add_argument("dirs", nargs="+", metavar="DIR", help="checkpoint folders holding log.json")
    r.add_argument("--out", required=True, help="HTML file to write")
    r.set_defaults(func=run_report)


def run_train(args) -> int:
    from factlocate import editors, plots
    from factlocate.cli.common import parse_overrides
    from factlocate.editors.hypernetworks import hyper_editor, hypertrain
    from factlocate.io import read_json
    from factlocate.models import DEFAULT_MODEL, load_model

    kind = args.data.partition(":")[0]
    if kind not in hypertrain.DATA_KINDS:
        raise FactlocateError(f"--data takes cf:PATH, zsre:PATH or wikitext:PATH, got {args.data!r}")
    editor = editors.get(args.editor)
    if not editor.trained:
        trained = [n for n in editors.EDITORS if editors.get(n).trained]
        raise FactlocateError(f"editor {args.editor} is not trained: train-editor takes {', '.join(trained)}")
    name = hyper_editor.variant_name(editor.NAME.split("-")[0], kind)
    overrides = parse_overrides(args.set)
    overrides["data"] = kind
    if args.steps is not None:
        overrides["steps"] = args.steps
    spec = args.model or DEFAULT_MODEL
    hp = editor.load_hparams(spec, overrides)
    model = load_model(spec)
    out = args.out or hyper_editor.checkpoint_path(model, name, hp).parent
    log = editor.train(model, hp, args.data, out)
    plots.save_html(plots.training_curves({name: read_json(Path(out) / "log.json")}), Path(out) / "curves.html")
    rate = log["step"] / max(log["seconds"], 1e-9)
    print(f"{name} on {spec}: {log['step']} steps in {log['seconds']:.0f} s ({rate:.2f} steps/s); "
          f"best validation loss {log['best_val']:.4f}; checkpoints in {out}")
    return 0


def run_report(args) -> int:
    from factlocate import plots
    from factlocate.io import read_json

    logs = {}
    for d in args.dirs:
        path = Path(d) / "log.json"
        if not path.is_file():
            raise FactlocateError(f"no log.json in {d}: give the folder `factlocate train-editor` wrote")
        log = read_json(path)
        name = log.get("editor", Path(d).name)
        logs[name if name not in logs else f"{name} ({d})"] = log
    for name, log in logs.items():
        rate = log["log"]["step"] / max(log["log"]["seconds"], 1e-9)
        print(f"{name}: {log['log']['step']} steps, {rate:.2f} steps/s, best validation loss {log['log']['best_val']:.4f}")
    print(f"figure: {plots.save_html(plots.training_curves(logs), args.out)}")
    return 0
