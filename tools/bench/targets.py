"""Benchmark: MEMIT's target vectors z, one request at a time against batches, whole rows against suffixes.

    python -m tools.bench --only targets

On smollm2-135m with its MEMIT config (z at layer 8, 25 Adam steps), in one process:

* one at a time, plain: full forward passes through every block with full logits, as the
  original MEMIT code computes z (`target_vector.optimise(fast=False)`);
* one at a time, whole rows (the reference): `SERIAL` requests, half before and half
  after the other ways; each step starts at the z layer, the blocks below it run once;
* one at a time, suffixes only (ROME's v* takes this path);
* batched, whole rows: one chunk of the config's `target_batch_size`;
* batched, suffixes only (the default): `BATCHED` requests in chunks of `target_batch_size`.

"Suffixes" runs each step on the positions from the fact token on, reading the earlier
positions' keys and values from a cache (`FACTLOCATE_KV_REUSE` switches it). The z
differences are between the default and the reference, on the requests both computed.
"""
from __future__ import annotations

import os
import time

import torch

MODEL = "smollm2-135m"
SERIAL = 8
BATCHED = 100


def _timed(model, requests, templates, hp, reuse: bool):
    from factlocate.editors.keyvalue import memit

    os.environ["FACTLOCATE_KV_REUSE"] = "1" if reuse else "0"
    t = time.perf_counter()
    zs, logs = memit.compute_targets(model, requests, templates, hp, progress=False)
    return time.perf_counter() - t, zs, logs


def _timed_plain(model, requests, templates, hp):
    """One at a time through every block, full logits: the original code's way."""
    from factlocate import arch
    from factlocate.editors.keyvalue import target_vector

    layer = max(hp.layers)
    t = time.perf_counter()
    results = []
    for r in requests:
        torch.manual_seed(hp.seed)
        batch = target_vector.build_batch(model, r.prompt, r.subject, r.target_new, templates, hp.fact_token)
        results.append(target_vector.optimise(
            model, batch, arch.hook_resid(layer), layer, v_num_grad_steps=hp.v_num_grad_steps, v_lr=hp.v_lr,
            v_weight_decay=hp.v_weight_decay, clamp_norm_factor=hp.clamp_norm_factor, kl_factor=hp.kl_factor,
            fast=False))
    return time.perf_counter() - t, torch.stack([x.target for x in results], dim=1)


def run() -> str:
    from factlocate import datasets, load_model
    from factlocate.editors.keyvalue import context_templates, memit

    model = load_model(MODEL)
    hp = memit.HParams.load(MODEL)
    serial_hp = memit.HParams.load(MODEL, {"batch_targets": False})
    records = datasets.load("counterfact-sample").select(0, BATCHED)
    requests = [r.request() for r in records]
    templates = context_templates.context_templates(model, hp.context_template_lengths, hp.seed)
    chunk = hp.target_batch_size
    half = SERIAL // 2
    try:
        _timed(model, requests[:2], templates, hp, True)  # warm-up (and the suffix self-check)
        p1, z_plain1 = _timed_plain(model, requests[:half], templates, hp)
        s1, z_ref1, log_ref1 = _timed(model, requests[:half], templates, serial_hp, False)
        u1, _, _ = _timed(model, requests[:half], templates, serial_hp, True)
        w, _, _ = _timed(model, requests[:chunk], templates, hp, False)
        b, z_default, log_default = _timed(model, requests, templates, hp, True)
        u2, _, _ = _timed(model, requests[half:SERIAL], templates, serial_hp, True)
        s2, z_ref2, log_ref2 = _timed(model, requests[half:SERIAL], templates, serial_hp, False)
        p2, z_plain2 = _timed_plain(model, requests[half:SERIAL], templates, hp)
    finally:
        os.environ.pop("FACTLOCATE_KV_REUSE", None)
    ref = torch.cat([z_ref1, z_ref2], dim=1)
    got = z_default[:, :SERIAL]
    diff = float((ref - got).abs().max())
    rel_each = (ref - got).norm(dim=0) / ref.norm(dim=0)
    rel = float(rel_each.max())
    ref_logs, got_logs = log_ref1 + log_ref2, log_default[:SERIAL]
    same = [i for i in range(SERIAL) if ref_logs[i].get("steps") == got_logs[i].get("steps")]
    loss_gap = max(abs(a["loss"] - g["loss"]) for a, g in zip(ref_logs, got_logs))
    plain = torch.cat([z_plain1, z_plain2], dim=1)
    plain_rel = float(((plain - got).norm(dim=0) / plain.norm(dim=0)).max())
    per = {"plain": (p1 + p2) / SERIAL, "ref": (s1 + s2) / SERIAL, "suffix": (u1 + u2) / SERIAL, "whole": w / chunk, "default": b / BATCHED}

    def row(name, n, key):
        return f"| {name} | {n} | {per[key]:.2f} | {per['ref'] / per[key]:.1f}x | {per['plain'] / per[key]:.1f}x |"

    return "\n".join([
        f"## MEMIT target vectors: one at a time against batched ({MODEL}, CounterFact sample)",
        "",
        f"z at layer {max(hp.layers)}, at most {hp.v_num_grad_steps} Adam steps, early stop at loss 5e-2; batches "
        f"are chunks of {chunk} requests (`target_batch_size`). \"Suffixes\": each step runs only the positions from "
        "the fact token on, the earlier positions' keys and values read from a cache (verified once per model). "
        "Every way but the plain one starts each step at the z layer (the blocks below it run once per chunk). "
        "Serial runs are split, half before and half after the batched ones.",
        "",
        "| way | requests | s/fact | speed-up against the reference | against the plain path |",
        "|---|---:|---:|---:|---:|",
        row("one at a time, plain: every block, full logits (the original code's way)", SERIAL, "plain"),
        row("one at a time, whole rows from the z layer (reference)", SERIAL, "ref"),
        row("one at a time, suffixes (ROME's v* path)", SERIAL, "suffix"),
        row(f"batched ({chunk}), whole rows", chunk, "whole"),
        f"| **batched ({chunk} per chunk), suffixes: the default** | {BATCHED} | {per['default']:.2f} | "
        f"**{per['ref'] / per['default']:.1f}x** | **{per['plain'] / per['default']:.1f}x** |",
        "",
        f"Default against reference on the first {SERIAL} requests: largest |Δz| {diff:.2e} (largest |z| "
        f"{float(ref.abs().max()):.1f}); largest relative difference ‖Δz‖/‖z‖ {rel:.1e}. Steps taken: "
        f"{[g.get('steps') for g in ref_logs]} one at a time, {[g.get('steps') for g in got_logs]} batched "
        f"({len(same)} of {SERIAL} the same). Largest difference in final loss: {loss_gap:.1e}. Default against "
        f"the plain path: largest ‖Δz‖/‖z‖ {plain_rel:.1e}.",
    ])
