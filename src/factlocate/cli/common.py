"""Argument helpers shared by the sub-commands: one way to give layers and hyperparameters."""
from __future__ import annotations

import dataclasses

import yaml

from factlocate.errors import FactlocateError


def add_hparams_args(p, layer_help: str = "edit layer(s), e.g. 5, 3,4,5 or 3-8 (overrides the config)") -> None:
    p.add_argument("--layer", "--layers", dest="layers", default=None, help=layer_help)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one hyperparameter (YAML value), e.g. --set v_lr=0.1; repeatable")
    p.add_argument("--hparams", default=None, metavar="FILE",
                   help="a YAML file of hyperparameters to use instead of the shipped config")


def parse_layers(text: str | None, n_layers: int | None = None) -> list[int] | None:
    """'5', '3,4,5', '3-8' or '0-5,9' -> a list of layers (None for no text); checked against n_layers."""
    if text is None or not str(text).strip():
        return None
    layers = []
    try:
        for part in str(text).split(","):
            a, sep, b = part.strip().partition("-")
            layers += list(range(int(a), int(b) + 1)) if sep else [int(a)]
    except ValueError as e:
        raise FactlocateError(f"layers are given as 5, 3,4,5 or 3-8, got {text!r}") from e
    if n_layers is not None:
        bad = [layer for layer in layers if not 0 <= layer < n_layers]
        if bad:
            raise FactlocateError(f"layers {bad} are out of range: this model has layers 0..{n_layers - 1}")
    return layers


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FactlocateError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = _value(value)
    return out


def _value(text: str):
    """A YAML value, with numbers like 1e-4 read as numbers (YAML 1.1 wants 1.0e-4)."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def hparams_overrides(args, hparams_cls, editor: str) -> dict:
    """--set values, plus --layer mapped onto the editor's `layer` or `layers` field."""
    out = parse_overrides(args.set)
    layers = parse_layers(args.layers)
    if layers is not None:
        names = {f.name for f in dataclasses.fields(hparams_cls)}
        if "layers" in names:
            out["layers"] = layers
        elif "layer" in names:
            if len(layers) != 1:
                raise FactlocateError(f"--editor {editor} edits one layer; got --layer {args.layers}")
            out["layer"] = layers[0]
        else:
            raise FactlocateError(f"--editor {editor} takes no --layer")
    return out


def load_hparams(editor_module, model_spec: str, args):
    """The editor's hyperparameters for `model_spec` from the shipped config or --hparams, with overrides."""
    overrides = hparams_overrides(args, editor_module.HParams, editor_module.NAME)
    return editor_module.load_hparams(model_spec, overrides, path=args.hparams)


def add_ray_args(p) -> None:
    g = p.add_argument_group("Ray (run the items on Ray workers; needs pip install 'factlocate[ray]')")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on Ray: a local instance sized to this machine, or 'auto' / host:port to join a cluster")
    g.add_argument("--workers", type=int, default=None, help="number of workers (default: as many as fit)")
    g.add_argument("--cpus-per-worker", type=int, default=1, help="CPU cores per worker (its torch threads)")
    g.add_argument("--gpus-per-worker", type=float, default=None,
                   help="GPUs per worker (default: 1 where the cluster has GPUs, else 0)")
    g.add_argument("--verbose", action="store_true", help="show Ray's own log lines")


def ray_options(args):
    """The RayOptions of --ray and friends, or None without --ray."""
    if getattr(args, "ray", None) is None:
        return None
    from factlocate.distributed import RayOptions

    return RayOptions(address=args.ray, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                      gpus_per_worker=args.gpus_per_worker, verbose=args.verbose)
