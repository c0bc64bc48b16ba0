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
}


def get(name: str):
    """The editor module called `name`."""
    if name not in EDITORS:
        raise FactlocateError(f"unknown editor {name!r}; choose from {', '.join(EDITORS)}")
    return importlib.import_module(EDITORS[name])
