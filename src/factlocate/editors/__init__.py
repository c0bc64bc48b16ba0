"""Editors: each module computes WeightDeltas for a list of EditRequests and declares itself as an
`Editor` (see `base`). This registry is the one place that names them.

    editor = editors.get("rome")                        # the Editor declaration
    hp = editor.load_hparams("gemma-3-270m", {"v_lr": 0.1})
    result = editor.compute_edit(model, requests, hp)

Adding an editor: write its module (ending in `EDITOR = Editor(...)`) and add one line to `EDITORS`.
"""
from __future__ import annotations

import dataclasses
import importlib

from factlocate.editors.base import Editor
from factlocate.errors import FactlocateError

# CLI name -> the module whose EDITOR declares it (or an Editor object, for editors defined elsewhere).
EDITORS: dict[str, str | Editor] = {
    "rome": "factlocate.editors.keyvalue.rome",
    "ft": "factlocate.editors.finetuning.ft",
    "ft-l": "factlocate.editors.finetuning.ft_l",
    "ft-w": "factlocate.editors.finetuning.ft_w",
    "attn-edit": "factlocate.editors.neuron_attention.attn_edit",
    "kn": "factlocate.editors.neuron_attention.kn",
    "memit": "factlocate.editors.keyvalue.memit",
    "alphaedit": "factlocate.editors.keyvalue.alphaedit",
    "mend": "factlocate.editors.hypernetworks.mend",
    "ke": "factlocate.editors.hypernetworks.ke",
}

# Spellings kept for the trained editors' variants: an editor plus fixed hyperparameters.
ALIASES: dict[str, tuple[str, dict]] = {
    "mend-cf": ("mend", {"data": "cf"}),
    "mend-zsre": ("mend", {"data": "zsre"}),
    "ke-cf": ("ke", {"data": "cf"}),
    "ke-zsre": ("ke", {"data": "zsre"}),
}


def names() -> list[str]:
    return [*EDITORS, *ALIASES]


def get(name: str) -> Editor:
    """The declaration of the editor called `name` (an alias: its base editor with the alias's settings)."""
    if name in ALIASES:
        base, settings = ALIASES[name]
        return dataclasses.replace(get(base), NAME=name, settings=dict(settings))
    if name not in EDITORS:
        raise FactlocateError(f"unknown editor {name!r}; choose from {', '.join(names())}")
    entry = EDITORS[name]
    if isinstance(entry, Editor):
        return entry
    editor = vars(importlib.import_module(entry)).get("EDITOR")
    if not isinstance(editor, Editor):
        raise FactlocateError(f"{entry} declares no EDITOR = Editor(...) (see factlocate.editors.base)")
    return editor
