"""How a trained hypernetwork (MEND, KE) edits, and the variants trained on other data.

A variant is the same editor trained on other data, chosen by the hyperparameter `data`: `mend` (WikiText,
the paper's "out of the box"), `mend --set data=cf` (registry alias `mend-cf`), `data=zsre` (`mend-zsre`),
and likewise for `ke`. Each variant's checkpoint is at `<cache>/hypernets/<model key>/<variant>/best.safetensors`
unless `checkpoint` names one: a checkpoint file, or the folder `factlocate train-editor --out` wrote. A named
checkpoint edits under the variant it was trained as (its metadata says which). A checkpoint made for another
model, or for other weights, is refused; a missing one is a one-line error saying how to train it. Requests
are edited one after another, each on the weights the previous ones left.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from factlocate import deltas as deltas_mod
from factlocate.editors.hypernetworks import hypernet, hypertrain
from factlocate.editors.base import Computed, EditRequest, EditResult, HParams, edit
from factlocate.errors import FactlocateError
from factlocate.identity import identity


@dataclass
class TrainedHParams(HParams):
    """What every trained editor shares: its data, its checkpoint, the edited blocks and the training schedule.

    Subclasses add their network's fields, name them in `NETWORK` (they are saved with a checkpoint
    and read back from it), and call `check_training()` from `__post_init__`."""

    NETWORK: ClassVar[tuple[str, ...]] = ()

    data: str = "wikitext"  # what the network is trained on: wikitext, cf or zsre
    checkpoint: str | None = None  # a checkpoint file or train-editor's --out folder; default: the cache's
    n_blocks: int = 3  # the MLPs of the last n_blocks blocks are edited
    lr: float = 1e-5  # the network's Adam learning rate
    cedit: float = 0.1  # weight of the edit loss
    cloc: float = 1.0  # weight of the locality KL
    steps: int = 1000
    batch: int = 4
    val_every: int = 50
    val_size: int = 20
    patience: int = 5
    checkpoint_every: int = 25
    seed: int = 0

    def check_training(self) -> None:
        need = self.require
        need(self.data.partition(":")[0] in hypertrain.DATA_KINDS, f"data must be one of {hypertrain.DATA_KINDS}")
        for name in ("n_blocks", "steps", "batch", "val_every", "val_size", "patience", "checkpoint_every"):
            need(isinstance(getattr(self, name), int) and getattr(self, name) >= 1, f"{name} must be >= 1")
        need(self.lr > 0, "lr must be positive")

    def meta_lr(self) -> float | None:
        """The learning rate of learned per-layer edit rates (MEND's lr_lr); None for a network without them."""
        return None

    def network_params(self) -> dict:
        return {"n_blocks": self.n_blocks, **{name: getattr(self, name) for name in self.NETWORK}}


def variant_name(base: str, data: str) -> str:
    kind = data.partition(":")[0]
    return base if kind == "wikitext" else f"{base}-{kind}"


def checkpoint_path(model, name: str, hp) -> Path:
    """`hp.checkpoint` (a file, or a folder holding best.safetensors), else the variant's file in the cache."""
    if hp.checkpoint:
        given = Path(hp.checkpoint).expanduser()
        return given / "best.safetensors" if given.is_dir() else given
    from factlocate.models import cache_dir

    return cache_dir() / "hypernets" / identity(model).key / name / "best.safetensors"


def load_network(model, name: str, hp, build):
    """The trained network of variant `name` for `model`, and its checkpoint's metadata."""
    path = checkpoint_path(model, name, hp)
    base = name.split("-")[0]
    hint = (f"factlocate train-editor --editor {base} --model {identity(model).spec} "
            f"--data {hp.data.partition(':')[0]}:FILE --out {path.parent}")
    if not path.is_file():
        raise FactlocateError(f"no trained {name} checkpoint at {path}: train one with {hint}")
    tensors, meta = hypertrain.read(path)
    hypertrain.check_model(meta, model, path, hint)
    if meta.get("editor", base).split("-")[0] != base:
        raise FactlocateError(f"{path} holds a {meta.get('editor')} network, not a {base} one")
    settings = dataclasses.replace(hp, **meta["params"])  # the network's shape as it was trained
    net = build(model, settings, hypernet.inner_params(model, meta["params"]["n_blocks"]))
    hypertrain.restore(net, None, tensors)
    return net.eval(), meta


def edit_with(name: str, model, requests, hp, build, update_fn, options) -> EditResult:
    """Edit requests one after another with the trained network of variant `name` (or the named checkpoint's)."""
    net, meta = load_network(model, name, hp, build)
    if hp.checkpoint:
        name = meta.get("editor", name)
    inners = hypernet.inner_params(model, meta["params"]["n_blocks"])

    def compute(requests: list[EditRequest]) -> Computed:
        applied = []
        try:
            for r in requests:
                ex = hypernet.Example(r.text, r.target_new, r.text, r.text)
                with torch.no_grad():  # the edit gradient switches autograd back on for itself
                    ups = update_fn(net, model, inners, ex)
                for inner in inners:
                    d = hypernet.to_weight_delta(model, inner, ups[inner.name])
                    d.apply(model)
                    applied.append(d)
        finally:
            deltas_mod.revert(model, applied)
        return Computed(deltas_mod.merge(applied), {"checkpoint": str(checkpoint_path(model, name, hp)),
                                                    "trained_steps": meta["log"]["step"]})

    return edit(name, model, requests, hp, compute, options)


def train_with(base: str, model, hp: TrainedHParams, build, update_fn, data: str, out, progress: bool = True):
    """Train editor `base`'s network on `data` (cf|zsre|wikitext with :PATH) into `out` (resumable)."""
    inners = hypernet.inner_params(model, hp.n_blocks)
    net = build(model, hp, inners)
    schedule = hypertrain.Schedule(hp.steps, hp.batch, hp.val_every, hp.val_size, hp.patience,
                                   hp.checkpoint_every, hp.seed)
    return hypertrain.train(model, net, update_fn, hp.network_params(), schedule, data, out, hp.cedit, hp.cloc,
                            hp.lr, hp.meta_lr(), variant_name(base, data), progress)
