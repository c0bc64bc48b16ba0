"""Small checks and read-outs shared by the baseline editors and MEMIT."""
from __future__ import annotations

import dataclasses

from factlocate import arch, scoring
from factlocate import deltas as deltas_mod
from factlocate.editors.base import EditRequest, EditResult
from factlocate.errors import FactlocateError


def check_requests(requests) -> list[EditRequest]:
    """A non-empty list of EditRequests (a single request is wrapped in a list)."""
    if isinstance(requests, EditRequest):
        requests = [requests]
    requests = list(requests or [])
    if not requests:
        raise FactlocateError("the request list is empty: give at least one edit request")
    for r in requests:
        if not isinstance(r, EditRequest):
            raise FactlocateError(f"expected EditRequest objects, got {type(r).__name__}")
    return requests


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


def request_probs(model, requests: list[EditRequest]) -> list[dict]:
    """Per request, p(target_new) and p(target_true) on the rewrite prompt (teacher-forced, per token)."""
    prompts = [r.text for r in requests]
    new = scoring.target_nll(model, prompts, [r.target_new for r in requests]).neg().exp()
    out = [{"new": float(p)} for p in new]
    with_true = [i for i, r in enumerate(requests) if r.target_true]
    if with_true:
        true = scoring.target_nll(
            model, [prompts[i] for i in with_true], [requests[i].target_true for i in with_true]
        ).neg().exp()
        for i, p in zip(with_true, true):
            out[i]["true"] = float(p)
    return out


def check_options(editor: str, options: dict) -> None:
    """Reject inputs an editor does not use (e.g. --stats for a fine-tuning baseline)."""
    if options:
        raise FactlocateError(f"editor {editor} takes no {', '.join(sorted(options))} option")


def edit_result(editor: str, model, requests: list[EditRequest], deltas: list, hparams, seconds: float,
                before: list[dict], extra: dict) -> EditResult:
    """An editor's result: p(target)/p(true) read again with `deltas` applied, total time `seconds`."""
    with deltas_mod.applied(model, deltas):
        after = request_probs(model, requests)
    return EditResult(
        editor=editor, requests=requests, deltas=deltas, hparams=dataclasses.asdict(hparams),
        timings={"total": seconds}, probs_before=before, probs_after=after, extra=extra,
    )
