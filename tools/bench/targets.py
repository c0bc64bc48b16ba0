"""Benchmark: MEMIT's target vectors z, one request at a time against a batch of requests.

    python -m tools.bench --only targets

On smollm2-135m with its MEMIT config (z at layer 8, 25 Adam steps): the first
`SERIAL` CounterFact requests one at a time, then `BATCHED` requests (the first
`SERIAL` of them included) optimised together in chunks of the config's
`target_batch_size`, then the serial ones again; seconds per fact, and the largest
|z difference| between the two ways on the requests both computed.
"""
from __future__ import annotations

import time

import torch

MODEL = "smollm2-135m"
SERIAL = 12
BATCHED = 100


def run() -> str:
    from factlocate import datasets, load_model
    from factlocate.editors import context_templates, memit

    model = load_model(MODEL)
    hp = memit.HParams.load(MODEL)
    records = datasets.load("counterfact", allow_download=False).select(0, BATCHED)
    requests = [r.request() for r in records]
    templates = context_templates.context_templates(model, hp.context_template_lengths, hp.seed)
    serial_hp = memit.HParams.load(MODEL, {"batch_targets": False})
    memit.compute_targets(model, requests[:1], templates, serial_hp, progress=False)  # warm-up
    memit.compute_targets(model, requests[:hp.target_batch_size], templates, hp, progress=False)

    def timed(hparams, reqs):
        t = time.perf_counter()
        zs, _ = memit.compute_targets(model, reqs, templates, hparams, progress=False)
        return time.perf_counter() - t, zs

    s1, z_serial = timed(serial_hp, requests[: SERIAL // 2])
    b, z_batched = timed(hp, requests)
    s2, z_serial2 = timed(serial_hp, requests[SERIAL // 2 : SERIAL])
    serial_per = (s1 + s2) / SERIAL
    batched_per = b / BATCHED
    z_serial = torch.cat([z_serial, z_serial2], dim=1)
    diff = float((z_serial - z_batched[:, :SERIAL]).abs().max())
    rel = diff / float(z_serial.abs().max())
    return "\n".join([
        f"## MEMIT target vectors: one at a time against batched ({MODEL}, CounterFact sample)",
        "",
        f"z at layer {max(hp.layers)}, {hp.v_num_grad_steps} Adam steps, early stop at loss 5e-2; batched in chunks "
        f"of {hp.target_batch_size} requests. Serial: {SERIAL} requests (half before and half after the batched "
        f"run); batched: the first {BATCHED} requests.",
        "",
        "| way | requests | s/fact | speed-up | max abs Δz (max abs z) |",
        "|---|---:|---:|---:|---:|",
        f"| one at a time | {SERIAL} | {serial_per:.2f} | 1.0x | |",
        f"| batched | {BATCHED} | {batched_per:.2f} | **{serial_per / batched_per:.1f}x** | "
        f"{diff:.1e} ({float(z_serial.abs().max()):.1f}; relative {rel:.1e}) |",
    ])
