"""Benchmark: fact-set tracing on Ray workers, on this machine.

    python -m tools.bench --only ray

Ray's start-up overhead (a local instance), the time for workers to load the model,
and items per second for `N_FACTS` known facts (mlp kind, 3 samples, subject's last
token only) with 1 worker of all cores, 2 workers of 1 core each, and the single
process with all cores, in that order.
"""
from __future__ import annotations

import os
import tempfile
import time

MODEL = "smollm2-135m"
N_FACTS = 8


def _facts():
    from factlocate.datasets.known_facts import load_facts

    return load_facts()[:40]


def _spec():
    from factlocate.tracing import RunSpec
    from factlocate.tracing.facts import FactSetSpec

    return FactSetSpec(model=MODEL, facts="known_1000.json", kinds=("mlp",), run=RunSpec(samples=3))


def _on_ray(workers: int, cpus: int) -> dict:
    import ray

    from factlocate.distributed import RayOptions, workers as start
    from factlocate.tracing.facts import run_facts

    t = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    init = time.perf_counter() - t
    try:
        with start(RayOptions(workers=workers, cpus_per_worker=cpus), MODEL) as pool:
            with tempfile.TemporaryDirectory() as out:
                t = time.perf_counter()
                summary = run_facts(None, out, _spec(), n=N_FACTS, facts=_facts(), pool=pool)
                seconds = time.perf_counter() - t
                n = summary["n_traced"] + summary["n_skipped"]
        return {"init": init, "load": pool.start_seconds, "seconds": seconds, "items": n}
    finally:
        ray.shutdown()


def _here() -> dict:
    import torch

    from factlocate import load_model
    from factlocate.tracing.facts import run_facts

    torch.set_num_threads(os.cpu_count())
    model = load_model(MODEL)
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        summary = run_facts(model, out, _spec(), n=N_FACTS, facts=_facts(), progress=False)
        seconds = time.perf_counter() - t
    return {"seconds": seconds, "items": summary["n_traced"] + summary["n_skipped"]}


def run() -> str:
    cores = os.cpu_count()
    one = _on_ray(1, cores)
    two = _on_ray(2, 1)
    here = _here()
    rows = [("single process", f"{cores} threads", here), ("Ray, 1 worker", f"{cores} cores", one),
            ("Ray, 2 workers", "1 core each", two)]
    lines = [
        f"## Ray on this machine ({MODEL}, {cores} cores)",
        "",
        f"Fact-set tracing until {N_FACTS} known facts are traced (mlp kind, 3 samples); the facts the model gets "
        "wrong are items too. Start-up: Ray's local instance, then the workers loading the model.",
        "",
        "| run | cores | items | s | items/s | Ray start s | model load s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, cores_text, r in rows:
        lines.append(f"| {name} | {cores_text} | {r['items']} | {r['seconds']:.1f} | {r['items'] / r['seconds']:.2f} | "
                     f"{r.get('init', 0):.1f} | {r.get('load', 0):.1f} |")
    return "\n".join(lines)
