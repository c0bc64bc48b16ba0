"""Checks shared by the editors that take several layers or several facts at once."""
from __future__ import annotations

from factlocate import arch
from factlocate.editors.base import EditRequest
from factlocate.errors import FactlocateError


def check_no_conflicts(requests: list[EditRequest]) -> None:
    """Reject two requests for the same subject and relation with different new targets."""
    seen: dict[tuple, EditRequest] = {}
    for r in requests:
        relation = r.relation_id if r.relation_id is not None else r.prompt
        key = (r.subject.strip(), relation)
        other = seen.setdefault(key, r)
        if other.target_new.strip() != r.target_new.strip():
            raise FactlocateError(
                f"conflicting requests for subject {r.subject!r} and relation {relation!r}: "
                f"{other.target_new!r} vs {r.target_new!r}; keep one target per fact"
            )


def check_layers(model, layers) -> list[int]:
    """A non-empty, sorted list of distinct valid layer indices."""
    if isinstance(layers, int):
        layers = [layers]
    layers = list(layers or [])
    if not layers:
        raise FactlocateError("the layer list is empty: give at least one layer")
    for layer in layers:
        arch.check_layer(model, layer)
    if len(set(layers)) != len(layers):
        raise FactlocateError(f"layers {layers} repeat a layer")
    return sorted(layers)
