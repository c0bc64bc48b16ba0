"""Editors: each module computes WeightDeltas for a list of EditRequests (see `base.Editor`)."""
from __future__ import annotations

import importlib

from factlocate.errors import FactlocateError

# CLI name -> module. Each module defines NAME, HParams and compute_edit.
EDITORS = {
    "rome": "factlocate.editors.rome",
    "ft": "factlocate.editors.ft",
    "ft-l": "factlocate.editors.ft_l",
    "ft-w": "factlocate.editors.ft_w",
    "attn-edit": "factlocate.editors.attn_edit",
    "kn": "factlocate.editors.kn",
    "memit": "factlocate.editors.memit",
    "alphaedit": "factlocate.editors.alphaedit",
    "mend": "factlocate.editors.mend",
    "mend-cf": "factlocate.editors.mend:cf",
    "mend-zsre": "factlocate.editors.mend:zsre",
    "ke": "factlocate.editors.ke",
    "ke-cf": "factlocate.editors.ke:cf",
    "ke-zsre": "factlocate.editors.ke:zsre",
}


def get(name: str):
    """The editor module called `name` (a hypernetwork variant such as mend-cf: a namespace like one)."""
    if name not in EDITORS:
        raise FactlocateError(f"unknown editor {name!r}; choose from {', '.join(EDITORS)}")
    path, _, kind = EDITORS[name].partition(":")
    module = importlib.import_module(path)
    if not kind:
        return module
    from factlocate.editors.hyper_editor import variant

    return variant(module, kind)
